"""Shared fixtures. The cast, as in every access test:

- alice: lead of ``project`` (the owner)
- bob: data scientist in it (a member who may write)
- carol: analyst in it (a read-only member)
- dave: business approver in it
- charlie: not a member (an outsider)
- admin: platform admin (staff)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from cloud import get_provider
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    charter_signed_off,
)

ROOT = Path(__file__).resolve().parent.parent

# Playwright runs an event loop in the test thread; Django's ORM calls from
# that thread are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# The mlflow client's telemetry sets and removes an environment variable from
# a thread of its own, which races with requests reading os.environ (a
# KeyError in the middle of a client call); nothing could receive it anyway.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def pytest_configure(config: Any) -> None:
    # Hashing passwords slowly protects real users, not test fixtures.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    engine = settings.DATABASES["default"]["ENGINE"]
    broker = settings.CELERY_BROKER_URL
    if engine != "django.db.backends.postgresql" or not broker.startswith("redis://"):
        raise pytest.UsageError(
            "The tests need PostgreSQL and Redis: run them with `make test`, which starts both "
            f"(found DATABASE engine {engine!r}, broker {broker!r})."
        )


@pytest.fixture
def alice(db: Any) -> Any:
    return UserFactory(username="alice")


@pytest.fixture
def bob(db: Any) -> Any:
    return UserFactory(username="bob")


@pytest.fixture
def carol(db: Any) -> Any:
    return UserFactory(username="carol")


@pytest.fixture
def dave(db: Any) -> Any:
    return UserFactory(username="dave")


@pytest.fixture
def charlie(db: Any) -> Any:
    return UserFactory(username="charlie")


@pytest.fixture
def admin_user(db: Any) -> Any:
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


def _churn(alice: Any, bob: Any, carol: Any, dave: Any, stage: str = "charter") -> Any:
    project = ProjectFactory(name="Churn", slug="churn", created_by=alice, stage=stage)
    MembershipFactory(project=project, user=alice, role="lead")
    MembershipFactory(project=project, user=bob, role="data_scientist")
    MembershipFactory(project=project, user=carol, role="analyst")
    MembershipFactory(project=project, user=dave, role="business_approver")
    return project


@pytest.fixture
def project(alice: Any, bob: Any, carol: Any, dave: Any) -> Any:
    """The cast's project, its charter signed off by dave (written straight to the
    table: no approval request, no audit event), so later stages' gates let it pass."""
    project = _churn(alice, bob, carol, dave, stage="data")
    charter_signed_off(project, by=dave, author=alice)
    return project


@pytest.fixture
def project_unsigned(alice: Any, bob: Any, carol: Any, dave: Any) -> Any:
    """The same project and cast with no charter at all: every charter gate refuses."""
    return _churn(alice, bob, carol, dave)


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def client_for(client: Any) -> Any:
    """Log the test client in as a given user: ``client_for(alice)``."""

    def login(user: Any) -> Any:
        client.force_login(user)
        return client

    return login


@pytest.fixture
def api_for() -> Any:
    """A DRF API client authenticated as a user: ``api_for(alice)``."""
    from rest_framework.test import APIClient

    def make(user: Any) -> APIClient:
        api = APIClient()
        api.force_authenticate(user)
        return api

    return make


def start_worker(
    name: str,
    queues: str = "default,provisioning,training,data",
    env_extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a real Celery worker against the test database and broker
    (``env_extra``: settings of the worker's own, e.g. PORTAL_BASE_URL)."""
    env = dict(os.environ) | (env_extra or {})
    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            queues,
            "--pool",
            "solo",
            "-n",
            f"{name}@%h",
            "-l",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    from portal.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Celery worker {name} exited with {proc.returncode}")
        replies = app.control.ping(timeout=0.5) or []
        if any(name in reply_name for reply in replies for reply_name in reply):
            return proc
    proc.kill()
    raise RuntimeError(f"Celery worker {name} did not answer a ping within 60 s")


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def celery_worker(transactional_db: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process, for tests where the wiring matters."""
    proc = start_worker("pytest-worker")
    try:
        yield proc
    finally:
        stop_worker(proc)


@pytest.fixture
def provider_jobs() -> Iterator[Path]:
    """The local provider's job folders; whatever a test started is cancelled."""
    provider: Any = get_provider("local")
    root = provider.root / "_jobs"
    before = set(root.iterdir()) if root.exists() else set()
    yield root
    for folder in (set(root.iterdir()) if root.exists() else set()) - before:
        provider.job_cancel(folder.name)
