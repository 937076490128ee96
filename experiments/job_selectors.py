"""Reads of training jobs: querysets with what their pages and the API show."""

from __future__ import annotations

from django.db.models import QuerySet

from datasets.models import Split, SplitStatus
from experiments.job_models import Job
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
