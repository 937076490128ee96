"""Where each project stands, from what has really happened in each stage.

Every stage has one *progress function*: given project ids, it answers for each
project whether the stage has been reached and a few counts, in a fixed number
of queries however many projects there are. The strip on the project page, the
"current stage" and the home page all come from :func:`progress_for`.

A stage is reached when:

1. Charter: a version of the charter is signed off.
2. Data: a snapshot passed its validation rules.
3. Workspaces: something in the project held compute (a workspace that ran, or a job).
4. Experiments: a model version is registered.
5. Deployment: a deployment of a model version has started (or a batch
   request was approved: the approval is its record).

A stage app that is not in the portal has no function: its card says so. The
current stage is the one
after the furthest stage reached, so it never lags behind what happened, even
when a stage was skipped (a notebook run before any data was registered).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q

from charter.models import CharterStatus, CharterVersion
from compute.models import UsageInterval
from datasets.models import DataSource, Snapshot, ValidationStatus
from deployments.gate_models import DeploymentRequest, RequestState, Target
from deployments.serving_models import Deployment
from experiments.models import Lifecycle, ModelVersion, Run
from projects.models import Stage
from workspaces.models import Workspace, WorkspaceState


@dataclass(frozen=True)
class Progress:
    """One stage of one project."""

    reached: bool = False
    counts: dict[str, int] = field(default_factory=dict)


ProgressFn = Callable[[list[int]], dict[int, Progress]]


def _by_project(rows: Iterable[Any], key: str = "project") -> dict[int, dict[str, Any]]:
    return {row[key]: row for row in rows}


def charter_progress(project_ids: list[int]) -> dict[int, Progress]:
    rows = (
        CharterVersion.objects.filter(project_id__in=project_ids)
        .values("project")
        .annotate(n=Count("pk"), signed=Count("pk", filter=Q(status=CharterStatus.APPROVED)))
    )
    found = _by_project(rows)
    return {
        pid: Progress(
            reached=bool(found.get(pid, {}).get("signed")),
            counts={"versions": found.get(pid, {}).get("n", 0)},
        )
        for pid in project_ids
    }


def data_progress(project_ids: list[int]) -> dict[int, Progress]:
    sources = _by_project(
        DataSource.objects.filter(project_id__in=project_ids)
        .values("project")
        .annotate(n=Count("pk"))
    )
    snaps = (
        Snapshot.objects.filter(source__project_id__in=project_ids)
        .values("source__project")
        .annotate(
            n=Count("pk"), valid=Count("pk", filter=Q(validation_status=ValidationStatus.VALID))
        )
    )
    by_project = _by_project(snaps, key="source__project")
    return {
        pid: Progress(
            reached=bool(by_project.get(pid, {}).get("valid")),
            counts={
                "sources": sources.get(pid, {}).get("n", 0),
                "snapshots": by_project.get(pid, {}).get("n", 0),
            },
        )
        for pid in project_ids
    }


def workspaces_progress(project_ids: list[int]) -> dict[int, Progress]:
    rows = (
        Workspace.objects.filter(project_id__in=project_ids)
        .exclude(state__in=[WorkspaceState.DELETED, WorkspaceState.REJECTED])
        .values("project")
        .annotate(n=Count("pk"), running=Count("pk", filter=Q(state=WorkspaceState.RUNNING)))
    )
    found = _by_project(rows)
    # Anything that held compute (a workspace, later a training job) is metered.
    ran = set(
        UsageInterval.objects.filter(project_id__in=project_ids)
        .values_list("project_id", flat=True)
        .distinct()
    )
    return {
        pid: Progress(
            reached=pid in ran,
            counts={
                "workspaces": found.get(pid, {}).get("n", 0),
                "running": found.get(pid, {}).get("running", 0),
            },
        )
        for pid in project_ids
    }


def experiments_progress(project_ids: list[int]) -> dict[int, Progress]:
    runs = _by_project(
        Run.objects.filter(experiment__project_id__in=project_ids, lifecycle_stage=Lifecycle.ACTIVE)
        .values("experiment__project")
        .annotate(n=Count("pk")),
        key="experiment__project",
    )
    versions = _by_project(
        ModelVersion.objects.filter(registered_model__project_id__in=project_ids)
        .values("registered_model__project")
        .annotate(n=Count("pk")),
        key="registered_model__project",
    )
    return {
        pid: Progress(
            reached=bool(versions.get(pid, {}).get("n")),
            counts={
                "runs": runs.get(pid, {}).get("n", 0),
                "model_versions": versions.get(pid, {}).get("n", 0),
            },
        )
        for pid in project_ids
    }


def deployment_progress(project_ids: list[int]) -> dict[int, Progress]:
    """Stage 5 is reached when a deployment of the project has run (or an
    approved batch request exists: the approval is its record)."""
    deployed = _by_project(
        Deployment.objects.filter(endpoint__project_id__in=project_ids)
        .values("endpoint__project_id")
        .annotate(n=Count("pk"), ran=Count("pk", filter=Q(started_at__isnull=False))),
        key="endpoint__project_id",
    )
    approved = _by_project(
        DeploymentRequest.objects.filter(project_id__in=project_ids)
        .values("project_id")
        .annotate(
            n=Count("pk"),
            approved=Count("pk", filter=Q(state=RequestState.APPROVED, target=Target.BATCH)),
        ),
        key="project_id",
    )
    return {
        pid: Progress(
            reached=bool(deployed.get(pid, {}).get("ran") or approved.get(pid, {}).get("approved")),
            counts={
                "deployment_requests": approved.get(pid, {}).get("n", 0),
                "deployments": deployed.get(pid, {}).get("n", 0),
            },
        )
        for pid in project_ids
    }


# One function per stage.
PROGRESS: dict[str, ProgressFn] = {
    Stage.CHARTER: charter_progress,
    Stage.DATA: data_progress,
    Stage.WORKSPACES: workspaces_progress,
    Stage.EXPERIMENTS: experiments_progress,
    Stage.DEPLOYMENT: deployment_progress,
}


@dataclass(frozen=True)
class StageState:
    value: str
    label: str
    number: int
    state: str  # done, current, skipped, todo, absent (not in the portal yet)
    progress: Progress | None


@dataclass(frozen=True)
class ProjectProgress:
    stages: list[StageState]
    current: StageState

    def stage(self, value: str) -> StageState:
        return next(s for s in self.stages if s.value == value)


def _strip(found: dict[str, Progress | None]) -> ProjectProgress:
    order = list(Stage.values)
    reached = [i for i, v in enumerate(order) if (p := found.get(v)) is not None and p.reached]
    here = min(max(reached) + 1, len(order) - 1) if reached else 0
    stages = []
    for i, (value, label) in enumerate(Stage.choices):
        progress = found.get(value)
        if progress is not None and progress.reached:
            state = "done"
        elif i == here:
            state = "current"
        elif value not in PROGRESS:
            state = "absent"
        elif i < here:
            state = "skipped"
        else:
            state = "todo"
        stages.append(StageState(value, str(label), i + 1, state, progress))
    return ProjectProgress(stages, stages[here])


def progress_for(project_ids: Iterable[int]) -> dict[int, ProjectProgress]:
    """Each project's stages and current stage; a fixed number of queries for any number."""
    ids = list(project_ids)
    if not ids:
        return {}
    per_stage = {stage: fn(ids) for stage, fn in PROGRESS.items()}
    return {pid: _strip({stage: per_stage[stage].get(pid) for stage in PROGRESS}) for pid in ids}
