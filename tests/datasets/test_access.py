"""Every data endpoint as owner, member, read-only member, outsider and admin."""

from __future__ import annotations

from typing import Any

import pytest

from datasets import services
from datasets.models import Split

READERS = [("alice", 200), ("bob", 200), ("carol", 200), ("charlie", 404), ("admin_user", 200)]
WRITERS = [("alice", True), ("bob", True), ("carol", 403), ("charlie", 404), ("admin_user", 403)]


@pytest.fixture
def split(
    upload_source: Any, ingest: Any, alice: Any, django_capture_on_commit_callbacks: Any
) -> Split:
    snapshot = ingest(upload_source).snapshot
    with django_capture_on_commit_callbacks(execute=True):
        split = services.split_create(actor=alice, snapshot=snapshot, test_fraction=0.2, seed=1)
    split.refresh_from_db()
    return split


@pytest.mark.parametrize(("who", "status"), READERS)
def test_reading(
    split: Split, upload_source: Any, api_for: Any, request: Any, who: str, status: int
) -> None:
    api = api_for(request.getfixturevalue(who))
    base = f"/api/projects/churn/sources/{upload_source.pk}/"
    for url in (
        "snapshots/1/",
        "snapshots/1/profile/",
        "snapshots/1/download/",
        f"splits/{split.pk}/",
        "ingestions/",
    ):
        assert api.get(base + url).status_code == status, url


@pytest.mark.parametrize(("who", "allowed"), WRITERS)
def test_writing(
    split: Split,
    upload_source: Any,
    api_for: Any,
    request: Any,
    who: str,
    allowed: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    api = api_for(request.getfixturevalue(who))
    base = f"/api/projects/churn/sources/{upload_source.pk}/"
    expect = (lambda ok: ok) if allowed is True else (lambda ok: allowed)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(
            base + "snapshots/1/splits/", {"test_fraction": 0.3, "seed": 2}, format="json"
        ).status_code == expect(202)
    # Upload sources have nothing to test or pull: a 400 for those allowed to try.
    assert api.post(base + "test/").status_code == expect(400)
    assert api.post(base + "pull/").status_code == expect(400)
    assert api.delete(base + "snapshots/1/").status_code == expect(409)
    assert api.delete(base).status_code == expect(409)


def test_lineage_shows_source_versions_and_splits(
    split: Split, upload_source: Any, client_for: Any, alice: Any
) -> None:
    page = client_for(alice).get("/projects/churn/data/lineage/").content.decode()
    assert "Customers" in page
    assert f"/projects/churn/data/{upload_source.pk}/v1/" in page
    assert split.train_sha256[:10] in page and split.test_sha256[:10] in page
    assert "split 1 (ready)" in page
