"""The real mlflow 3.x client against the portal served by a real server:
scikit-learn autolog, a big artifact in one request, and `server-info`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from accounts.services import token_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_sklearn_autolog_params_metrics_model_visible(as_user: Any, bob: Any) -> None:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    client = as_user(bob)
    experiment_id = mlflow.set_experiment("autolog").experiment_id
    rng = np.random.default_rng(9)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    mlflow.sklearn.autolog(log_input_examples=False, silent=True)
    try:
        with mlflow.start_run() as run:
            model = LogisticRegression(C=0.5, max_iter=300).fit(x, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["C"] == "0.5"
    assert got.data.params["max_iter"] == "300"
    assert got.data.tags["estimator_name"] == "LogisticRegression"
    assert got.data.tags["estimator_class"] == "sklearn.linear_model._logistic.LogisticRegression"
    accuracy = got.data.metrics["training_accuracy_score"]
    assert accuracy == pytest.approx(model.score(x, y))
    assert {"training_f1_score", "training_log_loss", "training_roc_auc"} <= set(got.data.metrics)
    # MLflow 3 logs the model as a logged model of the run.
    logged = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    assert [m.name for m in logged] == ["model"]
    loaded = mlflow.pyfunc.load_model(f"models:/{logged[0].model_id}")
    assert list(loaded.predict(x)) == list(model.predict(x))


def test_server_info_answers_members_only(
    as_user: Any, tracking_uri: str, bob: Any, carol: Any, charlie: Any
) -> None:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.server_info import fetch_server_info

    as_user(bob)
    # What the client itself asks before an artifact transfer.
    info = fetch_server_info(get_default_host_creds(tracking_uri))
    assert info.status_code == 200
    assert info.data is not None
    assert info.data["multipart_uploads_enabled"] is False
    assert info.data["multipart_downloads_enabled"] is False
    assert info.data["workspaces_enabled"] is False
    url = f"{tracking_uri}/api/3.0/mlflow/server-info"
    _, reader = token_create(user=carol, name="read-only")
    assert requests.get(url, headers={"Authorization": f"Bearer {reader}"}, timeout=30).ok
    _, outsider = token_create(user=charlie, name="outsider")
    answer = requests.get(url, headers={"Authorization": f"Bearer {outsider}"}, timeout=30)
    assert answer.status_code == 404
    assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert requests.get(url, timeout=30).status_code == 401
    _, member = token_create(user=bob, name="post")
    posted = requests.post(url, headers={"Authorization": f"Bearer {member}"}, timeout=30)
    assert posted.status_code == 404
    assert posted.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_big_artifact_in_one_request_round_trips(
    as_user: Any, bob: Any, tmp_path: Path, storage: Path
) -> None:
    import mlflow

    as_user(bob)
    mlflow.set_experiment("big-artifacts")
    big = tmp_path / "weights.bin"
    with big.open("wb") as f:
        for _ in range(48):  # 48 MiB, streamed to the proxy in one PUT
            f.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(big), "blobs")
    listing = mlflow.MlflowClient().list_artifacts(run.info.run_id, "blobs")
    assert [(f.path, f.file_size) for f in listing] == [("blobs/weights.bin", 48 * 1024 * 1024)]
    back = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="blobs/weights.bin", dst_path=str(tmp_path / "dl")
    )
    assert hashlib.sha256(Path(back).read_bytes()).hexdigest() == digest
    stored = [p for p in storage.rglob("weights.bin") if p.is_file()]
    assert len(stored) == 1 and stored[0].stat().st_size == 48 * 1024 * 1024
