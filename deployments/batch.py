"""Writes of batch scoring (docs/serving.md, Batch scoring).

Each service is keyword-only, runs in a transaction and is audited.

- ``batch_scoring_create`` starts a scoring of a snapshot by a model version
  that has an approved batch deployment request (the gate decides who may
  put a version to work; without its approval nothing runs). The scoring is
  a job of the template ``batch_score`` on the project's compute: the model
  is loaded only in the job's sandbox.
- ``batch_scoring_rerun`` runs it again (the same rows are replaced);
  ``batch_scoring_cancel`` cancels it and its job.
- The task ``deployments.batch_tasks.batch_scoring_advance`` watches the
  job, then writes its predictions into the reporting database
  (``batch_reporting.rows_replace``) and records the outcome here.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from background.leases import LeasedWork, lease_waiting
from compute.models import ComputeSize
from compute.selectors import sizes_offered
from datasets.models import DataSource, Snapshot, SourceKind, Split
from deployments import batch_reporting
from deployments.batch_models import ACTIVE_STATES, BatchSchedule, BatchScoring, BatchState
from deployments.gate import version_split
from deployments.gate_models import DeploymentRequest, RequestState, Target
from experiments import jobs
from experiments.models import ModelVersion
from projects.models import Membership, Project

SCHEDULE_EVERY = {BatchSchedule.DAILY: timedelta(days=1)}
JOB_MINUTES = 120


def _require_writer(actor: User, project: Project) -> None:
    membership = Membership.objects.filter(project=project, user=actor).first()
    if membership is None or not membership.can_write:
        raise PermissionDenied("Only members who may change the project run batch scorings.")


def approved_batch_request(version: ModelVersion) -> DeploymentRequest | None:
    """The latest approved batch deployment request of the version, if any."""
    return (
        DeploymentRequest.objects.filter(
            version=version, target=Target.BATCH, state=RequestState.APPROVED
        )
        .order_by("-decided_at", "-pk")
        .first()
    )


def _require_approved(version: ModelVersion) -> DeploymentRequest:
    request = approved_batch_request(version)
    if request is None:
        raise ValidationError(
            {
                "version": f"Version {version.version} of {version.registered_model.name} has no "
                "approved batch deployment request: request one (target batch) and have it "
                "approved first."
            }
        )
    return request


def default_snapshot(version: ModelVersion) -> Snapshot | None:
    """The latest snapshot of the source the version's split came from."""
    split = version_split(version)
    if split is None:
        return None
    return split.parent.source.snapshots.order_by("-version").first()


def _split_of(version: ModelVersion) -> Split:
    split = version_split(version)
    if split is None:
        raise ValidationError(
            {
                "version": "The version names no split it was trained on: score with a version "
                "registered from a training job's run."
            }
        )
    return split


def _clean_reporting(project: Project, source: DataSource | None) -> DataSource | None:
    if source is None:
        return None
    if source.project_id != project.pk:
        raise ValidationError({"reporting_source": "That source belongs to another project."})
    if source.kind != SourceKind.POSTGRES:
        raise ValidationError(
            {"reporting_source": "Only a PostgreSQL source can be a reporting database."}
        )
    return source


def _start_job(*, actor: User, scoring: BatchScoring, size: ComputeSize | None = None) -> None:
    """Create the scoring's job and hand it to the task (after commit)."""
    version = scoring.version
    name = version.registered_model.name
    snapshot = scoring.snapshot
    size = size or sizes_offered().order_by("hourly_price", "vcpus").first()
    if size is None:
        raise ValidationError({"size": "No compute size is offered."})
    arguments = {
        "model-uri": f"models:/{name}/{version.version}",
        "snapshot-sha256": snapshot.sha256,
        "format": snapshot.data_format,
        **(
            {
                "delimiter": snapshot.csv_delimiter or ",",
                "encoding": snapshot.csv_encoding or "utf-8",
            }
            if snapshot.data_format == "csv"
            else {}
        ),
    }
    job = jobs.job_create(
        actor=actor,
        project=scoring.project,
        split=_split_of(version),
        size=size,
        template="batch_score",
        experiment_name="job-batch-score",
        name=f"batch {name} v{version.version} into {scoring.output_table}"[:100],
        wall_clock_minutes=JOB_MINUTES,
        arguments=arguments,
        snapshot=snapshot,
    )
    now = timezone.now()
    scoring.job = job
    scoring.state = BatchState.QUEUED
    scoring.error = ""
    scoring.runs += 1
    scoring.started_at = now
    scoring.finished_at = None
    scoring.attempts = 0
    every = SCHEDULE_EVERY.get(BatchSchedule(scoring.schedule))
    scoring.next_run_at = now + every if every else None
    for field, value in lease_waiting(now=now).items():
        setattr(scoring, field, value)
    scoring.save()
    scoring_id = scoring.pk
    from deployments import batch_tasks

    transaction.on_commit(lambda: batch_tasks.batch_scoring_advance.delay(scoring_id=scoring_id))


