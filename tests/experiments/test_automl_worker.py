"""An AutoML run for real: one training job on the local provider, carried
by a real Celery worker, FLAML searching within a time budget in the sandbox;
the leaderboard is the job's run's child runs, the best model is logged in
MLflow format on the job's run and loads back through the mlflow client."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.conf import settings

from experiments import sweeps
from experiments.job_models import Job, JobState
from experiments.models import LatestMetric, LoggedModel, Run, RunStatus
from experiments.sweep_selectors import leaderboard, sweep_progress
from experiments.tasks import split_inputs
from projects.tokens import project_token_issue
from tests.conftest import start_worker, stop_worker
from tests.experiments import jobs_data
from tests.workspaces.test_worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def storage() -> Path:
    """The object store the worker process uses too (see test_jobs_worker)."""
    return Path(settings.STAGEGATE_STORAGE_URL.removeprefix("file://"))


def test_automl_within_its_budget_logs_a_leaderboard_and_a_model_that_loads_back(
    project: Any, alice: Any, bob: Any, provider_jobs: Path, live_server: Any
) -> None:
    split = jobs_data.ready_split(project=project, actor=alice)
    worker = start_worker(
        "sweeps-automl", queues="training", env_extra={"PORTAL_BASE_URL": live_server.url}
    )
    try:
        automl = sweeps.automl_create(
            actor=bob,
            project=project,
            split=split,
            size=jobs_data.size(),
            time_budget_seconds=30,
            families=["lgbm", "rf", "lrl2"],
            wall_clock_minutes=2,
        )
        started = time.monotonic()
        wait_for(lambda: Job.objects.get(pk=automl.job_id).finished, 240, "AutoML to end")
    finally:
        stop_worker(worker)
    job = Job.objects.select_related("run").get(pk=automl.job_id)
    assert job.state == JobState.SUCCEEDED, (job.state_reason, job.log_tail)
    assert job.duration_seconds is not None and job.duration_seconds < 120
    assert time.monotonic() - started < 180
    assert job.run is not None
    # The leaderboard: one finished child run per model tried, of the allowed families.
    children = Run.objects.filter(tags__key="mlflow.parentRunId", tags__value=job.run.uuid)
    assert children.count() >= 2, job.log_tail
    assert set(children.values_list("status", flat=True)) == {RunStatus.FINISHED}
    families = set(children.filter(params__key="family").values_list("params__value", flat=True))
    assert families and families <= {"lgbm", "rf", "lrl2"}
    board = leaderboard(sweep_progress(sweep=automl))
    assert len(board) == children.count()
    losses = [t.value for t in board if t.value is not None]
    assert len(losses) == len(board)
    assert losses == sorted(losses)
    # The best model on the job's run, with the charter's metric on the test part.
    metric = LatestMetric.objects.get(run=job.run, key__name="roc_auc")
    assert 0.7 < metric.value <= 1.0
    assert LoggedModel.objects.filter(source_run=job.run, name="model").exists()

    import mlflow

    uri = f"{live_server.url}/mlflow/{project.slug}"
    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_TRACKING_TOKEN"] = project_token_issue(
        project=project, user=bob, purpose="automl-test"
    )
    try:
        loaded = mlflow.pyfunc.load_model(f"runs:/{job.run.uuid}/model")
        signature = loaded.metadata.signature
        assert signature is not None
        assert [c.name for c in signature.inputs.inputs] == ["tenure", "charges", "plan"]
        test = pd.read_parquet(split_inputs(job)["test"]).drop(columns=["churned"])
        assert set(loaded.predict(test.head(10))) <= {"yes", "no"}
    finally:
        del os.environ["MLFLOW_TRACKING_TOKEN"]
