"""The API as owner, member, read-only member, outsider and admin; bad input
answers 400 or 409 and changes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from audit.models import AuditEvent
from compute import services as compute_services
from compute.models import ComputeSize, Quota, UsageInterval
from workspaces import services
from workspaces.models import Workspace, WorkspaceState

S = WorkspaceState
pytestmark = pytest.mark.django_db
BASE = "/api/projects/churn/workspaces/"


@pytest.fixture
def running(project: Any, bob: Any, small: Any) -> Workspace:
    ws = services.workspace_request(actor=bob, project=project, name="nb", size=small)
    services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t")
    services.workspace_mark_running(workspace_id=ws.pk, url="http://127.0.0.1:9/lab?token=s3cret")
    ws.refresh_from_db()
    return ws


def snapshot() -> tuple[Any, ...]:
    return (
        list(Workspace.objects.order_by("pk").values_list("state", "size_id", "allowed_ips")),
        AuditEvent.objects.count(),
    )


def test_compute_sizes_are_listed_for_everyone_and_edited_by_admins(
    api_for: Any, bob: Any, admin_user: Any, catalog: Any
) -> None:
    body = api_for(bob).get("/api/compute-sizes/?page_size=100").json()
    names = [s["name"] for s in body["results"]]
    assert "Standard_NC6s_v3" in names and "Standard_DS3_v2" in names
    ds3 = next(s for s in body["results"] if s["name"] == "Standard_DS3_v2")
    assert (
        ds3["vcpus"] == 4 and ds3["hourly_price"] == "0.2930" and ds3["price_date"] == "2025-01-15"
    )
    new = {
        "name": "Standard_D2as_v5",
        "vcpus": 2,
        "memory_gb": "8",
        "hourly_price": "0.086",
        "price_date": "2025-06-01",
    }
    assert api_for(bob).post("/api/compute-sizes/", new, format="json").status_code == 403
    response = api_for(admin_user).post("/api/compute-sizes/", new, format="json")
    assert response.status_code == 201, response.json()
    size_id = response.json()["id"]
    bad = api_for(admin_user).patch(
        f"/api/compute-sizes/{size_id}/", {"hourly_price": "-1"}, format="json"
    )
    assert bad.status_code == 400
    ok = api_for(admin_user).patch(
        f"/api/compute-sizes/{size_id}/", {"enabled": False}, format="json"
    )
    assert ok.status_code == 200 and ok.json()["enabled"] is False
    assert api_for(bob).get(f"/api/compute-sizes/{size_id}/").status_code == 404
    assert AuditEvent.objects.filter(action__startswith="compute_size.").count() == 2


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("alice", 201),
        ("bob", 201),
        ("carol", 403),
        ("dave", 403),
        ("charlie", 404),
        ("admin_user", 403),
    ],
)
def test_request_access(
    api_for: Any, request: Any, project: Any, small: Any, who: str, status: int
) -> None:
    user = request.getfixturevalue(who)
    response = api_for(user).post(BASE, {"name": "nb", "size": small.name}, format="json")
    assert response.status_code == status, response.content
    assert Workspace.objects.count() == (1 if status == 201 else 0)


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("alice", 200),
        ("bob", 200),
        ("carol", 200),
        ("dave", 200),
        ("charlie", 404),
        ("admin_user", 200),
    ],
)
def test_read_access(api_for: Any, request: Any, running: Workspace, who: str, status: int) -> None:
    user = request.getfixturevalue(who)
    listed = api_for(user).get(BASE)
    detail = api_for(user).get(f"{BASE}{running.pk}/")
    assert (listed.status_code, detail.status_code) == (status, status)
    if status == 200:
        assert listed.json()["results"][0]["name"] == "nb"
        # The notebook's link carries its token: only its owner gets it.
        expected = running.url if who == "bob" else None
        assert detail.json()["url"] == expected
        assert detail.json()["state"] == "running"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("alice", 202),
        ("bob", 202),
        ("carol", 403),
        ("dave", 403),
        ("charlie", 404),
        ("admin_user", 202),
    ],
)
def test_stop_access(api_for: Any, request: Any, running: Workspace, who: str, status: int) -> None:
    user = request.getfixturevalue(who)
    response = api_for(user).post(f"{BASE}{running.pk}/stop/")
    assert response.status_code == status
    running.refresh_from_db()
    assert running.state == (S.STOPPING if status == 202 else S.RUNNING)


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 202), ("bob", 202), ("carol", 403), ("charlie", 404), ("admin_user", 403)],
)
def test_resize_access(
    api_for: Any, request: Any, running: Workspace, medium: Any, who: str, status: int
) -> None:
    user = request.getfixturevalue(who)
    response = api_for(user).post(
        f"{BASE}{running.pk}/resize/", {"size": medium.name}, format="json"
    )
    assert response.status_code == status
    running.refresh_from_db()
    assert running.state == (S.RESIZING if status == 202 else S.RUNNING)


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 202), ("bob", 202), ("carol", 403), ("charlie", 404), ("admin_user", 202)],
)
def test_delete_access(
    api_for: Any, request: Any, running: Workspace, who: str, status: int
) -> None:
    user = request.getfixturevalue(who)
    response = api_for(user).delete(f"{BASE}{running.pk}/")
    assert response.status_code == status
    running.refresh_from_db()
    assert running.state == (S.DELETING if status == 202 else S.RUNNING)


def test_start_stop_flow_and_conflicts(api_for: Any, bob: Any, running: Workspace) -> None:
    api = api_for(bob)
    before = snapshot()
    response = api.post(f"{BASE}{running.pk}/start/")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Cannot start a workspace that is running.",
        "state": "running",
    }
    assert snapshot() == before
    assert api.post(f"{BASE}{running.pk}/stop/").status_code == 202
    conflict = api.post(f"{BASE}{running.pk}/stop/")
    assert conflict.status_code == 409 and conflict.json()["state"] == "stopping"
    services.workspace_mark_stopped(workspace_id=running.pk)
    started = api.post(f"{BASE}{running.pk}/start/")
    assert started.status_code == 202 and started.json()["state"] == "approved"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "nb", "size": "Standard_Nope"},
        {"name": "nb", "size": "Standard_D2s_v3", "allowed_ips": ["10.0.0.0/40"]},
        {"name": "nb", "size": "Standard_D2s_v3", "allowed_ips": "10.0.0.1"},
        {"name": "nb", "size": "Standard_D2s_v3", "idle_shutdown_minutes": -1},
        {"name": "nb", "size": "Standard_D2s_v3", "idle_shutdown_minutes": 10**9},
        {"name": "cl", "kind": "cluster", "size": "Standard_D2s_v3", "max_nodes": 100000},
        {
            "name": "cl",
            "kind": "cluster",
            "size": "Standard_D2s_v3",
            "min_nodes": 5,
            "max_nodes": 2,
        },
        {"name": "cl", "kind": "gpu-farm", "size": "Standard_D2s_v3"},
        {"size": "Standard_D2s_v3"},
    ],
)
def test_bad_input_is_400_and_changes_nothing(
    api_for: Any, bob: Any, catalog: Any, project: Any, body: Any
) -> None:
    before = snapshot()
    response = api_for(bob).post(BASE, body, format="json")
    assert response.status_code == 400, response.content
    assert snapshot() == before


def test_resize_bad_input(api_for: Any, bob: Any, running: Workspace) -> None:
    api = api_for(bob)
    before = snapshot()
    same = api.post(f"{BASE}{running.pk}/resize/", {"size": "Standard_D2s_v3"}, format="json")
    assert same.status_code == 400 and "already" in same.json()["size"][0]
    unknown = api.post(f"{BASE}{running.pk}/resize/", {"size": "Huge"}, format="json")
    assert unknown.status_code == 400
    assert api.post(f"{BASE}{running.pk}/resize/", {}, format="json").status_code == 400
    assert snapshot() == before


def test_allowed_ips_endpoint(api_for: Any, bob: Any, carol: Any, running: Workspace) -> None:
    url = f"{BASE}{running.pk}/allowed-ips/"
    assert api_for(carol).put(url, {"allowed_ips": ["192.0.2.1"]}, format="json").status_code == 403
    bad = api_for(bob).put(url, {"allowed_ips": ["192.0.2.1/99"]}, format="json")
    assert bad.status_code == 400 and "allowed_ips" in bad.json()
    ok = api_for(bob).put(url, {"allowed_ips": ["192.0.2.1", "192.0.2.0/24"]}, format="json")
    assert ok.status_code == 200 and ok.json()["allowed_ips"] == ["192.0.2.1/32", "192.0.2.0/24"]


def test_cluster_request_and_unsupported_actions(
    api_for: Any, bob: Any, small: Any, project: Any
) -> None:
    response = api_for(bob).post(
        BASE,
        {"name": "cl", "kind": "cluster", "size": small.name, "min_nodes": 0, "max_nodes": 4},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["state"] == "approved"  # 2 vCPUs × 4 nodes = 8, within 8
    ws_id = response.json()["id"]
    services.workspace_claim(workspace_id=ws_id, operation="provision", task_id="t")
    services.workspace_mark_running(workspace_id=ws_id)
    stop = api_for(bob).post(f"{BASE}{ws_id}/stop/")
    assert stop.status_code == 409 and stop.json()["state"] == "running"
    # min_nodes 0: nothing is billed while the cluster sits idle.
    assert not UsageInterval.objects.filter(
        resource_type="workspaces.workspace", resource_id=ws_id
    ).exists()


def test_over_quota_request_via_api(api_for: Any, bob: Any, gpu: Any, project: Any) -> None:
    response = api_for(bob).post(BASE, {"name": "gpu", "size": gpu.name}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "pending_approval" and body["approval"] is not None
    assert "Project GPUs: 0 in use + 1 requested > 0" in body["quota_exceeded"]
    again = api_for(bob).post(BASE, {"name": "gpu2", "size": gpu.name}, format="json")
    assert again.status_code == 201 and again.json()["state"] == "pending_approval"
    assert again.json()["approval"] != body["approval"]


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "charlie"])
def test_quotas_are_for_admins(api_for: Any, request: Any, project: Any, who: str) -> None:
    user = request.getfixturevalue(who)
    api = api_for(user)
    assert api.get("/api/quotas/").status_code == 403
    assert api.get("/api/quotas/projects/churn/").status_code == 403
    put = api.put(
        "/api/quotas/projects/churn/",
        {"max_vcpus": 64, "max_gpus": 4, "max_running": 8},
        format="json",
    )
    assert put.status_code == 403
    assert not Quota.objects.exists()


def test_admin_reads_and_changes_quotas(
    api_for: Any, admin_user: Any, project: Any, bob: Any
) -> None:
    api = api_for(admin_user)
    shown = api.get("/api/quotas/projects/churn/").json()
    assert (shown["max_vcpus"], shown["max_gpus"], shown["max_running"]) == (8, 0, 2)
    body = {"max_vcpus": 64, "max_gpus": 4, "max_running": 8, "monthly_budget": "1500.00"}
    assert api.put("/api/quotas/projects/churn/", body, format="json").status_code == 200
    for bad in ({**body, "max_vcpus": -4}, {**body, "max_gpus": 10**7}, {"max_vcpus": 1}):
        assert api.put("/api/quotas/projects/churn/", bad, format="json").status_code == 400
    user_put = api.put(
        "/api/quotas/users/bob/", {"max_vcpus": 4, "max_gpus": 0, "max_running": 1}, format="json"
    )
    assert user_put.status_code == 200 and user_put.json()["user"] == "bob"
    assert api.get("/api/quotas/users/nobody/").status_code == 404
    listed = api.get("/api/quotas/").json()["results"]
    assert {(q["project"], q["user"]) for q in listed} == {("churn", None), (None, "bob")}
    assert Quota.objects.get(project=project).monthly_budget == Decimal("1500.00")


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 403), ("carol", 403), ("charlie", 404), ("admin_user", 200)],
)
def test_costs_access(
    api_for: Any, request: Any, running: Workspace, who: str, status: int
) -> None:
    user = request.getfixturevalue(who)
    response = api_for(user).get("/api/costs/?project=churn")
    assert response.status_code == status
    if status == 200:
        body = response.json()
        assert body["by_project"][0]["name"] == "churn"
        assert body["by_user"][0]["name"] == "bob"


def test_costs_bad_month_and_all_projects(
    api_for: Any, admin_user: Any, bob: Any, running: Workspace
) -> None:
    assert api_for(admin_user).get("/api/costs/?month=2026-13").status_code == 400
    assert api_for(admin_user).get("/api/costs/?month=soon").status_code == 400
    body = api_for(admin_user).get("/api/costs/?month=2020-01").json()
    assert body["total"] == "0.00" and body["by_project"] == []
    assert api_for(bob).get("/api/costs/").status_code == 403  # leads nothing


def test_workspace_list_query_count_does_not_grow(
    api_for: Any,
    bob: Any,
    project: Any,
    small: Any,
    admin_user: Any,
    django_assert_num_queries: Any,
) -> None:
    compute_services.quota_set(
        actor=admin_user, project=project, max_vcpus=1000, max_gpus=0, max_running=100
    )
    compute_services.quota_set(
        actor=admin_user, user=bob, max_vcpus=1000, max_gpus=0, max_running=100
    )
    services.workspace_request(actor=bob, project=project, name="w0", size=small)
    api = api_for(bob)
    with django_assert_num_queries(4):
        assert len(api.get(BASE).json()["results"]) == 1
    for i in range(1, 8):
        services.workspace_request(actor=bob, project=project, name=f"w{i}", size=small)
    with django_assert_num_queries(4):
        assert len(api.get(BASE).json()["results"]) == 8


def test_sizes_list_query_count(
    api_for: Any, bob: Any, catalog: Any, django_assert_num_queries: Any
) -> None:
    api = api_for(bob)
    with django_assert_num_queries(2):
        api.get("/api/compute-sizes/?page_size=1")
    ComputeSize.objects.create(
        name="X", vcpus=1, memory_gb=1, hourly_price=1, price_date="2025-01-01"
    )
    with django_assert_num_queries(2):
        api.get("/api/compute-sizes/")
