"""Credentials of data sources, encrypted at rest with MultiFernet.

The first key in ``FIELD_ENCRYPTION_KEYS`` encrypts; every key decrypts, so a
new key goes first and ``manage.py rotate_data_secrets`` re-encrypts old rows.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> MultiFernet:
    keys = settings.FIELD_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty.")
    return MultiFernet([Fernet(k) for k in keys])


def secrets_encrypt(values: dict[str, str]) -> str:
    """Encrypt a dict of secrets; an empty dict encrypts to ''."""
    if not values:
        return ""
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def secrets_decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return dict(json.loads(_fernet().decrypt(token.encode())))
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A data source secret cannot be decrypted with FIELD_ENCRYPTION_KEYS."
        ) from exc


def secrets_rotate(token: str) -> str:
    """Re-encrypt a token with the first key."""
    if not token:
        return ""
    return _fernet().rotate(token.encode()).decode()
