"""The workspace pages, cost pages and quota page, as owner, member,
read-only member, outsider and admin."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from compute import services as compute_services
from compute.models import Quota, UsageInterval
from workspaces import services
from workspaces.models import Workspace, WorkspaceState

S = WorkspaceState
pytestmark = pytest.mark.django_db


@pytest.fixture
def running(project: Any, bob: Any, small: Any) -> Workspace:
    ws = services.workspace_request(actor=bob, project=project, name="explore", size=small)
    services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t")
    services.workspace_mark_running(workspace_id=ws.pk, url="http://127.0.0.1:9/lab?token=s3cret")
    ws.refresh_from_db()
    return ws


def detail_url(ws: Workspace) -> str:
    return f"/projects/churn/workspaces/{ws.pk}/"


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("carol", 200), ("charlie", 404), ("admin_user", 200)],
)
def test_list_and_detail_access(
    client_for: Any, request: Any, running: Workspace, who: str, status: int
) -> None:
    client = client_for(request.getfixturevalue(who))
    listed = client.get("/projects/churn/workspaces/")
    detail = client.get(detail_url(running))
    assert (listed.status_code, detail.status_code) == (status, status)
    if status == 200:
        assert b"explore" in listed.content
        body = detail.content.decode()
        assert "Running" in body and "Standard_D2s_v3" in body
        # The open link (with the token) is for the owner only.
        assert ("s3cret" in body) == (who == "bob")
        assert ('id="open-workspace"' in body) == (who == "bob")
        assert "workspace.running" in body  # the history


def test_request_form_within_and_over_quota(
    client_for: Any, bob: Any, project: Any, small: Any, gpu: Any
) -> None:
    client = client_for(bob)
    page = client.get("/projects/churn/workspaces/")
    assert b"Request a workspace" in page.content and b"0.096 USD/h" in page.content
    response = client.post(
        "/projects/churn/workspaces/",
        {
            "name": "nb",
            "kind": "notebook",
            "size": small.pk,
            "idle_shutdown_minutes": 30,
            "allowed_ips": "203.0.113.0/24\n198.51.100.7",
        },
    )
    ws = Workspace.objects.get(name="nb")
    assert response.status_code == 302 and response["Location"] == detail_url(ws)
    assert ws.state == S.APPROVED and ws.allowed_ips == ["203.0.113.0/24", "198.51.100.7/32"]
    over = client.post(
        "/projects/churn/workspaces/",
        {"name": "gpu", "kind": "notebook", "size": gpu.pk, "idle_shutdown_minutes": 60},
        follow=True,
    )
    assert "a platform admin decides" in over.content.decode()
    assert "Waiting for a platform admin" in over.content.decode()
    bad = client.post(
        "/projects/churn/workspaces/",
        {
            "name": "bad",
            "kind": "notebook",
            "size": small.pk,
            "idle_shutdown_minutes": 60,
            "allowed_ips": "10.0.0.1/99",
        },
    )
    assert bad.status_code == 200 and "not an IP address or CIDR" in bad.content.decode()
    assert not Workspace.objects.filter(name="bad").exists()


@pytest.mark.parametrize(("who", "status"), [("carol", 403), ("charlie", 404)])
def test_request_form_refused(
    client_for: Any, request: Any, project: Any, small: Any, who: str, status: int
) -> None:
    client = client_for(request.getfixturevalue(who))
    response = client.post(
        "/projects/churn/workspaces/",
        {"name": "nb", "kind": "notebook", "size": small.pk, "idle_shutdown_minutes": 60},
    )
    assert response.status_code == status
    assert not Workspace.objects.exists()
    if who == "carol":
        assert b"Request a workspace" not in client.get("/projects/churn/workspaces/").content


def test_htmx_poll_returns_the_state_partial(
    client_for: Any, bob: Any, project: Any, small: Any
) -> None:
    ws = services.workspace_request(actor=bob, project=project, name="nb", size=small)
    response = client_for(bob).get(detail_url(ws), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="workspace-state"')
    assert 'hx-trigger="every 2s"' in body and f'href="{detail_url(ws)}"' not in body
    assert "History" not in body and "Approved" in body
    services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t")
    services.workspace_mark_running(workspace_id=ws.pk, url="http://127.0.0.1:9/lab?token=x")
    settled = client_for(bob).get(detail_url(ws), HTTP_HX_REQUEST="true").content.decode()
    # Running: the cost so far (and an idle stop) still show up, less often.
    assert 'hx-trigger="every 30s"' in settled and "Open JupyterLab" in settled
    services.workspace_stop(actor=bob, workspace=ws)
    services.workspace_mark_stopped(workspace_id=ws.pk)
    stopped = client_for(bob).get(detail_url(ws), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in stopped and "Stopped by bob." in stopped


@pytest.mark.parametrize(
    ("who", "status", "state"),
    [
        ("bob", 302, S.STOPPING),
        ("alice", 302, S.STOPPING),
        ("carol", 403, S.RUNNING),
        ("charlie", 404, S.RUNNING),
    ],
)
def test_stop_button(
    client_for: Any, request: Any, running: Workspace, who: str, status: int, state: str
) -> None:
    response = client_for(request.getfixturevalue(who)).post(f"{detail_url(running)}stop/")
    assert response.status_code == status
    running.refresh_from_db()
    assert running.state == state


def test_actions_show_conflicts_and_bad_input_as_messages(
    client_for: Any, bob: Any, running: Workspace, medium: Any
) -> None:
    client = client_for(bob)
    start = client.post(f"{detail_url(running)}start/", follow=True)
    assert "Cannot start a workspace that is running." in start.content.decode()
    ips = client.post(f"{detail_url(running)}allowed-ips/", {"allowed_ips": "nope"}, follow=True)
    assert "not an IP address" in ips.content.decode()
    assert client.post(f"{detail_url(running)}explode/").status_code == 404
    resized = client.post(f"{detail_url(running)}resize/", {"size": medium.pk}, follow=True)
    assert "Resizing." in resized.content.decode()
    running.refresh_from_db()
    assert running.state == S.RESIZING and running.requested_size == medium
    # GET does nothing: a stop asks for confirmation, the rest are not allowed.
    assert client.get(f"{detail_url(running)}start/").status_code == 405
    assert "Stop the workspace" in client.get(f"{detail_url(running)}stop/").content.decode()


def test_my_workspaces(client_for: Any, bob: Any, charlie: Any, running: Workspace) -> None:
    assert b"explore" in client_for(bob).get("/workspaces/").content
    assert b"explore" not in client_for(charlie).get("/workspaces/").content


def _spend(ws: Workspace, amount: str, day: datetime) -> None:
    UsageInterval.objects.create(
        resource_type="workspaces.workspace",
        resource_id=ws.pk,
        resource_name=ws.name,
        project=ws.project,
        user=ws.owner,
        size=ws.size,
        size_name=ws.size.name,
        hourly_price=Decimal(amount),
        started_at=day,
        ended_at=day + timedelta(hours=1),
        day=day.date(),
        cost=Decimal(amount),
    )


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 403), ("carol", 403), ("charlie", 404), ("admin_user", 200)],
)
def test_project_cost_page_access(
    client_for: Any, request: Any, running: Workspace, who: str, status: int
) -> None:
    response = client_for(request.getfixturevalue(who)).get("/projects/churn/costs/")
    assert response.status_code == status


@pytest.mark.parametrize(("who", "status"), [("alice", 403), ("bob", 403), ("admin_user", 200)])
def test_admin_pages_access(
    client_for: Any, request: Any, project: Any, who: str, status: int
) -> None:
    client = client_for(request.getfixturevalue(who))
    assert client.get("/costs/").status_code == status
    assert client.get("/quotas/").status_code == status


def test_cost_page_charts_and_csv(client_for: Any, admin_user: Any, running: Workspace) -> None:
    day = datetime(2026, 2, 10, 9, tzinfo=UTC)
    # Cost rows keep the name the workspace had while it ran.
    running.name = "=HYPERLINK(1)"
    running.save()
    _spend(running, "12.5000", day)
    client = client_for(admin_user)
    page = client.get("/costs/?month=2026-02").content.decode()
    assert "12.50 USD" in page
    assert "vendor/plotly/plotly.min.js" in page and "workspaces/costs.js" in page
    for fig in ("fig-over-time", "fig-by-size", "fig-top-spenders", "fig-idle"):
        assert f'id="{fig}"' in page
    found = re.search(r'<script id="fig-over-time" type="application/json">(.*?)</script>', page)
    assert found is not None
    figure = json.loads(found.group(1))
    assert figure["data"][0]["name"] == "churn"
    assert figure["data"][0]["y"][9] == 12.5 and len(figure["data"][0]["x"]) == 28
    export = client.get("/costs/?month=2026-02&export=csv")
    assert export["Content-Type"] == "text/csv"
    assert 'filename="costs-all-2026-02.csv"' in export["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert rows == [
        ["day", "project", "user", "workspace", "size", "cost_usd"],
        ["2026-02-10", "churn", "bob", "'=HYPERLINK(1)", "Standard_D2s_v3", "12.5000"],
    ]
    lead_csv = client.get("/projects/churn/costs/?month=2026-02&export=csv")
    assert 'filename="costs-churn-2026-02.csv"' in lead_csv["Content-Disposition"]


def test_quota_page_saves_through_the_service(
    client_for: Any, admin_user: Any, project: Any, bob: Any
) -> None:
    client = client_for(admin_user)
    page = client.get("/quotas/").content.decode()
    assert "project Churn" in page and "(defaults)" in page
    assert "0 vCPU, 0 GPU, 0 running" in page
    saved = client.post(
        "/quotas/",
        {
            "project": "churn",
            "max_vcpus": 32,
            "max_gpus": 2,
            "max_running": 4,
            "monthly_budget": "900",
        },
    )
    assert saved.status_code == 302
    quota = Quota.objects.get(project=project)
    assert (quota.max_vcpus, quota.max_gpus, quota.monthly_budget) == (32, 2, Decimal(900))
    bad = client.post(
        "/quotas/",
        {"username": "bob", "max_vcpus": -1, "max_gpus": 0, "max_running": 1},
        follow=True,
    )
    assert "Check the limits" in bad.content.decode()
    assert not Quota.objects.filter(user=bob).exists()
    client.post("/quotas/", {"username": "bob", "max_vcpus": 4, "max_gpus": 0, "max_running": 1})
    assert Quota.objects.get(user=bob).max_vcpus == 4


def test_list_pages_query_counts_do_not_grow(
    client_for: Any,
    bob: Any,
    project: Any,
    small: Any,
    admin_user: Any,
    django_assert_num_queries: Any,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    compute_services.quota_set(
        actor=admin_user, project=project, max_vcpus=1000, max_gpus=0, max_running=100
    )
    compute_services.quota_set(
        actor=admin_user, user=bob, max_vcpus=1000, max_gpus=0, max_running=100
    )
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def add(i: int) -> None:
        ws = services.workspace_request(actor=bob, project=project, name=f"w{i}", size=small)
        _spend(ws, "1.0000", day)

    pages = {
        "/workspaces/": bob,
        "/projects/churn/workspaces/": bob,
        "/costs/": admin_user,
        "/quotas/": admin_user,
    }
    add(0)
    one = {}
    for url, user in pages.items():
        client = client_for(user)
        client.get(url)  # the first request may touch the session
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        one[url] = len(ctx.captured_queries)
    for i in range(1, 8):
        add(i)
    for url, user in pages.items():
        client = client_for(user)
        with django_assert_num_queries(one[url]):
            page = client.get(url)
        assert b"w7" in page.content or b"16 vCPU, 0 GPU, 8 running" in page.content


def test_the_workspace_list_searches_sorts_and_pages_in_fixed_queries(
    project: Any,
    bob: Any,
    small: Any,
    client_for: Any,
    settings: Any,
    django_assert_max_num_queries: Any,
) -> None:
    from workspaces import views

    for i in range(3):
        services.workspace_request(actor=bob, project=project, name=f"alpha-{i}", size=small)
    services.workspace_request(actor=bob, project=project, name="beta", size=small)
    client = client_for(bob)
    url = "/projects/churn/workspaces/"

    found = client.get(url, {"q": "alph", "sort": "name"}).content.decode()
    names = re.findall(r'/workspaces/\d+/">([^<]+)</a>', found)
    assert names == ["alpha-0", "alpha-1", "alpha-2"]
    assert "No workspace matches" in client.get(url, {"q": "zzz"}).content.decode()
    # An unknown sort falls back to the newest first.
    newest = client.get(url, {"sort": "'; drop"}).content.decode()
    assert re.findall(r'/workspaces/\d+/">([^<]+)</a>', newest)[0] == "beta"

    views.WORKSPACES_PER_PAGE = 2
    try:
        second = client.get(url, {"sort": "name", "page": 2}).content.decode()
        assert re.findall(r'/workspaces/\d+/">([^<]+)</a>', second) == ["alpha-2", "beta"]
        assert "Page 2 of 2 (4 in all)" in second
        with django_assert_max_num_queries(40) as few:
            client.get(url)
        for i in range(10):
            services.workspace_request(actor=bob, project=project, name=f"more-{i}", size=small)
        with django_assert_max_num_queries(len(few.captured_queries)):
            client.get(url)
    finally:
        views.WORKSPACES_PER_PAGE = 25
