"""The task machinery against a scripted stand-in for a cloud provider:
polling, retries with backoff on transient errors, the final failure.

The stand-in replaces the cloud (what ``cloud.get_provider`` returns for the
name ``scripted``), not any of the portal's own code; the tasks run eagerly,
so Celery's retries run at once, in this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import cloud
from audit.models import AuditEvent
from cloud.base import ResourceState, ResourceStatus, TransientProviderError
from workspaces import services, tasks
from workspaces.models import Workspace, WorkspaceState

S = WorkspaceState
pytestmark = pytest.mark.django_db


class ScriptedProvider:
    """Answers each call with the next scripted outcome (a state or an exception)."""

    name = "scripted"

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.calls: list[tuple[str, str]] = []

    def _next(self, op: str, name: str) -> ResourceStatus:
        self.calls.append((op, name))
        outcome = self.script.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return ResourceStatus(name, outcome, url=f"http://127.0.0.1:1/lab?token={name}")

    def workspace_create(self, spec: Any) -> ResourceStatus:
        return self._next("create", spec.name)

    def workspace_status(self, name: str) -> ResourceStatus:
        return self._next("status", name)

    def workspace_stop(self, name: str) -> ResourceStatus:
        return self._next("stop", name)


@pytest.fixture
def scripted(settings: Any) -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider()
    settings.WORKSPACES_POLL_SECONDS = 0
    settings.WORKSPACES_RETRY_BASE_SECONDS = 0.001
    settings.WORKSPACES_MAX_ERRORS = 3
    cloud._providers["scripted"] = provider  # type: ignore[assignment]
    yield provider
    cloud._providers.pop("scripted", None)


@pytest.fixture
def approved(project: Any, bob: Any, small: Any) -> Workspace:
    ws = services.workspace_request(actor=bob, project=project, name="nb", size=small)
    Workspace.objects.filter(pk=ws.pk).update(provider="scripted")
    return ws


def provision(ws: Workspace) -> Any:
    return tasks.workspace_provision.apply(kwargs={"workspace_id": ws.pk}).get()


def test_polls_until_the_provider_reports_running(
    scripted: ScriptedProvider, approved: Workspace
) -> None:
    scripted.script = [ResourceState.CREATING, ResourceState.CREATING, ResourceState.RUNNING]
    assert provision(approved) == "running"
    assert (
        scripted.calls
        == [("create", f"sg-ws-{approved.pk}")] + [("status", f"sg-ws-{approved.pk}")] * 2
    )
    approved.refresh_from_db()
    assert approved.state == S.RUNNING and approved.url.endswith(f"sg-ws-{approved.pk}")
    # One attempt at the provider call; the polls are not attempts.
    assert AuditEvent.objects.filter(action="workspace.provision_attempt").count() == 1


def test_transient_errors_are_retried_then_succeed(
    scripted: ScriptedProvider, approved: Workspace
) -> None:
    scripted.script = [
        TransientProviderError("429 throttled"),
        TransientProviderError("503"),
        ResourceState.RUNNING,
    ]
    assert provision(approved) == "running"
    assert [c[0] for c in scripted.calls] == ["create", "create", "create"]
    attempts = AuditEvent.objects.filter(action="workspace.provision_attempt").order_by("sequence")
    assert [e.payload["attempt"] for e in attempts] == [1, 2, 3]


def test_the_last_transient_error_fails_the_workspace_with_the_reason(
    scripted: ScriptedProvider, approved: Workspace
) -> None:
    scripted.script = [TransientProviderError("503 from the cloud")] * 3
    assert provision(approved) == "failed"
    approved.refresh_from_db()
    assert approved.state == S.FAILED
    assert approved.state_reason == "provision failed after 3 tries: 503 from the cloud"


def test_a_provider_reporting_failure_fails_the_workspace(
    scripted: ScriptedProvider, approved: Workspace
) -> None:
    scripted.script = [ResourceState.FAILED]
    assert provision(approved) == "failed"
    approved.refresh_from_db()
    assert approved.state_reason == "provision: the provider reports failed"


def test_idle_beat_stops_idle_notebooks_and_notices_stopped_ones(
    scripted: ScriptedProvider, project: Any, bob: Any, alice: Any, small: Any
) -> None:
    workspaces = []
    for owner, name in ((bob, "idle"), (alice, "gone")):
        ws = services.workspace_request(actor=owner, project=project, name=name, size=small)
        Workspace.objects.filter(pk=ws.pk).update(provider="scripted", idle_shutdown_seconds=60)
        services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t")
        services.workspace_mark_running(workspace_id=ws.pk)
        workspaces.append(ws)

    class Status(ScriptedProvider):
        def workspace_status(self, name: str) -> ResourceStatus:
            if name == workspaces[0].provider_name:
                return ResourceStatus(name, ResourceState.RUNNING, idle_seconds=61.0)
            return ResourceStatus(name, ResourceState.STOPPED, detail="idle shutdown by Azure")

    cloud._providers["scripted"] = Status()  # type: ignore[assignment]
    assert tasks.workspaces_idle_shutdown.apply().get() == [workspaces[0].pk]
    idle, gone = (Workspace.objects.get(pk=w.pk) for w in workspaces)
    assert idle.state == S.STOPPING and idle.state_reason.startswith("Stopped after 1 idle minute ")
    assert gone.state == S.STOPPED
    assert gone.state_reason == "Stopped outside the portal: idle shutdown by Azure."


def test_beat_runs_the_idle_and_metering_tasks_on_the_provisioning_queue() -> None:
    from django.conf import settings

    from portal.celery import app

    entries = {
        k: v for k, v in settings.CELERY_BEAT_SCHEDULE.items() if k.startswith("workspaces-")
    }
    assert {e["task"] for e in entries.values()} == {
        "workspaces.tasks.workspaces_idle_shutdown",
        "workspaces.tasks.workspaces_meter_usage",
    }
    for entry in entries.values():
        assert entry["task"] in app.tasks
        assert app.amqp.router.route({}, entry["task"])["queue"].name == "provisioning"
