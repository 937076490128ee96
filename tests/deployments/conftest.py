"""Fixtures of the deployment stage's tests."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps as django_apps

from tests.workspaces.conftest import seed_migration


@pytest.fixture
def catalog(db: Any) -> None:
    """The priced catalog of sizes that endpoints are served on, seeded again
    after a transactional test (a real worker's) flushed the database."""
    seed_migration.seed(django_apps, None)
