"""Fixtures for the tracking API: the portal served by a real threaded
server (pytest-django's ``live_server``), a private artifact store per test,
and the real ``mlflow`` client pointed at the project's tracking URI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.services import token_create


@pytest.fixture(autouse=True)
def storage(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    settings.STAGEGATE_STORAGE_URL = f"file://{root}"
    settings.STAGEGATE_STORAGE_OPTIONS = {}
    return root


def token_for(user: Any) -> str:
    _, raw = token_create(user=user, name="mlflow")
    return str(raw)


@pytest.fixture
def tracking_uri(live_server: Any, project: Any) -> str:
    return f"{live_server.url}/mlflow/{project.slug}"


@pytest.fixture
def as_user(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Switch the mlflow client to a user's token; yields a function
    ``as_user(user) -> MlflowClient``."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)

    def switch(user: Any) -> Any:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token_for(user))
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    yield switch
    if mlflow.active_run():
        mlflow.end_run()
