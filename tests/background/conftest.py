"""The data stage's fixtures: its models are the leased work tested here."""

from __future__ import annotations

from tests.datasets.conftest import eager, ingest, storage, upload_source

__all__ = ["eager", "ingest", "storage", "upload_source"]
