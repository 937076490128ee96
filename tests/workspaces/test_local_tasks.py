"""The allowlist, resize and metering tasks, run in this process against the
local provider (a real JupyterLab server) and the real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Notification
from cloud import get_provider
from compute.models import UsageInterval
from workspaces import services, tasks
from workspaces.models import Workspace, WorkspaceState

S = WorkspaceState


@pytest.fixture
def eager(settings: Any) -> Iterator[None]:
    """Run queued tasks at once, in this process."""
    from portal.celery import app

    settings.CLOUD_PROVIDER = "local"
    settings.WORKSPACES_POLL_SECONDS = 0.2
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False
        app.conf.task_eager_propagates = False


def provider_record(ws: Workspace) -> dict[str, Any]:
    """What the local provider holds for the workspace (its state file)."""
    provider: Any = get_provider("local")
    data: dict[str, Any] = json.loads((provider.root / ws.provider_name / "state.json").read_text())
    return data


@pytest.mark.django_db
def test_allowlist_and_resize_reach_the_local_provider(
    project: Any,
    bob: Any,
    small: Any,
    medium: Any,
    eager: None,
    provider_cleanup: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        ws = services.workspace_request(
            actor=bob, project=project, name="nb", size=small, allowed_ips=["203.0.113.7"]
        )
    ws.refresh_from_db()
    assert ws.state == S.RUNNING, ws.state_reason
    assert provider_record(ws)["allowed_ips"] == ["203.0.113.7/32"]

    with django_capture_on_commit_callbacks(execute=True):
        services.workspace_allowed_ips_set(
            actor=bob, workspace=ws, cidrs=["198.51.100.0/24", "203.0.113.9"]
        )
    assert provider_record(ws)["allowed_ips"] == ["198.51.100.0/24", "203.0.113.9/32"]
    with django_capture_on_commit_callbacks(execute=True):
        services.workspace_allowed_ips_set(actor=bob, workspace=ws, cidrs=[])
    assert provider_record(ws)["allowed_ips"] == []

    with django_capture_on_commit_callbacks(execute=True):
        services.workspace_resize(actor=bob, workspace=ws, size=medium)
    ws.refresh_from_db()
    assert ws.state == S.RUNNING, ws.state_reason
    assert ws.size == medium and ws.requested_size is None
    record = provider_record(ws)
    assert (record["size"]["name"], record["size"]["vcpus"]) == (medium.name, medium.vcpus)
    assert get_provider("local").workspace_status(ws.provider_name).state == "running"
    # The usage of the old size ended where the new one began.
    intervals = UsageInterval.objects.filter(resource_id=ws.pk).order_by("started_at")
    assert [i.size_name for i in intervals] == [small.name, medium.name]
    assert intervals[0].ended_at is not None and intervals[1].ended_at is None


@pytest.mark.django_db
def test_metering_rolls_intervals_over_and_announces_budgets(
    project: Any, alice: Any, bob: Any, small: Any
) -> None:
    project.monthly_budget = Decimal("100.00")
    project.save()
    ws = services.workspace_request(actor=bob, project=project, name="nb", size=small)
    assert services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t")
    assert services.workspace_mark_running(workspace_id=ws.pk, url="http://127.0.0.1:1/lab")
    interval = UsageInterval.objects.get(resource_id=ws.pk)
    # Open since two days ago (a few dollars), and 85 of 100 spent earlier today.
    interval.started_at -= timedelta(days=2)
    interval.day = interval.started_at.date()
    interval.save()
    now = timezone.now()
    UsageInterval.objects.create(
        resource_type="workspaces.workspace",
        resource_id=ws.pk,
        resource_name=ws.name,
        project=project,
        user=bob,
        size=small,
        size_name=small.name,
        hourly_price=Decimal(85),
        started_at=now,
        ended_at=now,
        day=now.date(),
        cost=Decimal(85),
    )

    result = tasks.workspaces_meter_usage.apply().get()
    assert result == {"rolled_over": 1, "announced": {"churn": [80]}}
    open_now = UsageInterval.objects.get(resource_id=ws.pk, ended_at__isnull=True)
    assert open_now.day == now.date()
    assert "80% of the monthly compute budget" in Notification.objects.get(user=alice).text
    # Nothing new to do the second time.
    assert tasks.workspaces_meter_usage.apply().get() == {
        "rolled_over": 0,
        "announced": {},
    }
