"""Azure Blob as a source and as the snapshot store, against Azurite."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from typing import Any
from urllib.parse import urlsplit

import fsspec
import pytest

from audit.models import AuditEvent
from datasets import services
from datasets.models import IngestionStatus, Snapshot
from datasets.storage import ObjectStore, default_store
from tests.datasets.conftest import CSV


def azurite() -> tuple[str, str, str]:
    """Connection string, blob endpoint and account key of the test command's Azurite."""
    connection_string = os.environ.get("AZURITE_CONNECTION_STRING")
    if not connection_string:
        pytest.fail("AZURITE_CONNECTION_STRING is not set: run the tests with scripts/testenv.py")
    parts = dict(p.split("=", 1) for p in connection_string.strip(";").split(";"))
    return connection_string, os.environ["AZURITE_BLOB_URL"], parts["AccountKey"]


@pytest.fixture
def container() -> str:
    connection_string, _, _ = azurite()
    name = f"c{uuid.uuid4().hex[:12]}"
    fs = fsspec.filesystem("abfs", connection_string=connection_string, skip_instance_cache=True)
    fs.mkdir(name)
    return name


def test_azure_blob_source_pulls_a_csv(
    project: Any,
    alice: Any,
    container: str,
    settings: Any,
    eager: None,
    django_capture_on_commit_callbacks: Any,
    caplog: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    connection_string, endpoint, key = azurite()
    fs = fsspec.filesystem("abfs", connection_string=connection_string, skip_instance_cache=True)
    with fs.open(f"{container}/exports/customers.csv", "wb") as f:
        f.write(CSV)
    settings.DATA_EGRESS_LOOPBACK_PORTS = [urlsplit(endpoint).port]
    source = services.source_create(
        actor=alice,
        project=project,
        name="Lake",
        kind="azure_blob",
        config={
            "account": "devstoreaccount1",
            "container": container,
            "path": "exports/customers.csv",
            "endpoint": endpoint,
        },
        secrets={"account_key": key},
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.source_test_request(actor=alice, source=source)
    source.refresh_from_db()
    assert source.test_status == "ok", source.test_message

    with django_capture_on_commit_callbacks(execute=True):
        ingestion = services.source_pull_request(actor=alice, source=source)
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    snapshot = Snapshot.objects.get(source=source)
    assert snapshot.sha256 == hashlib.sha256(CSV).hexdigest()
    assert snapshot.rows == 200

    services.source_update(actor=alice, source=source, config={"path": "exports/missing.csv"})
    with django_capture_on_commit_callbacks(execute=True):
        missing = services.source_pull_request(actor=alice, source=source)
    missing.refresh_from_db()
    assert missing.status == IngestionStatus.FAILED
    assert "No blob" in missing.error
    payloads = json.dumps(list(AuditEvent.objects.values_list("payload", flat=True)))
    for text in (payloads, caplog.text, missing.error, source.test_message):
        assert key not in text


def test_snapshots_stored_in_azure_blob(
    project: Any,
    upload_source: Any,
    ingest: Any,
    container: str,
    settings: Any,
    api_for: Any,
    alice: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    connection_string, _, _ = azurite()
    settings.STAGEGATE_STORAGE_URL = f"az://{container}/stagegate"
    settings.STAGEGATE_STORAGE_OPTIONS = {"connection_string": connection_string}

    ingestion = ingest(upload_source)
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    sha = hashlib.sha256(CSV).hexdigest()
    fs = fsspec.filesystem("abfs", connection_string=connection_string, skip_instance_cache=True)
    assert fs.find(f"{container}/stagegate") == [
        f"{container}/stagegate/objects/sha256/{sha[:2]}/{sha[2:]}"
    ]
    assert default_store().uri(ingestion.snapshot.storage_key).startswith("a")

    again = ingest(upload_source)
    assert again.status == IngestionStatus.UNCHANGED
    assert len(fs.find(f"{container}/stagegate")) == 1

    response = api_for(alice).get(
        f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/download/"
    )
    assert b"".join(response.streaming_content) == CSV

    url = f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/splits/"
    with django_capture_on_commit_callbacks(execute=True):
        split_id = (
            api_for(alice).post(url, {"test_fraction": 0.3, "seed": 5}, format="json").json()["id"]
        )
    split = (
        api_for(alice)
        .get(f"/api/projects/churn/sources/{upload_source.pk}/splits/{split_id}/")
        .json()
    )
    assert split["status"] == "ready"
    assert len(fs.find(f"{container}/stagegate")) == 3


def test_azure_store_refuses_bad_keys_and_cleans_up_a_too_large_stage(container: str) -> None:
    from datasets.storage import TooLarge

    connection_string, _, _ = azurite()
    store = ObjectStore(f"az://{container}/s", {"connection_string": connection_string})
    with pytest.raises(ValueError, match="not a storage key"):
        store.open("../../etc/passwd")
    with pytest.raises(TooLarge):
        store.stage([b"x" * 10, b"y" * 10], max_bytes=15)
    fs = fsspec.filesystem("abfs", connection_string=connection_string, skip_instance_cache=True)
    assert fs.find(f"{container}/s") == []
    staged, new = store.put_bytes(b"hello")
    assert new and store.exists(f"objects/sha256/{staged.sha256[:2]}/{staged.sha256[2:]}")
    assert store.put_bytes(b"hello")[1] is False
