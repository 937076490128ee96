"""Encryption of data source credentials at rest: MultiFernet, newest key first."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured

from datasets.crypto import secrets_decrypt, secrets_encrypt, secrets_rotate

SECRETS = {"password": "hunter2", "account_key": "k=="}


@pytest.fixture
def keys(settings: Any) -> list[str]:
    keys = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    settings.FIELD_ENCRYPTION_KEYS = keys
    return keys


def test_round_trip_and_nothing_in_clear(keys: list[str]) -> None:
    token = secrets_encrypt(SECRETS)
    assert "hunter2" not in token and "password" not in token
    assert secrets_decrypt(token) == SECRETS
    # The first key encrypts.
    assert Fernet(keys[0].encode()).decrypt(token.encode())
    with pytest.raises(InvalidToken):
        Fernet(keys[1].encode()).decrypt(token.encode())


def test_empty_secrets_are_stored_as_nothing(keys: list[str]) -> None:
    assert secrets_encrypt({}) == ""
    assert secrets_decrypt("") == {}
    assert secrets_rotate("") == ""


def test_every_key_decrypts_and_rotation_moves_to_the_first(keys: list[str], settings: Any) -> None:
    old = Fernet(keys[1].encode()).encrypt(b'{"password": "hunter2"}').decode()
    assert secrets_decrypt(old) == {"password": "hunter2"}
    rotated = secrets_rotate(old)
    assert rotated != old
    assert secrets_decrypt(rotated) == {"password": "hunter2"}
    settings.FIELD_ENCRYPTION_KEYS = [keys[0]]  # the old key retired
    assert secrets_decrypt(rotated) == {"password": "hunter2"}
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        secrets_decrypt(old)


def test_no_keys_refuses(settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is empty"):
        secrets_encrypt(SECRETS)
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is empty"):
        secrets_decrypt("gAAAA")
