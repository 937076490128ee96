"""Where things run. ``get_provider()`` returns the configured provider."""

from __future__ import annotations

import threading

from cloud.base import Provider, ProviderConfigurationError

_providers: dict[str, Provider] = {}
_lock = threading.Lock()


def get_provider(name: str | None = None) -> Provider:
    """Return the provider ``name`` (default ``settings.CLOUD_PROVIDER``), one per process."""
    from django.conf import settings

    key = name or settings.CLOUD_PROVIDER
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _build(key)
            _providers[key] = provider
        return provider


def _build(name: str) -> Provider:
    if name == "local":
        from cloud.local import LocalProvider

        return LocalProvider.from_settings()
    if name == "azure":
        # Imported here: the Azure SDK takes seconds to import and only this
        # provider needs it.
        from cloud.azure import AzureProvider

        return AzureProvider.from_settings()
    raise ProviderConfigurationError(
        f"Unknown cloud provider {name!r} (expected 'local' or 'azure')"
    )


def reset_providers() -> None:
    """Forget the cached providers (after a settings change, e.g. in tests)."""
    with _lock:
        _providers.clear()
