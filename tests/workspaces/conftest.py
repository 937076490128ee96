"""Fixtures for the workspaces tests: the seeded catalog, and clean-up of
any real local workspace a test started."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps as django_apps

from compute.models import ComputeSize

seed_migration = importlib.import_module("compute.migrations.0002_seed_compute_catalog")


@pytest.fixture
def catalog(db: Any) -> dict[str, ComputeSize]:
    """The seeded catalog (seeded again after a transactional test flushed it)."""
    seed_migration.seed(django_apps, None)
    return {s.name: s for s in ComputeSize.objects.all()}


@pytest.fixture
def small(catalog: dict[str, ComputeSize]) -> ComputeSize:
    return catalog["Standard_D2s_v3"]  # 2 vCPUs


@pytest.fixture
def medium(catalog: dict[str, ComputeSize]) -> ComputeSize:
    return catalog["Standard_DS3_v2"]  # 4 vCPUs


@pytest.fixture
def gpu(catalog: dict[str, ComputeSize]) -> ComputeSize:
    return catalog["Standard_NC4as_T4_v3"]  # 4 vCPUs, 1 GPU


@pytest.fixture
def provider_cleanup(settings: Any) -> Iterator[None]:
    """Delete whatever the local provider holds when the test ends: no
    Jupyter server outlives its test."""
    from cloud import get_provider

    yield
    provider: Any = get_provider("local")
    root = provider.root
    for state in sorted(root.glob("sg-*/state.json")):
        provider.workspace_delete(state.parent.name)
