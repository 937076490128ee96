"""Reads of training jobs: querysets with what their pages and the API show."""

from __future__ import annotations

from django.db.models import QuerySet

from datasets.models import Split, SplitStatus
from experiments.job_models import Job
from experiments.models import LatestMetric
from projects.models import Project


def jobs_for_project(*, project: Project) -> QuerySet[Job]:
    return Job.objects.filter(project=project).select_related(
        "created_by", "size", "run__experiment", "split__parent__source"
    )


def splits_ready(*, project: Project) -> QuerySet[Split]:
    """The project's ready splits, newest first, to start a job on."""
    return (
        Split.objects.filter(parent__source__project=project, status=SplitStatus.READY)
        .select_related("parent__source")
        .order_by("-created_at", "-pk")
    )


JOB_METRICS_SHOWN = 50


def job_latest_metrics(*, job: Job) -> list[dict[str, object]]:
    """The latest value of each metric the job's run has logged so far, by
    name (one query; at most ``JOB_METRICS_SHOWN`` of them)."""
    if job.run_id is None:
        return []
    rows = (
        LatestMetric.objects.filter(run_id=job.run_id)
        .order_by("key__name")
        .values_list("key__name", "value", "step")[:JOB_METRICS_SHOWN]
    )
    return [{"name": name, "value": value, "step": step} for name, value, step in rows]
