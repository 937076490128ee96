"""kill -9 of a real Celery worker while it provisions a real local notebook.

On Redis and on the embedded file-system broker (which forgets the message
of a worker that dies), the workspace's lease brings the operation back: the
recovery beat's task sends it again once the lease runs out, a second worker
claims it, and the workspace ends running once, with one Jupyter server,
within a bounded time. Leases are seconds long here; see
``background.leases``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from portal.celery import app as celery_app
from portal.celery import leases_recover
from tests.conftest import start_worker, stop_worker
from tests.workspaces.test_worker import attempts, servers_for, state_of, wait_for
from workspaces import services
from workspaces.models import Workspace, WorkspaceState

S = WorkspaceState
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LEASE = "1.5"
GRACE = "2"


def filesystem_options(var_dir: Path) -> dict[str, Any]:
    """The embedded broker's folders, as portal/settings.py sets them."""
    broker = var_dir / "broker"
    for sub in ("queue", "control", "processed"):
        (broker / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "control_folder": str(broker / "control"),
        "processed_folder": str(broker / "processed"),
        "store_processed": False,
    }


@contextlib.contextmanager
def this_process_on(url: str, options: dict[str, Any]) -> Iterator[None]:
    """Send this process's tasks (and pings) through another broker, as an
    embedded install's web and beat do; the connection pools start afresh."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.broker_transport_options)

    def reset_pools() -> None:
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    conf.broker_url, conf.broker_transport_options = url, options
    reset_pools()
    try:
        yield
    finally:
        conf.broker_url, conf.broker_transport_options = saved
        reset_pools()


@pytest.fixture(params=["redis", "filesystem"])
def broker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "redis":
        yield request.param
        return
    var_dir = Path(os.environ["STAGEGATE_VAR_DIR"])
    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")
    with this_process_on("filesystem://", filesystem_options(var_dir)):
        yield request.param
    shutil.rmtree(var_dir / "broker", ignore_errors=True)


@pytest.fixture
def short_leases(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.BACKGROUND_LEASE_SECONDS = float(LEASE)
    settings.BACKGROUND_DISPATCH_GRACE_SECONDS = float(GRACE)
    settings.BACKGROUND_MAX_ATTEMPTS = 6
    monkeypatch.setenv("BACKGROUND_LEASE_SECONDS", LEASE)
    monkeypatch.setenv("BACKGROUND_DISPATCH_GRACE_SECONDS", GRACE)
    monkeypatch.setenv("BACKGROUND_MAX_ATTEMPTS", "6")


def claimed_by(ws: Workspace, worker: str) -> bool:
    row = Workspace.objects.get(pk=ws.pk)
    return row.lease_owner.startswith(f"{worker}@") and row.heartbeat_at is not None


def test_worker_killed_mid_provisioning_ends_once_running_on_either_broker(
    broker: str,
    short_leases: None,
    project: Any,
    bob: Any,
    small: Any,
    provider_cleanup: None,
) -> None:
    doomed = f"doomed-{broker}"
    first = start_worker(doomed, queues="provisioning")
    second = None
    try:
        ws = services.workspace_request(actor=bob, project=project, name="crash", size=small)
        wait_for(lambda: attempts(ws) and claimed_by(ws, doomed), 60, "the first claim")
        assert state_of(ws) == S.PROVISIONING
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.monotonic()
        # The dead worker's lease holds it until it runs out: nothing else runs it.
        assert state_of(ws) == S.PROVISIONING
        second = start_worker(f"survivor-{broker}", queues="provisioning")

        def ended() -> bool:
            leases_recover.apply()
            return state_of(ws) in (S.RUNNING, S.FAILED)

        wait_for(ended, 120, "the provisioning to end")
        assert time.monotonic() - killed_at < 120
        row = Workspace.objects.get(pk=ws.pk)
        assert row.state == S.RUNNING, row.state_reason
        # Recovery has nothing more to do, and nothing runs it a second time.
        for _ in range(3):
            leases_recover.apply()
            time.sleep(float(GRACE) / 2)
        assert state_of(ws) == S.RUNNING
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
    assert len(servers_for(row)) == 1
    tries = attempts(row)
    assert tries[0]["worker"].startswith(f"{doomed}@")
    assert tries[-1]["worker"].startswith(f"survivor-{broker}@")
    assert AuditEvent.objects.filter(action="workspace.running", object_id=str(ws.pk)).count() == 1
    assert not services.OPERATIONS_WORK.active().filter(pk=ws.pk).exists()
