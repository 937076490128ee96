"""The cost and quota pages for people who read numbers, not code: an empty
month says so instead of drawing empty axes, budgets show, a quota over its
limit stands out, sizes say what they have."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from compute.models import Quota
from workspaces import services
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(project: Any, bob: Any, small: Any) -> Workspace:
    ws = services.workspace_request(actor=bob, project=project, name="explore", size=small)
    services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t")
    services.workspace_mark_running(workspace_id=ws.pk, url="http://127.0.0.1:9/lab?token=s")
    ws.refresh_from_db()
    return ws


def test_a_month_without_spend_says_so_and_loads_no_chart_library(
    client_for: Any, admin_user: Any, alice: Any, project: Any
) -> None:
    for who, url in ((admin_user, "/costs/"), (alice, "/projects/churn/costs/")):
        page = client_for(who).get(url + "?month=2026-02").content.decode()
        assert 'id="no-spend"' in page and "No compute was used in February 2026" in page
        assert "plotly" not in page and 'data-figure="' not in page


def test_quota_over_its_limit_is_highlighted(
    client_for: Any, admin_user: Any, running: Workspace
) -> None:
    Quota.objects.filter(project=running.project).update(max_vcpus=1)
    page = client_for(admin_user).get("/quotas/").content.decode()
    found = re.search(r"<tr[^>]*>(?:(?!</tr>).)*project Churn(?:(?!</tr>).)*</tr>", page, re.S)
    assert found is not None
    row = found.group(0)
    assert 'class="over-limit-row"' in row and "(over its limit)" in row
    assert "2 vCPU, 0 GPU, 1 running" in row


def test_quota_within_its_limit_is_not_highlighted(
    client_for: Any, admin_user: Any, running: Workspace
) -> None:
    page = client_for(admin_user).get("/quotas/").content.decode()
    assert "over-limit" not in page.replace(".over-limit", "")


def test_the_budget_column_shows_the_budget(client_for: Any, admin_user: Any, project: Any) -> None:
    project.monthly_budget = Decimal("500.00")
    project.save(update_fields=["monthly_budget"])
    page = client_for(admin_user).get("/quotas/").content.decode()
    assert '500.00 USD <span class="muted">(the project\'s own)</span>' in page
    Quota.objects.create(
        project=project, max_vcpus=8, max_gpus=0, max_running=2, monthly_budget=Decimal("750.00")
    )
    page = client_for(admin_user).get("/quotas/").content.decode()
    assert '<span class="budget">750.00 USD</span>' in page


def test_the_catalog_says_what_each_size_has(
    client_for: Any, admin_user: Any, catalog: Any
) -> None:
    page = client_for(admin_user).get("/quotas/").content.decode()
    assert "Standard_NC4as_T4_v3" in page
    assert "4 vCPUs, 28 GB memory, 1 × NVIDIA T4" in page
    assert "2 vCPUs, 8 GB memory, no GPU" in page
