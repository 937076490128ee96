"""Real Celery workers provisioning real local JupyterLab servers.

These tests run the whole path: a service commits, the task goes through
Redis to a worker process, the worker starts Jupyter through the local
provider, and the page's state comes from the database.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import psutil
import pytest
import redis
from django.conf import settings
from django.db import connection

from audit.models import AuditEvent
from compute import services as compute_services
from compute.models import UsageInterval
from tests.conftest import start_worker, stop_worker
from workspaces import services, tasks
from workspaces.models import Workspace, WorkspaceState

S = WorkspaceState
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_drained(queue: str = "provisioning", timeout: float = 60) -> None:
    """Wait until the broker holds no message for ``queue``: none waiting and
    none delivered but unacknowledged (tasks are acknowledged late, so a task
    still running, or held for a retry, keeps its message unacknowledged)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    def drained() -> bool:
        if client.llen(queue):
            return False
        unacked = client.hvals("unacked")
        return not any(json.loads(value)[2] == queue for value in unacked)

    try:
        wait_for(drained, timeout, f"the {queue} queue to drain")
    finally:
        client.close()


def state_of(ws: Workspace) -> str:
    return Workspace.objects.values_list("state", flat=True).get(pk=ws.pk)


def wait_state(ws: Workspace, state: str, timeout: float = 60) -> Workspace:
    def reached() -> bool:
        current = state_of(ws)
        if current == S.FAILED and state != S.FAILED:
            reason = Workspace.objects.get(pk=ws.pk).state_reason
            raise AssertionError(f"workspace failed: {reason}")
        return current == state

    wait_for(reached, timeout, f"workspace {ws.pk} to be {state}")
    return Workspace.objects.get(pk=ws.pk)


def http_get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def servers_for(ws: Workspace) -> list[psutil.Process]:
    # This run's own provider root: other runs on the machine use the same names.
    marker = f"{settings.LOCAL_PROVIDER_ROOT}/{ws.provider_name}/work"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        # The tracking forwarder's connection server is a fork of the process
        # that then becomes Jupyter: it keeps that command line but is no server.
        if "jupyterlab" in cmdline and marker in cmdline and "tracking_forwarder" not in cmdline:
            found.append(proc)
    return found


def attempts(ws: Workspace, operation: str = "provision") -> list[dict[str, Any]]:
    return list(
        AuditEvent.objects.filter(action=f"workspace.{operation}_attempt", object_id=str(ws.pk))
        .order_by("sequence")
        .values_list("payload", flat=True)
    )


def test_request_runs_a_real_notebook_reached_with_its_token_idle_stopped_and_deleted(
    celery_worker: Any, project: Any, bob: Any, small: Any, provider_cleanup: None
) -> None:
    ws = services.workspace_request(actor=bob, project=project, name="explore", size=small)
    ws = wait_state(ws, S.RUNNING)
    assert len(servers_for(ws)) == 1
    parsed = urllib.parse.urlparse(ws.url)
    token = urllib.parse.parse_qs(parsed.query)["token"][0]
    base = f"{parsed.scheme}://{parsed.netloc}"
    assert http_get(f"{base}/api/contents", token) == 200
    assert http_get(f"{base}/api/contents") == 403  # no token, no notebook
    assert (
        UsageInterval.objects.filter(
            resource_type="workspaces.workspace", resource_id=ws.pk, ended_at__isnull=True
        ).count()
        == 1
    )

    # The beat task with a short idle setting: Jupyter's own last activity decides.
    Workspace.objects.filter(pk=ws.pk).update(idle_shutdown_seconds=1)
    time.sleep(2.5)
    assert tasks.workspaces_idle_shutdown.apply().get() == [ws.pk]
    ws = wait_state(ws, S.STOPPED)
    assert ws.state_reason.startswith("Stopped after 0 idle minutes")
    assert servers_for(ws) == []
    assert not UsageInterval.objects.filter(
        resource_type="workspaces.workspace", resource_id=ws.pk, ended_at__isnull=True
    ).exists()

    services.workspace_delete(actor=bob, workspace=ws)
    ws = wait_state(ws, S.DELETED)
    from cloud import get_provider

    assert get_provider("local").workspace_status(ws.provider_name).state == "deleted"
    actions = list(
        AuditEvent.objects.filter(object_id=str(ws.pk), object_type="workspaces.workspace")
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "workspace.requested",
        "workspace.approved",
        "workspace.provision_attempt",
        "workspace.running",
        "workspace.idle_stopped",
        "workspace.stop_attempt",
        "workspace.stopped",
        "workspace.deleting",
        "workspace.delete_attempt",
        "workspace.deleted",
    ]


