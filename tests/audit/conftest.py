from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def checkpoint_file(tmp_path: Path, settings: Any) -> Path:
    """Each test gets its own checkpoint store: the database is rolled back
    after a test, a file outside it is not."""
    path = tmp_path / "audit-checkpoints.jsonl"
    settings.AUDIT_CHECKPOINT_URL = f"file://{path}"
    return path
