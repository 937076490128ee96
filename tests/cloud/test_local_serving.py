"""Local serving, for real: sandboxed scoring processes behind a router."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.base import DeploymentSpec, EndpointSpec, ProviderError, ResourceState, SizeSpec
from cloud.local import LocalProvider

SMALL = SizeSpec("Standard_DS1_v2", vcpus=1, memory_gb=2.0)
KEY = "sgk_test-key-0123456789"
DECOY = "sg-serving-decoy-" + hashlib.sha256(b"decoy").hexdigest()[:12]
ROWS = {"dataframe_split": {"columns": ["x1", "x2"], "data": [[1.0, 2.0], [3.0, 1.0]]}}


def train_model(folder: Path, *, offset: float = 0.0) -> Path:
    """A tiny sklearn regression, saved as an MLflow model."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"x1": np.arange(20.0), "x2": np.arange(20.0) % 3})
    y = 2 * x["x1"] + x["x2"] + offset
    model = LinearRegression().fit(x, y)
    path = folder / f"model-{offset}"
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(x, y), serialization_format="cloudpickle"
    )
    return path


def snoop_model(folder: Path, secret_file: Path) -> Path:
    import mlflow.pyfunc

    class SnoopModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> list[str]:
            import os

            try:
                with open(str(secret_file)) as f:
                    found = f.read()
            except OSError as exc:
                found = f"unreadable: {type(exc).__name__}"
            env = "present" if os.environ.get("SG_PORTAL_SECRET") else "absent"
            keys = ",".join(sorted(os.environ))
            return [f"file={found}", f"env={env}", f"keys={keys}"]

    path = folder / "snoop"
    mlflow.pyfunc.save_model(str(path), python_model=SnoopModel())
    return path


@pytest.fixture
def provider(tmp_path: Path) -> Any:
    provider = LocalProvider(tmp_path / "res", ready_timeout=60)
    yield provider
    for record in (tmp_path / "res").glob("_endpoints/*/endpoint.json"):
        provider.endpoint_delete(record.parent.name)