def batch_scoring_create(
    *,
    actor: User,
    version: ModelVersion,
    output_table: str,
    snapshot: Snapshot | None = None,
    schedule: str = BatchSchedule.NONE,
    reporting_source: DataSource | None = None,
    size: ComputeSize | None = None,
) -> BatchScoring:
    """Score ``snapshot`` (by default the latest snapshot of the source the
    version was trained from) with ``version`` into ``output_table`` of the
    project's reporting database; ``schedule`` ``daily`` scores it again
    every day."""
    version = ModelVersion.objects.select_related("registered_model__project").get(pk=version.pk)
    project = version.registered_model.project
    _require_writer(actor, project)
    output_table = (output_table or "").strip()
    problem = batch_reporting.table_problem(output_table)
    if problem:
        raise ValidationError({"output_table": problem})
    if schedule not in BatchSchedule.values:
        raise ValidationError({"schedule": "Choose none (once) or daily."})
    reporting_source = _clean_reporting(project, reporting_source)
    _split_of(version)
    if snapshot is None:
        snapshot = default_snapshot(version)
        if snapshot is None:
            raise ValidationError({"snapshot": "The version's data source has no snapshot."})
    snapshot = Snapshot.objects.select_related("source").get(pk=snapshot.pk)
    if snapshot.source.project_id != project.pk:
        raise ValidationError({"snapshot": "That snapshot belongs to another project."})
    with transaction.atomic():
        request = _require_approved(version)
        scoring = BatchScoring.objects.create(
            project=project,
            version=version,
            deployment_request=request,
            snapshot=snapshot,
            snapshot_digest=snapshot.sha256,
            output_table=output_table,
            reporting_source=reporting_source,
            schedule=schedule,
            requested_by=actor,
        )
        audit_record(
            action="batch.created",
            actor=actor,
            project=project,
            obj=scoring,
            payload={
                "model": version.registered_model.name,
                "version": version.version,
                "deployment_request": request.pk,
                "snapshot": snapshot.pk,
                "snapshot_sha256": snapshot.sha256,
                "output_table": output_table,
                "reporting": reporting_source.name if reporting_source else "sqlite",
                "schedule": schedule,
            },
        )
        _start_job(actor=actor, scoring=scoring, size=size)
    return scoring


def _locked(scoring_id: int) -> BatchScoring:
    return (
        BatchScoring.objects.select_for_update(of=("self",))
        .select_related("project", "version__registered_model", "snapshot", "job")
        .get(pk=scoring_id)
    )


class BatchConflict(Exception):
    """The action does not fit the scoring's state (HTTP 409)."""


def batch_scoring_rerun(*, actor: User | None, scoring: BatchScoring) -> BatchScoring:
    """Score the same snapshot again; the new rows replace the scoring's rows.

    ``actor`` None: the schedule (the job runs as the scoring's requester)."""
    if actor is not None:
        _require_writer(actor, scoring.project)
    with transaction.atomic():
        scoring = _locked(scoring.pk)
        if scoring.state in ACTIVE_STATES:
            raise BatchConflict(f"The scoring is {scoring.get_state_display().lower()} already.")
        _require_approved(scoring.version)
        runner = actor or scoring.requested_by
        audit_record(
            action="batch.rerun",
            actor=actor,
            project=scoring.project,
            obj=scoring,
            payload={"run": scoring.runs + 1, "by": "schedule" if actor is None else "person"},
        )
        _start_job(actor=runner, scoring=scoring)
    return scoring


