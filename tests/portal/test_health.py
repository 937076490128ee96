from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest
from django.conf import settings as django_settings

from portal.celery import ping
from tests.conftest import ROOT, start_worker, stop_worker


@pytest.mark.worker
def test_task_round_trip_through_real_worker(celery_worker: Any) -> None:
    result = ping.delay()
    assert result.get(timeout=30) == "pong"
    from django_celery_results.models import TaskResult

    assert TaskResult.objects.filter(task_id=result.id, status="SUCCESS").exists()


@pytest.mark.worker
def test_healthz_reflects_a_stopped_worker(transactional_db: Any, client: Any) -> None:
    # No worker yet: the broker and database are up, the check is not.
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["workers"]["ok"] is False

    proc = start_worker("health-worker")
    try:
        response = client.get("/healthz")
        assert response.status_code == 200, response.json()
        checks = response.json()["checks"]
        assert any("health-worker" in w for w in checks["workers"]["workers"])
        # A tiny task went through every queue and back; the queues are empty.
        queues = checks["queues"]["queues"]
        assert sorted(queues) == ["data", "default", "provisioning", "training"]
        assert all(q["ok"] and q["depth"] == 0 for q in queues.values()), queues
        assert checks["background_work"]["waiting"] == 0
    finally:
        stop_worker(proc)

    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"]["ok"] is False


def test_healthz_reports_broker_down(db: Any, client: Any, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.worker
def test_healthz_fails_for_a_queue_no_worker_consumes(
    transactional_db: Any, client: Any, settings: Any
) -> None:
    settings.HEALTHZ_ROUNDTRIP_TIMEOUT = 2.0
    proc = start_worker("default-only", queues="default")
    try:
        response = client.get("/healthz")
    finally:
        stop_worker(proc)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["workers"]["ok"] is True  # it answers pings
    assert checks["queues"]["queues"]["default"]["ok"] is True
    assert checks["queues"]["error"].startswith(
        "No worker ran a task from data, provisioning, training"
    )


@pytest.mark.worker
def test_healthz_fails_while_the_worker_answers_pings_but_its_pool_is_stuck(
    transactional_db: Any, client: Any, settings: Any
) -> None:
    """The main process answers pings; the one pool process that runs tasks
    is stopped (as if blocked): only the round trip tells."""
    settings.HEALTHZ_ROUNDTRIP_TIMEOUT = 2.0
    db = django_settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "-n",
            "stuck@%h",
            "-l",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the worker did not become healthy"
            assert proc.poll() is None
        (child,) = psutil.Process(proc.pid).children()
        child.send_signal(signal.SIGSTOP)
        response = client.get("/healthz")
        assert response.status_code == 503, response.json()
        checks = response.json()["checks"]
        assert checks["workers"]["ok"] is True
        assert checks["queues"]["ok"] is False
        child.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 30
        while client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the worker did not recover"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_healthz_says_whether_user_code_is_sandboxed(
    db: Any, client: Any, settings: Any, tmp_path: Any
) -> None:
    import cloud
    from cloud.local import LocalProvider

    settings.CLOUD_PROVIDER = "local"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # no broker: answer at once
    cloud.reset_providers()
    try:
        sandbox = client.get("/healthz").json()["checks"]["sandbox"]
        assert sandbox == {"ok": True, "available": True, "detail": sandbox["detail"]}
        cloud._providers["local"] = LocalProvider(tmp_path, bwrap="/nonexistent/bwrap")
        sandbox = client.get("/healthz").json()["checks"]["sandbox"]
        assert sandbox["available"] is False
        assert "bubblewrap is not installed" in sandbox["detail"]
    finally:
        cloud.reset_providers()
