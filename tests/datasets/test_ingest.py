"""Uploads become content-addressed, immutable, numbered snapshots."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from datasets.models import Ingestion, IngestionStatus, Snapshot
from tests.datasets.conftest import CSV, csv_file, stored_files


def test_upload_becomes_version_1_stored_under_its_hash(
    upload_source: Any, ingest: Any, storage: Path
) -> None:
    ingestion = ingest(upload_source)

    assert ingestion.status == IngestionStatus.SUCCEEDED
    snapshot = Snapshot.objects.get(source=upload_source)
    sha = hashlib.sha256(CSV).hexdigest()
    assert (snapshot.version, snapshot.sha256, snapshot.size) == (1, sha, len(CSV))
    assert snapshot.rows == 200
    assert [c["name"] for c in snapshot.columns] == [
        "customer_id",
        "age",
        "plan",
        "monthly_fee",
        "churned",
    ]
    assert [c["type"] for c in snapshot.columns] == [
        "integer",
        "integer",
        "string",
        "float",
        "string",
    ]
    assert snapshot.storage_key == f"objects/sha256/{sha[:2]}/{sha[2:]}"
    assert stored_files(storage) == [storage / snapshot.storage_key]
    assert (storage / snapshot.storage_key).read_bytes() == CSV
    assert ingestion.rows_processed == 200
    assert AuditEvent.objects.filter(action="snapshot.created").count() == 1


def test_identical_content_is_stored_once_and_marked_unchanged(
    upload_source: Any, ingest: Any, storage: Path
) -> None:
    ingest(upload_source)
    before = [(p, p.stat().st_mtime_ns) for p in stored_files(storage)]
    staging_mtime = (storage / "staging").stat().st_mtime_ns

    again = ingest(upload_source, name="same-again.csv")

    # Not even a staging copy was written (and removed) for the re-upload.
    assert (storage / "staging").stat().st_mtime_ns == staging_mtime

    assert again.status == IngestionStatus.UNCHANGED
    assert again.snapshot.version == 1
    assert Snapshot.objects.filter(source=upload_source).count() == 1
    assert [(p, p.stat().st_mtime_ns) for p in stored_files(storage)] == before


def test_same_content_in_another_source_is_stored_once(
    project: Any, upload_source: Any, ingest: Any, storage: Path, alice: Any
) -> None:
    from datasets import services

    other = services.source_create(actor=alice, project=project, name="Copy", kind="upload")
    ingest(upload_source)
    copy = ingest(other)
    assert copy.status == IngestionStatus.SUCCEEDED
    assert copy.snapshot.version == 1
    assert len(stored_files(storage)) == 1


def test_new_content_makes_version_2_and_old_versions_stay_readable(
    upload_source: Any, ingest: Any, api_for: Any, alice: Any
) -> None:
    ingest(upload_source)
    changed = CSV + b"999,30,pro,12.5,no\n"
    ingest(upload_source, data=changed)

    versions = list(Snapshot.objects.filter(source=upload_source).order_by("version"))
    assert [(s.version, s.rows) for s in versions] == [(1, 200), (2, 201)]
    url = f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/download/"
    response = api_for(alice).get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == CSV
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "empty.csv", "empty"),
        ("name,city\nJosé,Köln\n".encode("utf-16"), "wide.csv", "NUL bytes"),
        (b"a,a\n1,2\n", "twice.csv", "repeated column names"),
        (b"a,b\n1,2,3\n", "columns.csv", "Malformed CSV"),
        (b"a,b\n", "header.csv", "no rows"),
        (b"PAR1 not really", "fake.parquet", "Parquet"),
        (b"a,b\n1,2\n", "data.xlsx", ".csv or .parquet"),
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing_behind(
    upload_source: Any, api_for: Any, alice: Any, storage: Path, data: bytes, name: str, reason: str
) -> None:
    response = api_for(alice).post(
        f"/api/projects/churn/sources/{upload_source.pk}/snapshots/",
        {"file": csv_file(data, name)},
        format="multipart",
    )

    assert response.status_code == 400, response.content
    assert reason in str(response.json()["file"])
    assert not Snapshot.objects.exists()
    assert not Ingestion.objects.exists()
    assert stored_files(storage) == []


def test_upload_over_the_size_limit_is_refused_with_413(
    upload_source: Any, api_for: Any, alice: Any, storage: Path, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_BYTES = 1000
    response = api_for(alice).post(
        f"/api/projects/churn/sources/{upload_source.pk}/snapshots/",
        {"file": csv_file(CSV)},
        format="multipart",
    )
    assert response.status_code == 413
    assert "1,000 bytes" in response.json()["detail"]
    assert not Ingestion.objects.exists()
    assert stored_files(storage) == []


def test_upload_without_a_file_is_a_400(upload_source: Any, api_for: Any, alice: Any) -> None:
    response = api_for(alice).post(
        f"/api/projects/churn/sources/{upload_source.pk}/snapshots/", {}, format="multipart"
    )
    assert response.status_code == 400
    assert "file" in response.json()


def test_api_upload_queues_parsing_and_answers_202(
    upload_source: Any,
    api_for: Any,
    alice: Any,
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    url = f"/api/projects/churn/sources/{upload_source.pk}/snapshots/"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(alice).post(url, {"file": csv_file()}, format="multipart")
    assert response.status_code == 202, response.content
    ingestion_id = response.json()["id"]
    detail = api_for(alice).get(
        f"/api/projects/churn/sources/{upload_source.pk}/ingestions/{ingestion_id}/"
    )
    assert detail.json()["status"] == "succeeded"
    assert detail.json()["version"] == 1

    again = api_for(alice).post(url, {"file": csv_file()}, format="multipart")
    assert again.status_code == 200
    assert again.json()["status"] == "unchanged"
    listing = api_for(alice).get(url).json()
    assert [s["version"] for s in listing["results"]] == [1]
    assert listing["results"][0]["sha256"] == hashlib.sha256(CSV).hexdigest()


def test_parquet_upload(upload_source: Any, ingest: Any) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2, 3], "y": ["a", "b", None]}), buffer)
    ingestion = ingest(upload_source, data=buffer.getvalue(), name="small.parquet")
    assert ingestion.status == IngestionStatus.SUCCEEDED
    snapshot = ingestion.snapshot
    assert (snapshot.data_format, snapshot.rows) == ("parquet", 3)
    assert [c["type"] for c in snapshot.columns] == ["integer", "string"]


def test_staging_hashes_files_and_chunk_streams_alike_and_cleans_up_on_error(
    storage: Path,
) -> None:
    import io

    from datasets.storage import CHUNK_BYTES, ObjectStore, TooLarge

    store = ObjectStore()
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 3 + 7)  # several ring buffers' worth
    from_file = store.stage(io.BytesIO(data), max_bytes=len(data))
    from_chunks = store.stage([data[:1000], data[1000:]], max_bytes=len(data))
    assert from_file.sha256 == from_chunks.sha256 == hashlib.sha256(data).hexdigest()
    assert (storage / from_file.key).read_bytes() == data
    assert store.commit(from_file)[1] is True
    assert store.commit(from_chunks)[1] is False
    assert stored_files(storage) == [
        storage / f"objects/sha256/{from_file.sha256[:2]}/{from_file.sha256[2:]}"
    ]

    with pytest.raises(TooLarge):
        store.stage(io.BytesIO(data), max_bytes=len(data) - 1)

    class Broken(io.RawIOBase):
        def readinto(self, buffer: Any) -> int:
            raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        store.stage(Broken())
    assert len(stored_files(storage)) == 1


def test_seed_demo_adds_the_demo_upload_source_once(
    db: Any, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    import io as _io

    from django.core.management import call_command

    from datasets.demo import DEMO_SOURCE
    from datasets.models import DataSource

    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=_io.StringIO())
    call_command("seed_demo", stdout=_io.StringIO())
    source = DataSource.objects.get(name=DEMO_SOURCE)
    snapshot = Snapshot.objects.get(source=source)
    assert (snapshot.version, snapshot.rows) == (1, 178)
    assert "target" in [c["name"] for c in snapshot.columns]
