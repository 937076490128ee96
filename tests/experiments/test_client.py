"""The real mlflow client against the portal served by a real server."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from audit.models import AuditEvent
from experiments.models import Metric as MetricPoint

pytestmark = pytest.mark.django_db(transaction=True)


def test_experiment_run_params_metrics_tags_round_trip(as_user: Any, bob: Any) -> None:
    import mlflow

    client = as_user(bob)
    experiment_id = mlflow.set_experiment("churn-baseline").experiment_id
    assert mlflow.set_experiment("churn-baseline").experiment_id == experiment_id
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("lr", "0.1")
        mlflow.log_params({"depth": 3, "algo": "gbm"})
        for step, value in enumerate([0.5, 0.6, float("nan"), float("inf"), 0.9]):
            mlflow.log_metric("acc", value, step=step)
        mlflow.log_metric("loss", float("-inf"))
        mlflow.set_tag("team", "churn")
        mlflow.set_tag("team", "retention")  # tags overwrite
        mlflow.log_param("lr", "0.1")  # the same value again is fine
        with pytest.raises(MlflowException, match="Changing param values is not allowed"):
            mlflow.log_param("lr", "0.2")
    got = client.get_run(run.info.run_id)
    assert got.info.run_name == "first"
    assert got.info.status == "FINISHED"
    assert got.info.user_id == "bob"
    assert got.data.params == {"lr": "0.1", "depth": "3", "algo": "gbm"}
    assert got.data.tags["team"] == "retention"
    assert got.data.metrics["acc"] == 0.9
    assert got.data.metrics["loss"] == -math.inf
    history = client.get_metric_history(run.info.run_id, "acc")
    values = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert values[:2] == [0.5, 0.6] and math.isnan(values[2])
    assert values[3] == math.inf and values[4] == 0.9
    # Run creation is audited, single metric points are not.
    actions = list(
        AuditEvent.objects.exclude(action__startswith="token.").values_list("action", flat=True)
    )
    assert actions.count("run.created") == 1
    assert actions.count("experiment.created") == 1
    assert len(actions) == 2


def test_log_batch_and_limits(as_user: Any, bob: Any) -> None:
    client = as_user(bob)
    experiment_id = client.create_experiment("batches")
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    metrics = [Metric("m", float(i), 1000 + i, i) for i in range(1000)]
    client.log_batch(
        run_id,
        metrics=metrics,
        params=[Param(f"p{i}", str(i)) for i in range(100)],
        tags=[RunTag("ünïcode.key", "värde")],
    )
    assert MetricPoint.objects.filter(run__uuid=run_id).count() == 1000
    got = client.get_run(run_id)
    assert got.data.metrics["m"] == 999.0
    assert got.data.tags["ünïcode.key"] == "värde"
    assert len(got.data.params) == 100


def test_artifacts_upload_list_download(as_user: Any, bob: Any, tmp_path: Path) -> None:
    import mlflow

    as_user(bob)
    mlflow.set_experiment("artifacts")
    source = tmp_path / "out"
    (source / "plots").mkdir(parents=True)
    (source / "report.txt").write_text("precision 0.91\n")
    (source / "plots" / "roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source))
        mlflow.log_text("hello", "notes/hello.txt")
    client = mlflow.MlflowClient()
    top = {f.path: f.is_dir for f in client.list_artifacts(run.info.run_id)}
    assert top == {"notes": True, "plots": True, "report.txt": False}
    nested = client.list_artifacts(run.info.run_id, "plots")
    assert [(f.path, f.file_size) for f in nested] == [("plots/roc.csv", 16)]
    back = Path(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "dl"))
    )
    assert (back / "report.txt").read_text() == "precision 0.91\n"
    assert (back / "notes" / "hello.txt").read_text() == "hello"


def test_register_alias_and_load_by_alias(as_user: Any, bob: Any) -> None:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    client = as_user(bob)
    mlflow.set_experiment("registry")
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    y = np.array([0, 1, 0, 1])
    model = LogisticRegression().fit(x, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    version = mlflow.register_model(info.model_uri, "churn-model")
    assert version.version == "1"
    again = mlflow.register_model(f"runs:/{run.info.run_id}/model", "churn-model")
    assert again.version == "2"
    client.set_registered_model_alias("churn-model", "champion", "1")
    assert client.get_model_version_by_alias("churn-model", "champion").version == "1"
    loaded = mlflow.pyfunc.load_model("models:/churn-model@champion")
    assert list(loaded.predict(x)) == list(model.predict(x))
    client.set_registered_model_alias("churn-model", "champion", "2")
    assert client.get_model_version_by_alias("churn-model", "champion").version == "2"
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("model_version.created") == 2
    assert actions.count("model_alias.set") == 2
    assert "registered_model.created" in actions
