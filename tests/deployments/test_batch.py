"""Batch scoring's services, API and idempotent write, without a worker:
the gate it needs, bad input, who may do what, the write into real
PostgreSQL and SQLite reporting databases, the schedule and lease recovery."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from background.leases import lease_recover
from deployments import batch, batch_reporting
from deployments.batch_models import BatchSchedule, BatchScoring, BatchState
from deployments.gate_models import RequestState
from experiments.job_models import JobState
from tests.deployments import batch_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(project: Any, alice: Any, bob: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return batch_data.trained_version(project, alice, bob, django_capture_on_commit_callbacks)


@pytest.fixture
def approved(project: Any, version: Any, bob: Any) -> Any:
    return batch_data.approved_batch(project, version, bob)


def test_a_version_without_an_approved_batch_request_is_refused(
    project: Any, version: Any, bob: Any
) -> None:
    real_time = batch_data.approved_batch(project, version, bob)
    real_time.target = "realtime"
    real_time.save()
    pending = batch_data.approved_batch(project, version, bob)
    pending.state = RequestState.PENDING
    pending.save()
    with pytest.raises(ValidationError) as refused:
        batch.batch_scoring_create(actor=bob, version=version, output_table="scores")
    assert "no approved batch deployment request" in str(refused.value)
    assert not BatchScoring.objects.exists()


def test_create_pins_the_latest_snapshot_and_starts_a_batch_job(
    project: Any, version: Any, approved: Any, bob: Any
) -> None:
    scoring = batch.batch_scoring_create(
        actor=bob, version=version, output_table="churn_scores", schedule="daily"
    )
    snapshot = batch.default_snapshot(version)
    assert snapshot is not None
    assert scoring.snapshot == snapshot and scoring.snapshot_digest == snapshot.sha256
    assert scoring.deployment_request == approved
    assert scoring.state == BatchState.QUEUED and scoring.runs == 1
    assert scoring.next_run_at is not None
    assert scoring.lease_owner == "" and scoring.lease_expires_at is not None
    job = scoring.job
    assert job is not None and job.template == "batch_score" and job.snapshot == snapshot
    assert f"--model-uri=models:/churn/{version.version}" in job.command
    assert f"--snapshot-sha256={snapshot.sha256}" in job.command
    assert job.state == JobState.QUEUED
    assert AuditEvent.objects.filter(action="batch.created", actor=bob).exists()


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ("", "lower-case letters"),
        ("Scores", "lower-case letters"),
        ("1scores", "not starting with a digit"),
        ('x"; DROP TABLE y; --', "lower-case letters"),
        ("pg_scores", "database's own"),
        ("a" * 64, "1 to 63"),
    ],
)
def test_a_bad_output_table_is_refused(
    version: Any, approved: Any, bob: Any, table: str, why: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        batch.batch_scoring_create(actor=bob, version=version, output_table=table)
    assert why in str(refused.value.message_dict["output_table"])


def test_the_api_for_owner_member_read_only_member_and_outsider(
    project: Any,
    version: Any,
    approved: Any,
    alice: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
    api_for: Any,
) -> None:
    url = "/api/projects/churn/batch-scorings/"
    body = {"model": "churn", "version": version.version, "output_table": "churn_scores"}
    assert api_for(charlie).get(url).status_code == 404
    assert api_for(charlie).post(url, body, format="json").status_code == 404
    assert api_for(carol).post(url, body, format="json").status_code == 403

    bad = api_for(bob).post(url, {**body, "output_table": "Bad Name"}, format="json")
    assert bad.status_code == 400 and "output_table" in bad.json()
    missing = api_for(bob).post(url, {**body, "version": 99}, format="json")
    assert missing.status_code == 400 and "version" in missing.json()
    no_snapshot = api_for(bob).post(url, {**body, "snapshot": 10**9}, format="json")
    assert no_snapshot.status_code == 400 and "snapshot" in no_snapshot.json()
    no_source = api_for(bob).post(url, {**body, "reporting_source": 10**9}, format="json")
    assert no_source.status_code == 400 and "reporting_source" in no_source.json()
    schedule = api_for(bob).post(url, {**body, "schedule": "hourly"}, format="json")
    assert schedule.status_code == 400 and "schedule" in schedule.json()

    created = api_for(bob).post(url, body, format="json")
    assert created.status_code == 201, created.content
    made = created.json()
    assert made["state"] == "queued" and made["model"] == "churn"
    assert made["output_table"] == "churn_scores" and made["reporting_source"] is None
    assert made["deployment_request_id"] == approved.pk

    one = f"{url}{made['id']}/"
    assert api_for(carol).get(one).json()["id"] == made["id"]
    assert api_for(charlie).get(one).status_code == 404
    assert api_for(alice).get(url).json()["results"][0]["id"] == made["id"]
    assert api_for(carol).post(f"{one}cancel/").status_code == 403
    assert api_for(charlie).post(f"{one}rerun/").status_code == 404

    busy = api_for(alice).post(f"{one}rerun/")
    assert busy.status_code == 409 and "queued already" in busy.json()["detail"]
    cancelled = api_for(alice).post(f"{one}cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    job = BatchScoring.objects.get(pk=made["id"]).job
    assert job is not None and job.state == JobState.CANCELLED
    assert api_for(alice).post(f"{one}cancel/").status_code == 409
    again = api_for(alice).post(f"{one}rerun/")
    assert again.status_code == 202 and again.json()["state"] == "queued"
    assert again.json()["runs"] == 2 and again.json()["job_id"] != made["job_id"]


def test_the_api_refuses_a_version_without_an_approved_batch_request(
    version: Any, bob: Any, api_for: Any
) -> None:
    refused = api_for(bob).post(
        "/api/projects/churn/batch-scorings/",
        {"model": "churn", "version": version.version, "output_table": "scores"},
        format="json",
    )
    assert refused.status_code == 400
    assert "approved batch deployment request" in str(refused.json()["version"])


def _meta(scoring_id: int) -> batch_reporting.Labelled:
    return batch_reporting.Labelled(
        scoring_id=scoring_id,
        model_name="churn",
        model_version=3,
        snapshot_sha256="f" * 64,
        scored_at=datetime(2026, 12, 5, tzinfo=UTC),
    )


def test_the_write_into_postgres_replaces_the_rows_of_its_scoring(
    project: Any, alice: Any, settings: Any
) -> None:
    with batch_data.reporting_database() as database:
        source = batch_data.reporting_source(project, alice, database, settings)
        target = (dict(source.config), {"password": "Reporting-Password-42"})
        write: dict[str, Any] = {"project_slug": "churn", "table": "scores", "postgres": target}
        assert (
            batch_reporting.rows_replace(
                meta=_meta(1), numbers=[0.1, 0.2, 0.3], labels=[None] * 3, **write
            )
            == 3
        )
        assert (
            batch_reporting.rows_replace(meta=_meta(2), numbers=[None], labels=["yes"], **write)
            == 1
        )
        # Scoring 1 again, with fewer rows: its three are replaced by two.
        assert (
            batch_reporting.rows_replace(
                meta=_meta(1), numbers=[0.5, float("nan")], labels=[None] * 2, **write
            )
            == 2
        )
        rows = batch_data.reporting_rows(database, "scores")
    assert rows == [
        (1, "churn", 3, "f" * 64, 0, 0.5, None),
        (1, "churn", 3, "f" * 64, 1, None, None),
        (2, "churn", 3, "f" * 64, 0, None, "yes"),
    ]


def test_a_refused_write_changes_nothing_and_says_why(project: Any, settings: Any) -> None:
    settings.VAR_DIR = settings.VAR_DIR / "reporting-refused"
    write: dict[str, Any] = {"project_slug": "churn", "table": "scores"}
    batch_reporting.rows_replace(meta=_meta(1), numbers=[1.0, 2.0], labels=[None] * 2, **write)
    path = batch_reporting.sqlite_path("churn")
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TRIGGER no_more BEFORE INSERT ON scores BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
        db.commit()
    with pytest.raises(batch_reporting.ReportingError, match="full"):
        batch_reporting.rows_replace(meta=_meta(1), numbers=[3.0], labels=[None], **write)
    with closing(sqlite3.connect(path)) as db:
        kept = db.execute("SELECT row_number, prediction FROM scores ORDER BY 1").fetchall()
    # The delete went back with the failed insert: the old rows are whole.
    assert kept == [(0, 1.0), (1, 2.0)]
    with pytest.raises(batch_reporting.ReportingError, match="Output table"):
        batch_reporting.rows_replace(
            project_slug="churn", table="bad name", meta=_meta(1), numbers=[], labels=[]
        )


def test_a_scheduled_scoring_runs_again_when_due(
    project: Any, version: Any, approved: Any, bob: Any, alice: Any
) -> None:
    scoring = batch.batch_scoring_create(
        actor=bob, version=version, output_table="daily_scores", schedule=BatchSchedule.DAILY
    )
    first_job = scoring.job_id
    assert batch.batch_scorings_due() == []  # queued, and not due
    batch.batch_scoring_cancel(actor=alice, scoring=scoring)
    BatchScoring.objects.filter(pk=scoring.pk).update(
        next_run_at=timezone.now() - timedelta(minutes=1)
    )
    assert batch.batch_scorings_due() == [scoring.pk]
    scoring.refresh_from_db()
    assert scoring.state == BatchState.QUEUED and scoring.runs == 2
    assert scoring.job_id != first_job
    assert scoring.next_run_at is not None and scoring.next_run_at > timezone.now()
    assert AuditEvent.objects.filter(action="batch.rerun", actor=None).exists()

    # Without its approval the schedule does not run it, and says why.
    batch.batch_scoring_cancel(actor=alice, scoring=scoring)
    approved.state = RequestState.REJECTED
    approved.save()
    BatchScoring.objects.filter(pk=scoring.pk).update(
        next_run_at=timezone.now() - timedelta(minutes=1)
    )
    assert batch.batch_scorings_due() == []
    scoring.refresh_from_db()
    assert scoring.state == BatchState.CANCELLED and scoring.runs == 2
    assert "no approved batch deployment request" in scoring.error


def test_a_scoring_whose_worker_was_lost_is_sent_again_then_given_up(
    version: Any, approved: Any, bob: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    scoring = batch.batch_scoring_create(actor=bob, version=version, output_table="scores")
    past = timezone.now() - timedelta(minutes=5)
    # Killed (kill -9) while writing: the lease names a worker that beats no more.
    BatchScoring.objects.filter(pk=scoring.pk).update(
        state=BatchState.WRITING, lease_owner="gone:1", lease_expires_at=past, attempts=1
    )
    with django_capture_on_commit_callbacks() as sent:
        report = lease_recover(batch.BATCH_WORK)
    assert report == {"redispatched": [scoring.pk], "failed": []}
    assert len(sent) == 1
    scoring.refresh_from_db()
    # Sent again in the same state: the write is idempotent, so it is done again whole.
    assert scoring.state == BatchState.WRITING and scoring.lease_owner == ""

    BatchScoring.objects.filter(pk=scoring.pk).update(
        lease_expires_at=past, attempts=settings.BACKGROUND_MAX_ATTEMPTS
    )
    report = lease_recover(batch.BATCH_WORK)
    assert report == {"redispatched": [], "failed": [scoring.pk]}
    scoring.refresh_from_db()
    assert scoring.state == BatchState.FAILED and scoring.error.startswith("Gave up")
