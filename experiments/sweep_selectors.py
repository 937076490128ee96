"""Reads of sweeps and AutoML runs: the rows with their jobs, and the trials
(the child runs of the job's run) with their parameters and metrics, in a
fixed number of queries however many trials there are."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, QuerySet

from experiments.models import LatestMetric, Run, RunStatus
from experiments.sweep_models import Sweep, SweepKind
from projects.models import Project

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAGS = ("stagegate.sweep.trial", "stagegate.automl.trial")
PRUNED_TAG = "stagegate.sweep.pruned"


def sweeps_for_project(*, project: Project, kind: str | None = None) -> QuerySet[Sweep]:
    rows = Sweep.objects.filter(project=project).select_related(
        "job__created_by", "job__size", "job__run", "job__split__parent__source"
    )
    if kind is not None:
        rows = rows.filter(kind=kind)
    return rows


@dataclass
class Trial:
    number: int
    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    pruned: str
    value: float | None
    seconds: float | None
    state: str = ""


@dataclass
class Progress:
    metric: str
    maximize: bool
    planned: int | None
    trials: list[Trial] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    best: Trial | None = None

    @property
    def done(self) -> int:
        return sum(self.counts.get(k, 0) for k in ("finished", "pruned", "failed"))

    @property
    def run_ids(self) -> list[str]:
        return [t.run_id for t in self.trials]


def _trial(run: Run, metric_key: str) -> Trial:
    tags = {t.key: t.value for t in run.tags.all()}
    metrics = {m.key.name: m.value for m in run.latest_metrics.all()}
    number = next((tags[k] for k in TRIAL_TAGS if k in tags), "")
    value = metrics.get(metric_key)
    seconds = None
    if run.start_time and run.end_time:
        seconds = max(0.0, (run.end_time - run.start_time) / 1000)
    trial = Trial(
        number=int(number) if number.isdigit() else -1,
        run_id=run.uuid,
        name=run.name,
        status=run.status,
        params={p.key: p.value for p in run.params.all()},
        metrics=metrics,
        pruned=tags.get(PRUNED_TAG, ""),
        value=value if value is not None and math.isfinite(value) else None,
        seconds=seconds,
    )
    trial.state = _state(trial)
    return trial


def _state(trial: Trial) -> str:
    if trial.pruned:
        return "pruned"
    states: dict[str, str] = {
        RunStatus.FINISHED: "finished",
        RunStatus.FAILED: "failed",
        RunStatus.KILLED: "failed",
    }
    return states.get(trial.status, "running")


def sweep_progress(*, sweep: Sweep) -> Progress:
    """The trials so far and the best of them (three queries)."""
    if sweep.kind == SweepKind.AUTOML:
        metric = str(sweep.config.get("metric", ""))
        key, maximize, planned = "validation_loss", False, None
    else:
        objective = sweep.config.get("objective") or {}
        metric = str(objective.get("metric", ""))
        key, maximize = metric, objective.get("direction") == "maximize"
        planned = int(sweep.config.get("max_trials", 0)) or None
    progress = Progress(metric=metric, maximize=maximize, planned=planned)
    run = sweep.job.run
    if run is None:
        return progress
    runs = (
        Run.objects.filter(tags__key=PARENT_TAG, tags__value=run.uuid)
        .prefetch_related(
            "params",
            "tags",
            Prefetch("latest_metrics", queryset=LatestMetric.objects.select_related("key")),
        )
        .order_by("start_time", "pk")
    )
    progress.trials = sorted((_trial(r, key) for r in runs), key=lambda t: t.number)
    for trial in progress.trials:
        progress.counts[trial.state] = progress.counts.get(trial.state, 0) + 1
    scored = [t for t in progress.trials if t.state == "finished" and t.value is not None]
    if scored:
        pick = max if maximize else min
        progress.best = pick(scored, key=lambda t: t.value or 0.0)
    return progress


def leaderboard(progress: Progress) -> list[Trial]:
    """AutoML's models, best (lowest validation loss) first."""
    return sorted(
        (t for t in progress.trials if t.value is not None),
        key=lambda t: t.value if t.value is not None else math.inf,
    )


def comparison_query(progress: Progress, limit: int = 500) -> dict[str, Any]:
    return {"runs": ",".join(progress.run_ids[:limit])}


def get_sweep_for_user(
    user: Any, slug: str, sweep_id: int, *, kind: str, write: bool = False
) -> tuple[Sweep, Any]:
    """The sweep (or AutoML run) ``sweep_id`` of project ``slug``, if the user
    may see it: 404 for outsiders, 403 for read-only members asking to write."""
    from django.http import Http404

    from projects.permissions import get_project_for_user

    project, membership = get_project_for_user(user, slug, write=write)
    sweep = sweeps_for_project(project=project, kind=kind).filter(pk=sweep_id).first()
    if sweep is None:
        raise Http404("No such sweep.")
    return sweep, membership
