"""Leases on background work, and the recovery of work whose lease ran out,
on the data stage's real models (no worker: the recovery's own logic)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from background import leases
from datasets import services, tasks
from datasets.models import (
    DataSource,
    Ingestion,
    IngestionStatus,
    ProfileStatus,
    SourceKind,
    Split,
    SplitStatus,
)
from portal.celery import leases_recover
from tests.datasets.conftest import stored_files, upload

pytestmark = pytest.mark.django_db


def expire(row: Any, **changes: Any) -> None:
    type(row).objects.filter(pk=row.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1), **changes
    )


def test_every_kind_of_background_work_is_registered() -> None:
    names = {work.name for work in leases.registered()}
    assert {"ingestion", "profile", "split", "source_test", "workspace_operation"} <= names


def test_new_work_carries_a_lease_that_runs_out_if_no_worker_claims_it(
    upload_source: DataSource, alice: Any, settings: Any
) -> None:
    settings.BACKGROUND_DISPATCH_GRACE_SECONDS = 30
    before = timezone.now()
    ingestion = services.snapshot_upload(actor=alice, source=upload_source, upload=upload())
    ingestion.refresh_from_db()
    assert ingestion.lease_owner == ""
    assert ingestion.dispatched_at is not None and ingestion.dispatched_at >= before
    assert ingestion.lease_expires_at is not None
    assert (ingestion.lease_expires_at - ingestion.dispatched_at).total_seconds() == 30
    # Within its lease, recovery leaves it alone.
    assert leases.lease_recover(services.INGESTIONS) == {"redispatched": [], "failed": []}


def test_a_claim_takes_the_lease_and_the_heartbeat_extends_it(
    upload_source: DataSource, alice: Any, settings: Any
) -> None:
    settings.BACKGROUND_LEASE_SECONDS = 0.3
    ingestion = services.snapshot_upload(actor=alice, source=upload_source, upload=upload())
    rows = Ingestion.objects.filter(pk=ingestion.pk, status=IngestionStatus.PENDING)
    assert leases.lease_claim(rows, owner="w1:t1", status=IngestionStatus.RUNNING)
    assert not leases.lease_claim(rows, owner="w2:t2", status=IngestionStatus.RUNNING)
    ingestion.refresh_from_db()
    assert (ingestion.lease_owner, ingestion.attempts) == ("w1:t1", 1)
    first = ingestion.lease_expires_at
    time.sleep(0.05)
    assert leases.heartbeat(Ingestion, ingestion.pk, owner="w1:t1")
    assert not leases.heartbeat(Ingestion, ingestion.pk, owner="w2:t2")
    ingestion.refresh_from_db()
    assert first is not None and ingestion.lease_expires_at is not None
    assert ingestion.lease_expires_at > first


def test_a_running_ingestion_whose_worker_died_runs_again_and_ends_once(
    upload_source: DataSource,
    alice: Any,
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    ingestion = services.snapshot_upload(actor=alice, source=upload_source, upload=upload())
    leases.lease_claim(
        Ingestion.objects.filter(pk=ingestion.pk), owner="dead:t1", status=IngestionStatus.RUNNING
    )
    expire(ingestion)
    with django_capture_on_commit_callbacks(execute=True) as sent:
        report = leases_recover.apply().get()
    assert report["ingestion"]["redispatched"] == [ingestion.pk]
    assert len(sent) >= 1
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    assert ingestion.attempts == 2  # the lost run and the one that finished
    assert ingestion.snapshot is not None and ingestion.snapshot.version == 1
    # Nothing left to recover; a second pass does nothing.
    assert leases.lease_recover(services.INGESTIONS)["redispatched"] == []


def test_work_whose_message_was_lost_is_sent_again_with_a_longer_grace(
    upload_source: DataSource, alice: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.BACKGROUND_DISPATCH_GRACE_SECONDS = 10
    ingestion = services.snapshot_upload(actor=alice, source=upload_source, upload=upload())
    expire(ingestion, attempts=2)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        report = leases.lease_recover(services.INGESTIONS)
    assert report == {"redispatched": [ingestion.pk], "failed": []}
    assert len(sent) == 1
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.PENDING
    assert ingestion.attempts == 3  # the lost delivery counts
    assert ingestion.dispatched_at is not None and ingestion.lease_expires_at is not None
    waited = (ingestion.lease_expires_at - ingestion.dispatched_at).total_seconds()
    assert waited == 10 * 2**2


def test_work_out_of_attempts_fails_with_its_reason_and_its_staging_is_removed(
    upload_source: DataSource,
    alice: Any,
    settings: Any,
    storage: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.BACKGROUND_MAX_ATTEMPTS = 3
    ingestion = services.snapshot_upload(actor=alice, source=upload_source, upload=upload())
    assert len(stored_files(storage / "staging")) == 1
    leases.lease_claim(
        Ingestion.objects.filter(pk=ingestion.pk), owner="dead:t3", status=IngestionStatus.RUNNING
    )
    expire(ingestion, attempts=3)
    with django_capture_on_commit_callbacks(execute=True) as sent:
        report = leases.lease_recover(services.INGESTIONS)
    assert report == {"redispatched": [], "failed": [ingestion.pk]}
    assert sent == []
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.FAILED
    assert ingestion.error.startswith("Gave up after 3 attempts: the worker running it was lost")
    assert stored_files(storage / "staging") == []


def test_a_pull_request_never_returns_stuck_work(
    project: Any, alice: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.BACKGROUND_MAX_ATTEMPTS = 2
    source = services.source_create(
        actor=alice,
        project=project,
        name="Export",
        kind=SourceKind.HTTPS,
        config={"url": "https://data.example.com/x.csv"},
    )
    with django_capture_on_commit_callbacks(execute=False) as sent:
        first = services.source_pull_request(actor=alice, source=source)
    assert len(sent) == 1
    # While its lease holds, the same (live) pull is the answer, and nothing more is queued.
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert services.source_pull_request(actor=alice, source=source).pk == first.pk
    assert sent == []
    # Its message was lost (the lease ran out unclaimed): the request sends it again.
    expire(first)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        again = services.source_pull_request(actor=alice, source=source)
    assert again.pk == first.pk and len(sent) == 1
    again.refresh_from_db()
    assert again.lease_expires_at is not None and again.lease_expires_at > timezone.now()
    # Out of attempts: that one is failed, and a fresh one is queued.
    expire(first, attempts=2)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        fresh = services.source_pull_request(actor=alice, source=source)
    assert fresh.pk != first.pk and len(sent) == 1
    first.refresh_from_db()
    assert first.status == IngestionStatus.FAILED
    assert "Gave up after 2 attempts" in first.error


def test_profiles_splits_and_connection_tests_are_recovered_too(
    upload_source: DataSource,
    alice: Any,
    ingest: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    ingestion = ingest(upload_source)
    snapshot = ingestion.snapshot
    profile = snapshot.profile
    assert profile.status == ProfileStatus.READY
    type(profile).objects.filter(pk=profile.pk).update(status=ProfileStatus.RUNNING, data={})
    leases.lease_claim(type(profile).objects.filter(pk=profile.pk), owner="dead:p")
    expire(profile)
    with django_capture_on_commit_callbacks(execute=False):
        split = services.split_create(actor=alice, snapshot=snapshot, test_fraction=0.25, seed=7)
    expire(split)
    with django_capture_on_commit_callbacks(execute=True):
        report = leases.recover_all()
    assert report["profile"]["redispatched"] == [profile.pk]
    assert report["split"]["redispatched"] == [split.pk]
    profile.refresh_from_db()
    split.refresh_from_db()
    assert profile.status == ProfileStatus.READY and profile.data["rows"] == 200
    assert split.status == SplitStatus.READY
    assert Split.objects.filter(parent=snapshot).count() == 1


def test_a_lost_connection_test_is_failed_after_its_attempts(
    project: Any, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    source = services.source_create(
        actor=alice,
        project=project,
        name="Export",
        kind=SourceKind.HTTPS,
        config={"url": "https://data.example.com/x.csv"},
    )
    with django_capture_on_commit_callbacks(execute=False):
        services.source_test_request(actor=alice, source=source)
    expire(source, attempts=services.SOURCE_TESTS.attempts_limit)
    assert leases.lease_recover(services.SOURCE_TESTS)["failed"] == [source.pk]
    source.refresh_from_db()
    assert source.test_status == "failed"
    assert source.test_message.startswith("Gave up after 2 attempts")


def test_orphaned_staging_objects_are_removed_and_named_or_fresh_ones_kept(
    upload_source: DataSource, alice: Any, storage: Path
) -> None:
    waiting = services.snapshot_upload(actor=alice, source=upload_source, upload=upload())
    staging = storage / "staging"
    orphan = staging / ("a" * 32)
    orphan.write_bytes(b"left behind by a killed pull")
    fresh = staging / ("b" * 32)
    fresh.write_bytes(b"being written now")
    old = time.time() - 600
    os.utime(orphan, (old, old))
    os.utime(staging / waiting.staging_key.split("/")[1], (old, old))
    assert services.staging_orphans_remove(older_than_seconds=300) == [f"staging/{'a' * 32}"]
    assert sorted(p.name for p in stored_files(staging)) == sorted(
        [waiting.staging_key.split("/")[1], "b" * 32]
    )
    # Once the ingestion is over, its staged object is no longer named.
    Ingestion.objects.filter(pk=waiting.pk).update(status=IngestionStatus.FAILED)
    assert services.staging_orphans_remove(older_than_seconds=300) == [waiting.staging_key]


def test_waiting_work_is_counted_with_the_age_of_the_oldest(
    upload_source: DataSource, alice: Any
) -> None:
    ingestion = services.snapshot_upload(actor=alice, source=upload_source, upload=upload())
    Ingestion.objects.filter(pk=ingestion.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=90)
    )
    summary = leases.waiting()
    assert summary["waiting"] == 1
    assert 90 <= summary["oldest_seconds"] < 100
    assert summary["kinds"]["ingestion"]["waiting"] == 1
    assert summary["kinds"]["profile"] == {"waiting": 0, "oldest_seconds": None}
    leases.lease_claim(
        Ingestion.objects.filter(pk=ingestion.pk), owner="w:t", status=IngestionStatus.RUNNING
    )
    assert leases.waiting()["waiting"] == 0


def test_the_recovery_beat_is_scheduled(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["background-leases-recover"]
    assert entry["task"] == leases_recover.name == "portal.leases_recover"
    assert tasks.ingestion_run.name == "datasets.tasks.ingestion_run"
