"""Fixtures for the data stage: a private object store per test, sources,
and Celery in eager mode (the real task code, run in the test's process)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets import services
from datasets.models import DataSource

CSV = b"customer_id,age,plan,monthly_fee,churned\n" + b"".join(
    f"{i},{20 + i % 50},{['basic', 'plus', 'pro'][i % 3]},{10 + (i * 7) % 40}.5,"
    f"{'yes' if i % 4 == 0 else 'no'}\n".encode()
    for i in range(1, 201)
)


@pytest.fixture(autouse=True)
def storage(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    settings.STAGEGATE_STORAGE_URL = f"file://{root}"
    settings.STAGEGATE_STORAGE_OPTIONS = {}
    return root


@pytest.fixture
def eager() -> Iterator[None]:
    """Run queued tasks at once, in this process."""
    from portal.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False
        app.conf.task_eager_propagates = False


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload(data: bytes = CSV, name: str = "customers.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/csv")


@pytest.fixture
def upload_source(project: Any, alice: Any) -> DataSource:
    return services.source_create(
        actor=alice, project=project, name="Customers", kind="upload", location="on_prem"
    )


@pytest.fixture
def ingest(eager: None, django_capture_on_commit_callbacks: Any, alice: Any) -> Any:
    """Upload bytes to a source and run the queued work; return the ingestion."""

    def run(source: DataSource, data: bytes = CSV, name: str = "customers.csv") -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            ingestion = services.snapshot_upload(
                actor=alice, source=source, upload=upload(data, name)
            )
        ingestion.refresh_from_db()
        return ingestion

    return run


def csv_file(data: bytes = CSV, name: str = "customers.csv") -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f