def wait_running(provider: LocalProvider, endpoint: str, name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    status = provider.deployment_status(endpoint, name)
    while status.state != ResourceState.RUNNING:
        assert status.state == ResourceState.CREATING, status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
        status = provider.deployment_status(endpoint, name)


def start(provider: LocalProvider, model: Path, name: str = "blue", **extra: Any) -> None:
    provider.deployment_start(
        DeploymentSpec(endpoint="sg-ep-1", name=name, size=SMALL, model_dir=str(model), **extra)
    )
    wait_running(provider, "sg-ep-1", name)


def key_hash(key: str = KEY) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_scores_a_real_model_with_its_key_only(provider: LocalProvider, tmp_path: Path) -> None:
    status = provider.endpoint_create(EndpointSpec("sg-ep-1", key_sha256=key_hash()))
    assert status.state == ResourceState.RUNNING
    start(provider, train_model(tmp_path), sample_rate=1.0, sensitive_columns=("x2",))
    provider.endpoint_set_traffic("sg-ep-1", {"blue": 100})
    body = json.dumps(ROWS).encode()

    code, answer, deployment = provider.score("sg-ep-1", KEY, body)
    assert code == 200 and deployment == "blue"
    predictions = json.loads(answer)["predictions"]
    assert [round(p, 6) for p in predictions] == [4.0, 7.0]

    records = {"dataframe_records": [{"x1": 1.0, "x2": 2.0}]}
    code, answer, _ = provider.score("sg-ep-1", KEY, json.dumps(records).encode())
    assert code == 200 and round(json.loads(answer)["predictions"][0], 6) == 4.0

    assert provider.score("sg-ep-1", "wrong-key", body)[0] == 401
    assert provider.score("sg-ep-1", "", body)[0] == 401
    code, answer, _ = provider.score("sg-ep-1", KEY, b"not json")
    assert code == 400 and b"not JSON" in answer

    # A new key applies at once; the old one no longer works.
    provider.endpoint_create(EndpointSpec("sg-ep-1", key_sha256=key_hash("new-key")))
    assert provider.score("sg-ep-1", KEY, body)[0] == 401
    assert provider.score("sg-ep-1", "new-key", body)[0] == 200

    samples = provider.deployment_samples("sg-ep-1", "blue")
    assert samples and all("x2" not in s["input"] and "x1" in s["input"] for s in samples)
    assert samples[0]["deployment"] == "blue"


def test_the_split_follows_the_weights_and_rollback_is_immediate(
    provider: LocalProvider, tmp_path: Path
) -> None:
    provider.endpoint_create(EndpointSpec("sg-ep-1", key_sha256=key_hash()))
    start(provider, train_model(tmp_path), "blue")
    start(provider, train_model(tmp_path, offset=100.0), "green")
    provider.endpoint_set_traffic("sg-ep-1", {"blue": 90, "green": 10})
    body = json.dumps(ROWS).encode()
    calls = 1000
    seen = {"blue": 0, "green": 0}
    for _ in range(calls):
        code, answer, deployment = provider.score("sg-ep-1", KEY, body)
        assert code == 200
        expected = 4.0 if deployment == "blue" else 104.0
        assert round(json.loads(answer)["predictions"][0], 6) == expected
        seen[deployment] += 1
    # Within 4 standard deviations of the binomial(1000, 0.1).
    sd = math.sqrt(calls * 0.1 * 0.9)
    assert abs(seen["green"] - 100) < 4 * sd, seen

    # The next request already follows a new split.
    provider.endpoint_set_traffic("sg-ep-1", {"blue": 100, "green": 0})
    after = {provider.score("sg-ep-1", KEY, body)[2] for _ in range(200)}
    assert after == {"blue"}


def test_mirror_sends_copies_to_the_shadow(provider: LocalProvider, tmp_path: Path) -> None:
    provider.endpoint_create(EndpointSpec("sg-ep-1", key_sha256=key_hash()))
    start(provider, train_model(tmp_path), "blue")
    start(provider, train_model(tmp_path, offset=1.0), "green", sample_rate=1.0)
    provider.endpoint_set_traffic("sg-ep-1", {"blue": 100}, mirror={"green": 100})
    body = json.dumps(ROWS).encode()
    # Copies are dropped rather than queued when the shadow lags behind (on a
    # loaded machine many are): calls go on until ten copies arrived.
    sent = 0
    deadline = time.monotonic() + 60
    while len(provider.deployment_samples("sg-ep-1", "green")) < 10:
        assert time.monotonic() < deadline, f"{sent} calls, too few copies reached the shadow"
        assert provider.score("sg-ep-1", KEY, body)[2] == "blue"  # the caller sees blue only
        sent += 1
        time.sleep(0.05)
    rows_per_call = 2  # ROWS: a sample for each row of each call
    assert len(provider.deployment_samples("sg-ep-1", "green")) <= sent * rows_per_call


def test_the_scoring_process_cannot_read_the_portals_secrets(
    provider: LocalProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_PORTAL_SECRET", DECOY)
    secret = tmp_path / "var" / "secret_key"
    secret.parent.mkdir()
    secret.write_text(DECOY)
    provider.endpoint_create(EndpointSpec("sg-ep-1", key_sha256=key_hash()))
    start(provider, snoop_model(tmp_path, secret))
    provider.endpoint_set_traffic("sg-ep-1", {"blue": 100})
    code, answer, _ = provider.score("sg-ep-1", KEY, json.dumps(ROWS).encode())
    assert code == 200, answer
    found = json.loads(answer)["predictions"]
    assert found[0].startswith("file=unreadable"), found
    assert found[1] == "env=absent"
    assert "DJANGO" not in found[2] and DECOY not in answer.decode()
    # Nor does the key reach it: only its hash.
    folder = tmp_path / "res/_endpoints/sg-ep-1"
    config = (folder / "deployments/blue/config.json").read_text()
    assert KEY not in config
    assert (folder / "auth/key.sha256").read_text() == key_hash()


def test_processes_are_rediscovered_and_a_dead_router_comes_back(
    provider: LocalProvider, tmp_path: Path
) -> None:
    provider.endpoint_create(EndpointSpec("sg-ep-1", key_sha256=key_hash()))
    start(provider, train_model(tmp_path))
    provider.endpoint_set_traffic("sg-ep-1", {"blue": 100})
    # A new provider object (a restarted worker) sees what runs.
    again = LocalProvider(tmp_path / "res", ready_timeout=60)
    assert again.deployment_status("sg-ep-1", "blue").state == ResourceState.RUNNING
    url = again.endpoint_status("sg-ep-1").url
    record = json.loads((tmp_path / "res/_endpoints/sg-ep-1/endpoint.json").read_text())
    import psutil

    supervisor = psutil.Process(record["router_pid"])
    (router,) = supervisor.children()
    supervisor.kill()
    supervisor.wait(5)
    router.wait(5)  # an orphaned router stops itself
    status = again.endpoint_status("sg-ep-1")
    assert status.state == ResourceState.RUNNING and status.url == url
    assert again.score("sg-ep-1", KEY, json.dumps(ROWS).encode())[0] == 200
    again.deployment_stop("sg-ep-1", "blue")
    assert again.deployment_status("sg-ep-1", "blue").state == ResourceState.STOPPED
    assert again.score("sg-ep-1", KEY, json.dumps(ROWS).encode())[0] == 502


def test_bad_traffic_is_refused(provider: LocalProvider) -> None:
    provider.endpoint_create(EndpointSpec("sg-ep-1", key_sha256=key_hash()))
    with pytest.raises(ProviderError, match="add up to 100"):
        provider.endpoint_set_traffic("sg-ep-1", {"blue": 50})
    with pytest.raises(ProviderError, match="Invalid deployment"):
        provider.endpoint_set_traffic("sg-ep-1", {"../x": 100})
    with pytest.raises(ProviderError, match="not an MLflow model"):
        provider.deployment_start(
            DeploymentSpec(endpoint="sg-ep-1", name="blue", size=SMALL, model_dir="/tmp")  # noqa: S108
        )
