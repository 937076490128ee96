from __future__ import annotations

from typing import Any

import pytest

from portal.celery import ping
from tests.conftest import start_worker, stop_worker


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
        assert any("health-worker" in w for w in response.json()["checks"]["workers"]["workers"])
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
