"""The baseline template against the portal's tracking server, as a job
runs it once the tracking server is within the sandbox's reach: the real
``mlflow`` client logs the charter's metric into the job's run and the model
(with its signature), which loads back and predicts."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest

from experiments import jobs
from experiments.models import LatestMetric, LoggedModel, Param
from experiments.tasks import split_inputs
from projects.tokens import project_token_issue
from tests.experiments import jobs_data

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("library", "estimator"),
    [("sklearn", "HistGradientBoostingClassifier"), ("lightgbm", "LGBMClassifier")],
)
def test_the_baseline_logs_the_charters_metric_and_a_loadable_model_into_the_jobs_run(
    live_server: Any,
    project: Any,
    alice: Any,
    bob: Any,
    tmp_path: Any,
    library: str,
    estimator: str,
) -> None:
    split = jobs_data.ready_split(project=project, actor=alice)
    job = jobs.job_create(
        actor=bob, project=project, split=split, size=jobs_data.size(), model=library
    )
    assert ("--model=lightgbm" in job.command) == (library == "lightgbm")
    assert job.run is not None
    inputs = split_inputs(job)
    uri = f"{live_server.url}/mlflow/{project.slug}"
    token = project_token_issue(project=project, user=bob, purpose=f"job:{job.pk}")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_TRACKING_TOKEN": token,
        "MLFLOW_RUN_ID": job.run.uuid,
        "MLFLOW_EXPERIMENT_ID": str(job.run.experiment_id),
        "SG_INPUT_TRAIN": inputs["train"],
        "SG_INPUT_TEST": inputs["test"],
        "SG_OUTPUT_DIR": str(tmp_path),
    }
    done = subprocess.run(  # noqa: S603 - the job's own command line, no shell
        [sys.executable, str(jobs.template_path("baseline")), *job.command.split()[2:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "logged to the tracking server" in done.stdout
    metric = LatestMetric.objects.get(run=job.run, key__name="roc_auc")
    assert 0.7 < metric.value <= 1.0
    model = LoggedModel.objects.get(source_run=job.run)
    assert model.name == "model"
    params = dict(Param.objects.filter(run=job.run).values_list("key", "value"))
    assert params["estimator"] == estimator and params["library"] == library

    import mlflow

    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        loaded = mlflow.pyfunc.load_model(f"runs:/{job.run.uuid}/model")
        signature = loaded.metadata.signature
        assert signature is not None
        assert [c.name for c in signature.inputs.inputs] == ["tenure", "charges", "plan"]
        test = pd.read_parquet(inputs["test"]).drop(columns=["churned"])
        assert set(loaded.predict(test.head(10))) <= {"yes", "no"}
        assert loaded.metadata.saved_input_example_info is not None  # the input example
    finally:
        del os.environ["MLFLOW_TRACKING_TOKEN"]
