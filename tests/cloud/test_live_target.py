"""`make test-azure-live` refuses without credentials; the ordinary run never
collects the live checks (so none can pass there without talking to Azure)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Imported at collection (the Azure SDK is slow to import), as a module so that
# this file does not collect the live test itself.
from tests.cloud.live import test_azure_live as live

ROOT = Path(__file__).resolve().parents[2]


def _live_conftest_ignores() -> list[str]:
    spec = importlib.util.spec_from_file_location(
        "live_conftest_probe", ROOT / "tests" / "cloud" / "live" / "conftest.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.collect_ignore_glob)


def test_the_ordinary_run_does_not_collect_the_live_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STAGEGATE_AZURE_LIVE", raising=False)
    assert _live_conftest_ignores() == ["test_*.py"]
    monkeypatch.setenv("STAGEGATE_AZURE_LIVE", "1")
    assert _live_conftest_ignores() == []


def test_the_live_checks_fail_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("AZURE_")]:
        monkeypatch.delenv(name)
    with pytest.raises(pytest.fail.Exception) as failed:
        live.test_live_azure()
    assert str(failed.value) == (
        "live Azure checks cannot run: set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, "
        "AZURE_ML_WORKSPACE"
    )
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "s")
    monkeypatch.setenv("AZURE_ML_WORKSPACE", "w")
    with pytest.raises(pytest.fail.Exception, match=r"set AZURE_RESOURCE_GROUP$"):
        live.test_live_azure()


def test_the_make_target_refuses_without_credentials() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    script = ROOT / "scripts" / "azure-live-check.py"
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "LIVE AZURE CHECKS DID NOT RUN: set AZURE_SUBSCRIPTION_ID" in done.stderr
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\ntest-azure-live:", 1)[1].split("\n\n", 1)[0]
    # the refusal comes first, and make stops at a failing line
    assert target.index("scripts/azure-live-check.py") < target.index("STAGEGATE_AZURE_LIVE=1")
    test_target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "azure" not in test_target
