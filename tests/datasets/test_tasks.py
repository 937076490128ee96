"""Task wiring through a real Celery worker, claims, retries and schedules."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from datasets import services, tasks
from datasets.models import Ingestion, IngestionStatus, ProfileStatus, Trigger
from tests.datasets.conftest import upload


def wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.worker
def test_upload_is_ingested_and_profiled_by_a_real_worker(
    celery_worker: Any, project: Any, alice: Any, storage: Any, settings: Any
) -> None:
    # The worker is another process: use the object store it uses (under the
    # test run's STAGEGATE_VAR_DIR), not this test's private one.
    settings.STAGEGATE_STORAGE_URL = f"file://{settings.VAR_DIR / 'storage'}"
    source = services.source_create(actor=alice, project=project, name="W", kind="upload")
    ingestion = services.snapshot_upload(actor=alice, source=source, upload=upload())

    def done() -> bool:
        ingestion.refresh_from_db()
        return ingestion.is_done

    wait_for(done)
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    assert ingestion.rows_processed == 200
    snapshot = ingestion.snapshot
    assert snapshot is not None

    def profiled() -> bool:
        snapshot.profile.refresh_from_db()
        return snapshot.profile.status in (ProfileStatus.READY, ProfileStatus.FAILED)

    wait_for(profiled)
    assert snapshot.profile.status == ProfileStatus.READY, snapshot.profile.error
    assert snapshot.profile.data["rows"] == 200


def test_a_redelivered_task_does_nothing_twice(upload_source: Any, alice: Any) -> None:
    ingestion = services.snapshot_upload(actor=alice, source=upload_source, upload=upload())
    tasks.ingestion_run.apply(kwargs={"ingestion_id": ingestion.pk})
    tasks.ingestion_run.apply(kwargs={"ingestion_id": ingestion.pk})
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.SUCCEEDED
    assert ingestion.attempts == 1
    assert upload_source.snapshots.count() == 1


def test_transient_failures_are_retried_then_recorded(
    project: Any, alice: Any, settings: Any
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    settings.DATA_EGRESS_LOOPBACK_PORTS = [closed_port]
    source = services.source_create(
        actor=alice,
        project=project,
        name="Down",
        kind="postgres",
        config={
            "host": "127.0.0.1",
            "port": closed_port,
            "database": "d",
            "user": "u",
            "query": "SELECT 1",
        },
        secrets={"password": "Down-Secret-99"},
    )
    ingestion = Ingestion.objects.create(source=source, trigger=Trigger.MANUAL)
    # apply() runs the retries inline, without their countdown; the last one gives up.
    result = tasks.ingestion_run.apply(kwargs={"ingestion_id": ingestion.pk})
    assert result.successful()
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.FAILED
    assert ingestion.attempts == 5
    assert ingestion.error.startswith("Gave up after 5 attempts: Could not connect")
    assert "Down-Secret-99" not in ingestion.error


def test_schedule_creates_a_periodic_task_and_the_refresh_queues_a_pull(
    project: Any, alice: Any, api_for: Any
) -> None:
    api = api_for(alice)
    response = api.post(
        "/api/projects/churn/sources/",
        {
            "name": "Nightly",
            "kind": "https",
            "config": {"url": "https://example.com/x.csv"},
            "refresh_cron": "0 2 * * *",
        },
        format="json",
    )
    assert response.status_code == 201
    source_id = response.json()["id"]
    task = PeriodicTask.objects.get(name=f"datasets.source.{source_id}.refresh")
    assert task.task == "datasets.tasks.source_refresh"
    assert task.queue == "data"
    assert json.loads(task.kwargs) == {"source_id": source_id}
    assert (task.crontab.minute, task.crontab.hour) == ("0", "2")
    next_run = datetime.fromisoformat(response.json()["next_run"])
    now = timezone.now()
    assert now < next_run <= now + timedelta(days=1)
    assert next_run.hour == 2 and next_run.minute == 0

    tasks.source_refresh.apply(kwargs={"source_id": source_id})
    pulled = Ingestion.objects.get(source_id=source_id)
    assert pulled.trigger == Trigger.SCHEDULE
    # A second tick while one is queued does not pile up pulls.
    tasks.source_refresh.apply(kwargs={"source_id": source_id})
    assert Ingestion.objects.filter(source_id=source_id).count() == 1

    api.patch(f"/api/projects/churn/sources/{source_id}/", {"refresh_cron": ""}, format="json")
    assert not PeriodicTask.objects.filter(name=f"datasets.source.{source_id}.refresh").exists()


def test_a_pull_lost_with_its_worker_is_sent_again_by_the_next_pull(
    project: Any, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    source = services.source_create(
        actor=alice,
        project=project,
        name="H",
        kind="https",
        config={"url": "https://example.com/a.csv"},
    )
    lost = Ingestion.objects.create(
        source=source,
        trigger=Trigger.MANUAL,
        status=IngestionStatus.RUNNING,
        started_at=timezone.now() - timedelta(hours=2),
        lease_owner="gone@host:task-1",
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    with django_capture_on_commit_callbacks(execute=False) as sent:
        again = services.source_pull_request(actor=alice, source=source)
    assert again.pk == lost.pk and len(sent) == 1
    lost.refresh_from_db()
    assert lost.status == IngestionStatus.PENDING and lost.lease_owner == ""
    assert lost.lease_expires_at is not None and lost.lease_expires_at > timezone.now()
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert services.source_pull_request(actor=alice, source=source).pk == lost.pk
    assert sent == []
