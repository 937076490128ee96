"""The audit trail's two keys, which the database never holds.

- The MAC keys (HMAC-SHA256) authenticate each event: ``AUDIT_MAC_KEY`` (or
  ``_FILE``), comma-separated, newest first; the first makes new MACs, every
  one is accepted when verifying. Without it: generated once into
  ``$STAGEGATE_VAR_DIR/audit_mac_key``.
- The Ed25519 key signs checkpoints of the chain head:
  ``AUDIT_SIGNING_KEY_FILE`` (PEM, PKCS#8, unencrypted), generated there once
  when the file does not exist. Public keys of earlier signing keys stay
  trusted through ``AUDIT_PREVIOUS_PUBLIC_KEYS``.

Files are created with mode 600, with O_EXCL so that web, worker and beat
starting together end up with one key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings


def _create_once(path: Path, content: bytes) -> bytes:
    """Write ``content`` to ``path`` unless it exists; return what the file holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # another process made it first
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
    for _ in range(50):  # the other process may still be writing it
        data = path.read_bytes().strip()
        if data:
            return data
        time.sleep(0.1)
    raise RuntimeError(f"{path} is empty")


@lru_cache(maxsize=4)
def _mac_keys(configured: tuple[str, ...], var_dir: str) -> tuple[bytes, ...]:
    if configured:
        return tuple(k.encode() for k in configured)
    generated = _create_once(Path(var_dir) / "audit_mac_key", secrets.token_hex(32).encode())
    return (generated,)


def mac_keys() -> tuple[bytes, ...]:
    """Every MAC key, the one that makes new MACs first."""
    return _mac_keys(tuple(settings.AUDIT_MAC_KEYS), str(settings.VAR_DIR))


def event_mac(sequence: int, event_hash: str, key: bytes | None = None) -> str:
    """HMAC-SHA256 of an event's sequence and hash (the hash covers its content
    and, through ``previous_hash``, every event before it)."""
    message = f"{sequence}:{event_hash}".encode()
    return hmac.new(key or mac_keys()[0], message, hashlib.sha256).hexdigest()


def mac_valid(sequence: int, event_hash: str, mac: str) -> bool:
    return any(hmac.compare_digest(event_mac(sequence, event_hash, k), mac) for k in mac_keys())


@lru_cache(maxsize=4)
def _signing_key(path: str) -> Ed25519PrivateKey:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = serialization.load_pem_private_key(_create_once(Path(path), pem), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path} does not hold an Ed25519 private key")
    return key


def signing_key() -> Ed25519PrivateKey:
    return _signing_key(str(settings.AUDIT_SIGNING_KEY_FILE))


def public_key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key: the start of the sha256 of its raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_b64(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def trusted_public_keys() -> dict[str, Ed25519PublicKey]:
    """The public keys checkpoints may be signed with, by key id: the current
    signing key's and those of ``AUDIT_PREVIOUS_PUBLIC_KEYS`` (base64, raw)."""
    keys = [signing_key().public_key()]
    keys += [
        Ed25519PublicKey.from_public_bytes(base64.b64decode(k))
        for k in settings.AUDIT_PREVIOUS_PUBLIC_KEYS
    ]
    return {public_key_id(k): k for k in keys}