def batch_scoring_cancel(*, actor: User, scoring: BatchScoring) -> BatchScoring:
    """Cancel a queued or scoring run and its job (rows being written are not cut off)."""
    _require_writer(actor, scoring.project)
    with transaction.atomic():
        scoring = _locked(scoring.pk)
        if scoring.state == BatchState.WRITING:
            raise BatchConflict("The rows are being written; the scoring ends in moments.")
        if scoring.state not in ACTIVE_STATES:
            raise BatchConflict(f"The scoring is {scoring.get_state_display().lower()}.")
        if scoring.job is not None:
            with contextlib.suppress(jobs.JobConflict):
                jobs.job_cancel(actor=actor, job=scoring.job)
        _finish(scoring, BatchState.CANCELLED, error=f"Cancelled by {actor.get_username()}.")
        audit_record(
            action="batch.cancelled",
            actor=actor,
            project=scoring.project,
            obj=scoring,
            payload={"job": scoring.job_id},
        )
    return scoring


def _finish(scoring: BatchScoring, state: str, *, error: str = "") -> None:
    scoring.state = state
    scoring.error = error[:5000]
    scoring.finished_at = timezone.now()
    scoring.lease_owner = ""
    scoring.lease_expires_at = None
    scoring.save()


# --- recorded by the task -------------------------------------------------------------


def batch_mark_running(*, scoring_id: int) -> None:
    BatchScoring.objects.filter(pk=scoring_id, state=BatchState.QUEUED).update(
        state=BatchState.RUNNING
    )


def batch_mark_writing(*, scoring_id: int, owner: str) -> bool:
    """The job succeeded: the holder of the lease writes the rows now."""
    return (
        BatchScoring.objects.filter(
            pk=scoring_id, state__in=list(ACTIVE_STATES), lease_owner=owner
        ).update(state=BatchState.WRITING)
        > 0
    )


def batch_mark_succeeded(*, scoring_id: int, rows: int) -> bool:
    with transaction.atomic():
        scoring = _locked(scoring_id)
        if scoring.state != BatchState.WRITING:
            return False
        scoring.rows_written = rows
        _finish(scoring, BatchState.SUCCEEDED)
        audit_record(
            action="batch.succeeded",
            actor=None,
            project=scoring.project,
            obj=scoring,
            payload={
                "rows": rows,
                "output_table": scoring.output_table,
                "snapshot_sha256": scoring.snapshot_digest,
                "job": scoring.job_id,
            },
        )
    return True


def batch_mark_failed(*, scoring_id: int, reason: str) -> bool:
    with transaction.atomic():
        scoring = _locked(scoring_id)
        if scoring.state not in ACTIVE_STATES:
            return False
        _finish(scoring, BatchState.FAILED, error=reason)
        audit_record(
            action="batch.failed",
            actor=None,
            project=scoring.project,
            obj=scoring,
            payload={"reason": reason[:500], "job": scoring.job_id},
        )
    return True


def batch_scorings_due(*, now: Any = None) -> list[int]:
    """Run again the scheduled scorings whose time came; their ids."""
    now = now or timezone.now()
    due = BatchScoring.objects.filter(
        next_run_at__lte=now, schedule__in=list(SCHEDULE_EVERY)
    ).exclude(state__in=list(ACTIVE_STATES))
    started = []
    for scoring in due.select_related("project")[:100]:
        try:
            batch_scoring_rerun(actor=None, scoring=scoring)
        except Exception as exc:  # noqa: BLE001
            # One scoring that cannot run (its approval gone, a charter
            # unsigned) must not stop the others: it says why and waits a day.
            BatchScoring.objects.filter(pk=scoring.pk).update(
                error=f"The scheduled run did not start: {_reason(exc)}"[:5000],
                next_run_at=now + SCHEDULE_EVERY[BatchSchedule(scoring.schedule)],
            )
            continue
        started.append(scoring.pk)
    return started


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or type(exc).__name__


def _give_up(row: Any, reason: str) -> None:
    batch_mark_failed(scoring_id=row.pk, reason=reason)


def _redispatch(row: Any) -> None:
    from deployments import batch_tasks

    batch_tasks.batch_scoring_advance.delay(scoring_id=row.pk)


BATCH_WORK = LeasedWork(
    name="batch_scoring",
    model=BatchScoring,
    active=lambda: BatchScoring.objects.filter(state__in=list(ACTIVE_STATES)),
    requeue={},
    redispatch=_redispatch,
    fail=_give_up,
)
