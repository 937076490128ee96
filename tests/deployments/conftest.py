"""Fixtures of the deployment stage's tests."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps as django_apps

from tests.deployments import drift_data
from tests.workspaces.conftest import seed_migration


@pytest.fixture
def catalog(db: Any) -> None:
    """The priced catalog of sizes that endpoints are served on, seeded again
    after a transactional test (a real worker's) flushed the database."""
    seed_migration.seed(django_apps, None)


@pytest.fixture
def deployed(project: Any, alice: Any, bob: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Blue and green of endpoint ``churn`` running one trained version, and a
    stopped deployment of endpoint ``old`` (no scoring processes: only logs)."""
    return drift_data.deployed(
        project=project, alice=alice, bob=bob, callbacks=django_capture_on_commit_callbacks
    )
