"""Which provider serves the portal: a setting, one instance per process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud import get_provider, reset_providers
from cloud.base import Provider, ProviderConfigurationError
from cloud.local import LocalProvider


@pytest.fixture(autouse=True)
def fresh_providers() -> Iterator[None]:
    reset_providers()
    yield
    reset_providers()


def test_default_is_the_local_provider_cached_per_process(settings: Any, tmp_path: Path) -> None:
    settings.CLOUD_PROVIDER = "local"
    settings.LOCAL_PROVIDER_ROOT = tmp_path / "workspaces"
    provider = get_provider()
    assert isinstance(provider, LocalProvider)
    assert isinstance(provider, Provider)  # the Protocol, checked at runtime
    assert provider.root == (tmp_path / "workspaces").resolve()
    assert get_provider() is provider
    assert get_provider("local") is provider


def test_azure_without_configuration_is_refused(settings: Any) -> None:
    settings.AZURE_SUBSCRIPTION_ID = ""
    with pytest.raises(ProviderConfigurationError, match="AZURE_SUBSCRIPTION_ID"):
        get_provider("azure")


def test_azure_from_settings(settings: Any) -> None:
    from cloud.azure import AzureProvider

    settings.AZURE_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
    settings.AZURE_RESOURCE_GROUP = "rg"
    settings.AZURE_ML_WORKSPACE = "ws"
    settings.AZURE_NAME_SALT = "k7q"
    settings.AZURE_WORKSPACE_ALLOWED_IPS = ["20.61.0.0/16"]
    provider = get_provider("azure")
    assert isinstance(provider, AzureProvider) and isinstance(provider, Provider)
    assert provider.workspace_allowed_ips == ("20.61.0.0/16",)
    assert provider.name_salt == "k7q"


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(ProviderConfigurationError, match="Unknown cloud provider"):
        get_provider("gcp")
