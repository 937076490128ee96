"""The latest mlflow 2.x client (its own virtualenv, .venv-mlflow2, made by
`make install-dev`) against the portal served by a real server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from experiments.models import ModelAlias, Run
from tests.experiments.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-mlflow2" / "bin" / "python"
SCRIPT = Path(__file__).parent / "clients" / "mlflow2_round_trip.py"


def test_mlflow2_client_logs_searches_registers_and_loads(
    tracking_uri: str, bob: Any, tmp_path: Path
) -> None:
    assert PYTHON.exists(), f"{PYTHON} is missing: run `make install-dev` (it makes .venv-mlflow2)"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_TRACKING_TOKEN": token_for(bob),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    }
    done = subprocess.run(
        [str(PYTHON), str(SCRIPT)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["mlflow_version"].startswith("2.")
    assert out["status"] == "FINISHED"
    assert out["params"] == {"lr": "0.1", "depth": "3"}
    assert out["metrics"] == {"auc": 0.9}
    assert out["history"] == [0.5, 0.7, 0.9]
    assert out["tag"] == "mlflow2"
    assert out["param_change_error"] == "INVALID_PARAMETER_VALUE"
    assert out["search"] == [True]
    assert out["lowest"] == "0.3"
    assert out["artifact"] == "precision 0.91\n"
    assert out["artifacts"] == ["model", "reports"]
    assert out["version"] == "1"
    assert out["alias"] == "1"
    assert out["predictions"] == out["expected"]
    # It all landed in the project, written as bob, the registry changes audited.
    assert set(Run.objects.values_list("user_id_text", flat=True)) == {"bob"}
    assert ModelAlias.objects.get().alias == "champion"
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("run.created") == 2
    assert "model_version.created" in actions and "model_alias.set" in actions
