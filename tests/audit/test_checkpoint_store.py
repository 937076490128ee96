"""The checkpoint stores: a local file, and an Azure append blob (against the
test command's Azurite)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from audit.checkpoints import AzureAppendBlobStore, FileStore, checkpoint_store
from audit.services import audit_chain_report, audit_checkpoint_write, audit_record


def _azurite() -> str:
    connection_string = os.environ.get("AZURITE_CONNECTION_STRING")
    if not connection_string:
        pytest.fail("AZURITE_CONNECTION_STRING is not set: run the tests with scripts/testenv.py")
    return connection_string


def test_file_store_appends(tmp_path: Path) -> None:
    store = checkpoint_store(f"file://{tmp_path}/cp/checkpoints.jsonl")
    assert isinstance(store, FileStore)
    assert store.lines() == []
    store.append("one")
    store.append("two")
    assert store.lines() == ["one", "two"]
    assert (tmp_path / "cp" / "checkpoints.jsonl").stat().st_mode & 0o777 == 0o600


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="Unsupported"):
        checkpoint_store("s3://bucket/key")
    with pytest.raises(ValueError, match="az://"):
        checkpoint_store("az://only-a-container")


def test_azure_append_blob_store_keeps_what_was_written(db: Any, alice: Any, settings: Any) -> None:
    connection_string = _azurite()
    container = f"audit{uuid.uuid4().hex[:10]}"
    BlobServiceClient.from_connection_string(connection_string).create_container(container)
    settings.AUDIT_CHECKPOINT_URL = f"az://{container}/stagegate/checkpoints.jsonl"
    settings.AUDIT_CHECKPOINT_CONNECTION_STRING = connection_string
    store = checkpoint_store()
    assert isinstance(store, AzureAppendBlobStore)
    assert store.lines() == []

    audit_record(action="test.one", actor=alice)
    first = audit_checkpoint_write()
    audit_record(action="test.two", actor=alice)
    second = audit_checkpoint_write()
    assert first is not None and second is not None
    # A second store object (another process) appends to the same blob, never
    # replaces it.
    assert len(checkpoint_store().lines()) == 2
    properties = store.client.get_blob_properties()
    assert properties.blob_type == "AppendBlob"
    report = audit_chain_report()
    assert report.intact and report.checkpoints == 2
