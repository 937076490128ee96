"""Celery tasks of batch scoring (queue "training").

``batch_scoring_advance`` claims a scoring (its lease), looks at its job:
while the job runs it gives the lease up and looks again a moment later (a
lost message lets the lease run out, and recovery sends it again); once the
job succeeded it reads the predictions the job logged into its run (plain
Parquet: nothing is unpickled here) and writes them into the reporting
database, replacing the scoring's rows (``batch_reporting.rows_replace``).
``batch_scorings_schedule`` (beat) runs the scheduled scorings that are due.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

import background
from background.leases import dispatch_grace_seconds, lease_claim, lease_kept, lease_owner_for
from deployments import batch, batch_reporting
from deployments.batch_models import ACTIVE_STATES, BatchScoring

logger = logging.getLogger(__name__)

TASK_OPTIONS = background.task_options(soft_time_limit=540, time_limit=600, max_retries=0)
BEAT_OPTIONS = background.task_options(soft_time_limit=110, time_limit=120, max_retries=0)
PREDICTIONS = "predictions.parquet"
MAX_PREDICTIONS_BYTES = 512 * 1024 * 1024


def poll_seconds() -> float:
    return float(getattr(settings, "JOBS_POLL_SECONDS", 1.0))


def _look_again(scoring_id: int) -> None:
    """The job still runs: give the lease up and look again in a moment."""
    wait = poll_seconds()
    now = timezone.now()
    BatchScoring.objects.filter(pk=scoring_id, state__in=list(ACTIVE_STATES)).update(
        lease_owner="",
        dispatched_at=now,
        heartbeat_at=None,
        lease_expires_at=now + timedelta(seconds=wait + dispatch_grace_seconds()),
        # Watching a long job is no failed attempt.
        attempts=0,
    )
    batch_scoring_advance.apply_async(kwargs={"scoring_id": scoring_id}, countdown=wait)


def read_predictions(project_id: int, artifact_uri: str) -> Any:
    """The job's predictions (a pyarrow table) from its run's artifacts."""
    import pyarrow.parquet as pq

    from experiments.artifacts import ArtifactStore
    from experiments.errors import MlflowError
    from experiments.tasks import run_artifact_folder

    folder = run_artifact_folder(artifact_uri)
    if folder is None:
        raise batch_reporting.ReportingError("The job's run keeps no artifacts in the portal.")
    try:
        with ArtifactStore(project_id).open(f"{folder}/{PREDICTIONS}") as f:
            data = f.read(MAX_PREDICTIONS_BYTES + 1)
    except (MlflowError, OSError) as exc:
        raise batch_reporting.ReportingError("The job wrote no predictions.") from exc
    if len(data) > MAX_PREDICTIONS_BYTES:
        raise batch_reporting.ReportingError("The predictions file is too big to write.")
    try:
        table = pq.read_table(io.BytesIO(data), columns=["row_number", "prediction"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the job's fault
        raise batch_reporting.ReportingError(
            f"The predictions file cannot be read: {type(exc).__name__}"
        ) from exc
    return table.sort_by("row_number")


def _write(scoring_id: int) -> int:
    import pyarrow as pa

    from datasets.crypto import secrets_decrypt

    scoring = BatchScoring.objects.select_related(
        "project", "version__registered_model", "job__run", "reporting_source"
    ).get(pk=scoring_id)
    job = scoring.job
    if job is None or job.run is None:
        raise batch_reporting.ReportingError("The scoring's job is gone.")
    table = read_predictions(scoring.project_id, job.run.artifact_uri)
    column = table.column("prediction")
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    values = column.to_pylist()
    numbers = [None if v is None else float(v) for v in values] if numeric else [None] * len(values)
    labels = [None] * len(values) if numeric else [None if v is None else str(v) for v in values]
    postgres = None
    source = scoring.reporting_source
    if source is not None:
        secrets = secrets_decrypt(source.secrets_encrypted) if source.secrets_encrypted else {}
        postgres = (dict(source.config), secrets)
    return batch_reporting.rows_replace(
        project_slug=scoring.project.slug,
        table=scoring.output_table,
        meta=batch_reporting.Labelled(
            scoring_id=scoring.pk,
            model_name=scoring.version.registered_model.name,
            model_version=scoring.version.version,
            snapshot_sha256=scoring.snapshot_digest,
            scored_at=timezone.now(),
        ),
        numbers=numbers,
        labels=labels,
        postgres=postgres,
    )


def advance(scoring_id: int, owner: str) -> str:
    from experiments.job_models import JobState

    scoring = BatchScoring.objects.select_related("job").get(pk=scoring_id)
    job = scoring.job
    if job is None:
        batch.batch_mark_failed(scoring_id=scoring_id, reason="The scoring's job is gone.")
        return "failed"
    if not job.finished:
        if job.state == JobState.RUNNING:
            batch.batch_mark_running(scoring_id=scoring_id)
        _look_again(scoring_id)
        return "watching"
    if job.state != JobState.SUCCEEDED:
        tail = "\n".join(job.log_tail.splitlines()[-5:])
        why = f"The scoring job {JobState(job.state).label.lower()}: {job.state_reason}"
        batch.batch_mark_failed(scoring_id=scoring_id, reason=f"{why}\n{tail}".strip())
        return "failed"
    if not batch.batch_mark_writing(scoring_id=scoring_id, owner=owner):
        return "not held"
    try:
        rows = _write(scoring_id)
    except batch_reporting.ReportingError as exc:
        batch.batch_mark_failed(scoring_id=scoring_id, reason=str(exc))
        return "failed"
    batch.batch_mark_succeeded(scoring_id=scoring_id, rows=rows)
    return "succeeded"


@shared_task(**TASK_OPTIONS)
def batch_scoring_advance(self: Task, *, scoring_id: int) -> str:
    """Watch the scoring's job; when it succeeded, write its rows."""
    owner = lease_owner_for(self)
    if not lease_claim(
        BatchScoring.objects.filter(pk=scoring_id, state__in=list(ACTIVE_STATES), lease_owner=""),
        owner=owner,
    ):
        return "not claimed"
    with lease_kept(BatchScoring, scoring_id, owner=owner):
        try:
            return advance(scoring_id, owner)
        except Exception as exc:
            logger.exception("batch scoring %s failed", scoring_id)
            batch.batch_mark_failed(
                scoring_id=scoring_id, reason=f"Unexpected error: {type(exc).__name__}"
            )
            return "failed"


@shared_task(**BEAT_OPTIONS)
def batch_scorings_schedule(self: Task) -> int:
    """Beat: run again the scheduled scorings that are due."""
    return len(batch.batch_scorings_due())