def test_worker_killed_mid_provisioning_ends_with_one_running_server(
    transactional_db: Any,
    project: Any,
    bob: Any,
    small: Any,
    provider_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The broker hands an unacknowledged task to another worker after this.
    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", "4")
    first = start_worker("doomed")
    second = None
    try:
        ws = services.workspace_request(actor=bob, project=project, name="crash", size=small)
        wait_for(lambda: attempts(ws), 30, "the first attempt")
        assert state_of(ws) == S.PROVISIONING
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        second = start_worker("survivor")
        ws = wait_state(ws, S.RUNNING, timeout=90)
        # Any duplicate delivery of the task arrives and finds nothing to do.
        wait_drained()
        servers = servers_for(ws)
        assert len(servers) == 1, servers
        tries = attempts(ws)
        assert len(tries) == 2
        assert tries[0]["worker"].startswith("doomed@") and tries[1]["worker"].startswith(
            "survivor@"
        )
        assert tries[0]["task_id"] == tries[1]["task_id"]
        assert (
            AuditEvent.objects.filter(action="workspace.running", object_id=str(ws.pk)).count() == 1
        )
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)


def test_fifty_concurrent_requests_near_the_quota_with_two_workers(
    transactional_db: Any,
    project: Any,
    alice: Any,
    bob: Any,
    admin_user: Any,
    small: Any,
    provider_cleanup: None,
) -> None:
    # Room for exactly three 2-vCPU notebooks in the project.
    compute_services.quota_set(
        actor=admin_user, project=project, max_vcpus=6, max_gpus=0, max_running=10
    )
    for user in (alice, bob):
        compute_services.quota_set(
            actor=admin_user, user=user, max_vcpus=100, max_gpus=0, max_running=100
        )
    workers = [start_worker("w1", "provisioning"), start_worker("w2", "provisioning")]
    try:
        barrier = threading.Barrier(50)
        outcomes: list[str] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            try:
                barrier.wait()
                try:
                    ws = services.workspace_request(
                        actor=alice if i % 2 else bob, project=project, name=f"ws{i}", size=small
                    )
                    outcome = ws.state
                except services.WorkspaceConflict:
                    outcome = "conflict"
                with lock:
                    outcomes.append(outcome)
            finally:
                connection.close()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Three fit; the other 47 wait for an admin instead of squeezing in.
        assert sorted(set(outcomes)) == ["approved", "pending_approval"]
        assert outcomes.count("approved") == 3
        assert outcomes.count("pending_approval") == 47
        approved = list(Workspace.objects.filter(state__in=[S.APPROVED, S.PROVISIONING, S.RUNNING]))
        assert len(approved) == 3
        for ws in approved:
            wait_state(ws, S.RUNNING, timeout=90)
        wait_drained()
        for ws in approved:
            assert len(servers_for(ws)) == 1
            assert len(attempts(ws)) == 1
        assert {a["worker"].split("@")[0] for ws in approved for a in attempts(ws)} <= {"w1", "w2"}
    finally:
        for w in workers:
            stop_worker(w)


@pytest.mark.django_db
def test_a_provider_that_is_not_configured_fails_the_workspace_with_the_reason(
    project: Any, bob: Any, small: Any, settings: Any
) -> None:
    settings.CLOUD_PROVIDER = "azure"
    settings.AZURE_SUBSCRIPTION_ID = ""
    settings.AZURE_NAME_SALT = "k7q"  # named at the request; the rest is missing
    bob.entra_object_id = "22222222-2222-2222-2222-222222222222"
    bob.save(update_fields=["entra_object_id"])
    ws = services.workspace_request(actor=bob, project=project, name="az", size=small)
    result = tasks.workspace_provision.apply(kwargs={"workspace_id": ws.pk}).get()
    assert result == "failed"
    ws.refresh_from_db()
    assert ws.state == S.FAILED
    assert ws.state_reason.startswith("provision failed:")
    assert "AZURE_SUBSCRIPTION_ID" in ws.state_reason
    # A second delivery of the same task finds nothing to claim.
    assert (
        tasks.workspace_provision.apply(kwargs={"workspace_id": ws.pk}).get() == "nothing to claim"
    )


@pytest.mark.django_db
def test_backoff_grows_and_is_jittered(settings: Any) -> None:
    settings.WORKSPACES_RETRY_BASE_SECONDS = 2.0
    samples = [tasks.backoff_seconds(4) for _ in range(200)]
    assert all(1.0 <= s <= 32.0 for s in samples)
    assert len({round(s, 3) for s in samples}) > 100
    assert max(tasks.backoff_seconds(0) for _ in range(50)) <= 2.0
