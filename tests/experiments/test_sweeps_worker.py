"""A sweep run for real: one training job on the local provider, carried by
a real Celery worker (queue "training"), its Optuna runner in the sandbox
starting each trial as a subprocess that logs a child run of the job's run
through the tracking relay. Eight trials, two at a time; successive halving
stops the trials that fall behind (a minimum leaf size above half the
training rows leaves a model that cannot split: ROC AUC 0.5)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from experiments import sweeps
from experiments.job_models import Job, JobState
from experiments.models import LatestMetric, Run, RunStatus, RunTag
from experiments.sweep_selectors import sweep_progress
from tests.conftest import start_worker, stop_worker
from tests.experiments import jobs_data
from tests.workspaces.test_worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def storage() -> Path:
    """The object store the worker process uses too (see test_jobs_worker)."""
    return Path(settings.STAGEGATE_STORAGE_URL.removeprefix("file://"))


def test_a_sweep_of_eight_trials_two_at_a_time_prunes_the_laggards(
    project: Any, alice: Any, bob: Any, provider_jobs: Path, live_server: Any
) -> None:
    split = jobs_data.ready_split(project=project, actor=alice)
    worker = start_worker(
        "sweeps-optuna", queues="training", env_extra={"PORTAL_BASE_URL": live_server.url}
    )
    try:
        sweep = sweeps.sweep_create(
            actor=bob,
            project=project,
            split=split,
            size=jobs_data.size(),
            space={
                "learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
                "min_samples_leaf": {"type": "int", "low": 5, "high": 200},
                "max_iter": {"type": "choice", "values": [60]},
            },
            sampler="random",
            seed=0,
            max_trials=8,
            parallel=2,
            early_termination="halving",
            time_budget_minutes=5,
            wall_clock_minutes=10,
        )
        wait_for(lambda: Job.objects.get(pk=sweep.job_id).finished, 300, "the sweep to end")
    finally:
        stop_worker(worker)
    job = Job.objects.select_related("run").get(pk=sweep.job_id)
    assert job.state == JobState.SUCCEEDED, (job.state_reason, job.log_tail)
    assert job.run is not None
    children = list(
        Run.objects.filter(tags__key="mlflow.parentRunId", tags__value=job.run.uuid).order_by(
            "start_time"
        )
    )
    assert len(children) == 8, job.log_tail
    # Early termination stopped at least one trial: its run ended KILLED,
    # tagged with why, and the runner said so in the job's log.
    pruned = [r for r in children if r.status == RunStatus.KILLED]
    assert pruned, job.log_tail
    for run in pruned:
        reason = RunTag.objects.get(run=run, key="stagegate.sweep.pruned").value
        assert reason.startswith("pruned at step ")
    assert re.search(r"trial \d+ pruned at step \d+", job.log_tail)
    finished = [r for r in children if r.status == RunStatus.FINISHED]
    assert finished and len(finished) + len(pruned) == 8
    # Two at a time: some trials overlapped, never three.
    spans = [(r.start_time or 0, r.end_time or 0) for r in children]
    assert all(start and end for start, end in spans)
    overlapping = [
        (a, b) for a, b in itertools.combinations(spans, 2) if a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping
    for a, b, c in itertools.combinations(spans, 3):
        assert not (max(a[0], b[0], c[0]) < min(a[1], b[1], c[1]))
    # The job's run holds the best trial: its metric and the tags.
    values = {
        m.run_id: m.value
        for m in LatestMetric.objects.filter(run__in=finished, key__name="roc_auc")
    }
    best_run = max(finished, key=lambda r: values[r.pk])
    parent = {t.key: t.value for t in RunTag.objects.filter(run=job.run)}
    assert parent["stagegate.sweep.best_run_id"] == best_run.uuid
    top = LatestMetric.objects.get(run=job.run, key__name="roc_auc")
    assert top.value == pytest.approx(values[best_run.pk])
    assert 0.7 < top.value <= 1.0
    progress = sweep_progress(sweep=sweep)
    assert progress.best is not None and progress.best.run_id == best_run.uuid
    assert progress.counts.get("pruned") == len(pruned) and progress.done == 8
