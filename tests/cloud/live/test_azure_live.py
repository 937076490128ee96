"""Read-only checks against a real Azure ML workspace (`make test-azure-live`).

Needs AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_ML_WORKSPACE, and
AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET or an azure-identity
login. Without them the test fails, naming what is missing: it never passes
without having checked Azure.
"""

from __future__ import annotations

import os
import random

import pytest

from cloud.azure import AzureProvider
from cloud.base import ResourceState, workspace_name

LIVE_SETTINGS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_ML_WORKSPACE")
SALT = "k7q"


def test_live_azure() -> None:
    missing = [name for name in LIVE_SETTINGS if not os.environ.get(name)]
    if missing:
        pytest.fail(f"live Azure checks cannot run: set {', '.join(missing)}")
    provider = AzureProvider(
        subscription_id=os.environ["AZURE_SUBSCRIPTION_ID"],
        resource_group=os.environ["AZURE_RESOURCE_GROUP"],
        workspace=os.environ["AZURE_ML_WORKSPACE"],
        name_salt=os.environ.get("AZURE_NAME_SALT", SALT),
        tenant_id=os.environ.get("AZURE_TENANT_ID", ""),
        client_id=os.environ.get("AZURE_CLIENT_ID", ""),
        client_secret=os.environ.get("AZURE_CLIENT_SECRET", ""),
    )
    sizes = provider.list_sizes()
    assert sizes and all(s.vcpus > 0 and s.memory_gb > 0 for s in sizes)
    assert any(u["limit"] != 0 for u in provider.list_usage())
    absent = workspace_name(10**9 + random.randrange(10**6), provider.name_salt)
    assert provider.workspace_status(absent).state == ResourceState.DELETED
