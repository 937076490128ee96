"""Run by tests/experiments/test_client_mlflow2.py with the mlflow 2.x client
of .venv-mlflow2, against the portal at MLFLOW_TRACKING_URI; prints what it
read back as one JSON object on the last line."""

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

out: dict[str, Any] = {"mlflow_version": mlflow.__version__}
client = MlflowClient()
experiment_id = mlflow.set_experiment("mlflow2").experiment_id
x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
y = np.array([0, 1, 0, 1])
model = LogisticRegression().fit(x, y)
with mlflow.start_run(run_name="two") as run:
    mlflow.log_params({"lr": "0.1", "depth": 3})
    for step, value in enumerate([0.5, 0.7, 0.9]):
        mlflow.log_metric("auc", value, step=step)
    mlflow.set_tag("client", "mlflow2")
    mlflow.log_text("precision 0.91\n", "reports/summary.txt")
    mlflow.sklearn.log_model(model, artifact_path="model", serialization_format="cloudpickle")
    try:
        mlflow.log_param("lr", "0.2")
    except MlflowException as exc:
        out["param_change_error"] = exc.error_code
with mlflow.start_run(run_name="other"):
    mlflow.log_params({"lr": "0.3"})
    mlflow.log_metric("auc", 0.4)
run_id = run.info.run_id
got = client.get_run(run_id)
out["status"] = got.info.status
out["params"] = got.data.params
out["metrics"] = got.data.metrics
out["tag"] = got.data.tags.get("client")
out["history"] = [
    m.value for m in sorted(client.get_metric_history(run_id, "auc"), key=lambda m: m.step)
]
found = mlflow.search_runs(
    [experiment_id], filter_string="metrics.auc > 0.5 AND params.lr = '0.1'", output_format="list"
)
out["search"] = [r.info.run_id == run_id for r in found]
ordered = client.search_runs([experiment_id], order_by=["metrics.auc ASC"], max_results=1)
out["lowest"] = ordered[0].data.params["lr"]
with tempfile.TemporaryDirectory() as tmp:
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="reports/summary.txt", dst_path=tmp
    )
    out["artifact"] = Path(path).read_text()
out["artifacts"] = sorted(f.path for f in client.list_artifacts(run_id))
version = mlflow.register_model(f"runs:/{run_id}/model", "mlflow2-model")
out["version"] = version.version
client.set_registered_model_alias("mlflow2-model", "champion", version.version)
out["alias"] = client.get_model_version_by_alias("mlflow2-model", "champion").version
loaded = mlflow.pyfunc.load_model("models:/mlflow2-model@champion")
out["predictions"] = [int(v) for v in loaded.predict(x)]
out["expected"] = [int(v) for v in model.predict(x)]
print(json.dumps(out))
sys.exit(0)
