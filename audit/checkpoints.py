"""Signed checkpoints of the chain head, kept outside the database.

A checkpoint is one JSON line: the head's ``sequence`` and ``hash``, when it
was signed, the signing key's id, and an Ed25519 signature over the canonical
JSON of those four. Lines are only ever appended to the store named by
``AUDIT_CHECKPOINT_URL``:

- ``file:///path/to/audit-checkpoints.jsonl``: a local file opened in append
  mode (the embedded default, under ``$STAGEGATE_VAR_DIR``);
- ``az://<container>/<blob>``: an Azure Storage append blob, reached with
  ``AUDIT_CHECKPOINT_CONNECTION_STRING``; with a time-based immutability (or
  legal hold) policy on the container, blocks can be appended but nothing
  written can be changed or deleted.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from cryptography.exceptions import InvalidSignature
from django.conf import settings

from audit.keys import public_key_id, signing_key, trusted_public_keys
from audit.models import canonical_json


@dataclass(frozen=True)
class Checkpoint:
    sequence: int
    hash: str
    signed_at: str
    key_id: str
    signature: str = ""

    def message(self) -> bytes:
        return canonical_json(
            {
                "sequence": self.sequence,
                "hash": self.hash,
                "signed_at": self.signed_at,
                "key_id": self.key_id,
            }
        ).encode()

    def line(self) -> str:
        return canonical_json(asdict(self))


def checkpoint_sign(*, sequence: int, event_hash: str) -> Checkpoint:
    key = signing_key()
    unsigned = Checkpoint(
        sequence=sequence,
        hash=event_hash,
        signed_at=datetime.now(UTC).isoformat(),
        key_id=public_key_id(key.public_key()),
    )
    signature = base64.b64encode(key.sign(unsigned.message())).decode()
    return Checkpoint(**{**asdict(unsigned), "signature": signature})


def checkpoint_parse(line: str) -> Checkpoint:
    """A stored line as a checkpoint whose signature holds; ValueError otherwise."""
    try:
        data = json.loads(line)
        checkpoint = Checkpoint(
            sequence=int(data["sequence"]),
            hash=str(data["hash"]),
            signed_at=str(data["signed_at"]),
            key_id=str(data["key_id"]),
            signature=str(data["signature"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("not a checkpoint") from exc
    key = trusted_public_keys().get(checkpoint.key_id)
    if key is None:
        raise ValueError(f"signed with an unknown key {checkpoint.key_id!r}")
    try:
        key.verify(base64.b64decode(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError) as exc:
        raise ValueError("signature does not verify") from exc
    return checkpoint


class CheckpointStore(Protocol):
    """Somewhere lines can be appended and read back, but not rewritten."""

    def append(self, line: str) -> None: ...

    def lines(self) -> list[str]: ...


class FileStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return [x for x in self.path.read_text().splitlines() if x.strip()]


class AzureAppendBlobStore:
    def __init__(self, *, connection_string: str, container: str, blob: str) -> None:
        from azure.storage.blob import BlobClient

        self.client = BlobClient.from_connection_string(
            connection_string, container_name=container, blob_name=blob
        )

    def append(self, line: str) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError

        # Only when missing: creating an append blob over one replaces it.
        with contextlib.suppress(ResourceExistsError):
            self.client.create_append_blob(match_condition=MatchConditions.IfMissing)
        self.client.append_block((line + "\n").encode())

    def lines(self) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            data = self.client.download_blob().readall()
        except ResourceNotFoundError:
            return []
        return [x for x in data.decode().splitlines() if x.strip()]


def checkpoint_store(url: str | None = None) -> CheckpointStore:
    url = url or settings.AUDIT_CHECKPOINT_URL
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileStore(Path(parsed.path))
    if parsed.scheme == "az":
        blob = parsed.path.lstrip("/")
        if not parsed.netloc or not blob:
            raise ValueError("AUDIT_CHECKPOINT_URL must look like az://<container>/<blob>")
        return AzureAppendBlobStore(
            connection_string=settings.AUDIT_CHECKPOINT_CONNECTION_STRING,
            container=parsed.netloc,
            blob=blob,
        )
    raise ValueError(f"Unsupported AUDIT_CHECKPOINT_URL scheme {parsed.scheme!r}")
