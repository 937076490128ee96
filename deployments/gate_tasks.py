"""Celery task of validation (queue "training"): read a validation job's report back.

``validation_collect`` waits for the report's job to end (it schedules
itself again while the job runs), then reads the JSON report the job logged
into its run (``validation.json``, plain JSON: nothing is unpickled here) and
stores it through ``deployments.gate.validation_record``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings

import background

logger = logging.getLogger(__name__)

TASK_OPTIONS = background.task_options(soft_time_limit=60, time_limit=90, max_retries=None)
MAX_REPORT_BYTES = 5 * 1024 * 1024
REPORT_NAME = "validation.json"


def poll_seconds() -> float:
    return float(getattr(settings, "JOBS_POLL_SECONDS", 1.0))


# A running report whose job ended this long ago lost its collecting task
# (a worker died with it): ``validations_recover`` collects it.
STALE_SECONDS = 120.0


def read_report(project_id: int, artifact_uri: str) -> dict[str, Any] | None:
    """The job's report from its run's artifacts, or None when it has none."""
    from experiments.artifacts import ArtifactStore
    from experiments.errors import MlflowError
    from experiments.tasks import run_artifact_folder

    folder = run_artifact_folder(artifact_uri)
    if folder is None:
        return None
    try:
        with ArtifactStore(project_id).open(f"{folder}/{REPORT_NAME}") as f:
            data = f.read(MAX_REPORT_BYTES + 1)
    except (MlflowError, OSError):
        return None
    if len(data) > MAX_REPORT_BYTES:
        return None
    try:
        report = json.loads(data)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def collect(report_id: int) -> str | None:
    """Store the report of a finished validation job; None while it runs."""
    from deployments.gate import validation_record
    from deployments.gate_models import ValidationReport
    from experiments.job_models import JobState

    report = ValidationReport.objects.select_related("job__run").filter(pk=report_id).first()
    if report is None or report.finished:
        return "nothing to collect"
    job = report.job
    if job is None:
        validation_record(report_id=report_id, result=None, error="The validation job is gone.")
        return "error"
    if not job.finished:
        return None
    if job.state != JobState.SUCCEEDED:
        tail = "\n".join(job.log_tail.splitlines()[-5:])
        why = f"The validation job {JobState(job.state).label.lower()}: {job.state_reason}"
        validation_record(report_id=report_id, result=None, error=f"{why}\n{tail}".strip())
        return "error"
    result = read_report(job.project_id, job.run.artifact_uri) if job.run else None
    record = validation_record(report_id=report_id, result=result)
    return str(record.state)


@shared_task(**TASK_OPTIONS)
def validation_collect(self: Task, *, report_id: int) -> str:
    """Wait for the report's job to end, then store its report."""
    outcome = collect(report_id)
    if outcome is None:
        raise self.retry(kwargs={"report_id": report_id}, countdown=poll_seconds())
    return outcome


@shared_task(**TASK_OPTIONS)
def validations_recover(self: Task) -> int:
    """Beat: collect running reports whose job ended a while ago (or is gone)."""
    from datetime import timedelta

    from django.db.models import Q
    from django.utils import timezone

    from deployments.gate_models import ValidationReport, ValidationState

    before = timezone.now() - timedelta(seconds=STALE_SECONDS)
    stale = ValidationReport.objects.filter(state=ValidationState.RUNNING).filter(
        Q(job__isnull=True) | Q(job__ended_at__lt=before)
    )
    ids = list(stale.values_list("pk", flat=True)[:100])
    for report_id in ids:
        collect(report_id)
    return len(ids)
