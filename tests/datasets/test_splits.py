"""Deterministic, versioned train/test splits of valid snapshots."""

from __future__ import annotations

import io
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from charter.models import CharterVersion
from datasets import services
from datasets.models import Split, SplitStatus
from datasets.storage import default_store, object_key


def read_split(sha: str) -> Any:
    with default_store().open(object_key(sha)) as f:
        return pq.read_table(io.BytesIO(f.read())).to_pandas()


def make_split(api: Any, source: Any, capture: Any, version: int = 1, **params: Any) -> Any:
    """Ask for a split, let the (eager) task run after commit, return its state."""
    url = f"/api/projects/churn/sources/{source.pk}/snapshots/{version}/splits/"
    with capture(execute=True):
        response = api.post(url, params, format="json")
    assert response.status_code == 202, response.content
    detail = api.get(f"/api/projects/churn/sources/{source.pk}/splits/{response.json()['id']}/")
    return detail.json()


@pytest.fixture
def snapshot(upload_source: Any, ingest: Any) -> Any:
    return ingest(upload_source).snapshot


def test_the_same_split_twice_gives_the_same_hashes(
    snapshot: Any,
    upload_source: Any,
    api_for: Any,
    alice: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    api = api_for(alice)
    capture = django_capture_on_commit_callbacks
    first = make_split(api, upload_source, capture, test_fraction=0.25, seed=7)
    second = make_split(api, upload_source, capture, test_fraction=0.25, seed=7)
    other_seed = make_split(api, upload_source, capture, test_fraction=0.25, seed=8)

    assert first["status"] == second["status"] == "ready"
    assert (first["number"], second["number"], other_seed["number"]) == (1, 2, 3)
    assert first["train_sha256"] == second["train_sha256"]
    assert first["test_sha256"] == second["test_sha256"]
    assert other_seed["test_sha256"] != first["test_sha256"]
    assert (first["train_rows"], first["test_rows"]) == (150, 50)
    train, test = read_split(first["train_sha256"]), read_split(first["test_sha256"])
    assert len(train) == 150 and len(test) == 50
    assert set(train.customer_id).isdisjoint(test.customer_id)
    assert set(train.customer_id) | set(test.customer_id) == set(range(1, 201))
    assert AuditEvent.objects.filter(action="split.ready").count() == 3


def test_stratify_defaults_to_the_charter_target_for_classification(
    project: Any, snapshot: Any, alice: Any, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    CharterVersion.objects.create(
        project=project,
        number=2,  # v1 is the fixture's signed-off charter
        status="approved",
        question_type="classification",
        target_variable="churned",
    )
    with django_capture_on_commit_callbacks(execute=True):
        split = services.split_create(actor=alice, snapshot=snapshot, test_fraction=0.2, seed=1)
    split.refresh_from_db()
    assert split.stratify_column == "churned"
    test = read_split(split.test_sha256)
    # 50 of 200 rows churned: the test set keeps the same share.
    assert (test.churned == "yes").sum() == 10


def test_group_column_keeps_each_key_on_one_side(
    upload_source: Any, ingest: Any, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = b"household,x\n" + b"".join(f"h{i % 17},{i}\n".encode() for i in range(300))
    snapshot = ingest(upload_source, data=data).snapshot
    with django_capture_on_commit_callbacks(execute=True):
        split = services.split_create(
            actor=alice, snapshot=snapshot, test_fraction=0.3, seed=3, group_column="household"
        )
    split.refresh_from_db()
    assert split.status == SplitStatus.READY
    train, test = read_split(split.train_sha256), read_split(split.test_sha256)
    assert set(train.household).isdisjoint(test.household)
    assert len(train) + len(test) == 300


def test_invalid_snapshot_cannot_be_split(
    upload_source: Any, ingest: Any, alice: Any, api_for: Any
) -> None:
    services.rule_create(
        actor=alice, source=upload_source, kind="range", column="age", params={"min": 30}
    )
    snapshot = ingest(upload_source).snapshot
    assert snapshot.validation_status == "invalid"
    response = api_for(alice).post(
        f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/splits/",
        {"test_fraction": 0.2, "seed": 1},
        format="json",
    )
    assert response.status_code == 400
    assert "failed validation" in str(response.json())
    assert not Split.objects.exists()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"test_fraction": 0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"stratify_column": "nope"}, "stratify_column"),
        ({"group_column": "nope"}, "group_column"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_split_parameters_are_a_400(
    snapshot: Any, upload_source: Any, api_for: Any, alice: Any, params: dict[str, Any], field: str
) -> None:
    response = api_for(alice).post(
        f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/splits/", params, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not Split.objects.exists()


def test_a_class_too_small_to_stratify_fails_the_split_with_the_reason(
    upload_source: Any, ingest: Any, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = b"label,x\n" + b"a,1\n" * 20 + b"b,2\n"
    snapshot = ingest(upload_source, data=data).snapshot
    with django_capture_on_commit_callbacks(execute=True):
        split = services.split_create(
            actor=alice, snapshot=snapshot, test_fraction=0.2, seed=0, stratify_column="label"
        )
    split.refresh_from_db()
    assert split.status == SplitStatus.FAILED
    assert "least populated class" in split.error


def test_a_version_used_by_a_split_cannot_be_deleted(
    snapshot: Any,
    upload_source: Any,
    api_for: Any,
    alice: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    api = api_for(alice)
    make_split(api, upload_source, django_capture_on_commit_callbacks, test_fraction=0.2, seed=1)
    url = f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/"
    response = api.delete(url)
    assert response.status_code == 409
    assert "used by split 1" in response.json()["detail"]
    assert api.get(url).status_code == 200
    assert api.delete(f"/api/projects/churn/sources/{upload_source.pk}/").status_code == 409
    with pytest.raises(ValidationError):
        services.split_create(actor=alice, snapshot=snapshot, test_fraction=2, seed=1)


def test_an_unused_version_is_deleted_with_its_object(
    snapshot: Any,
    upload_source: Any,
    api_for: Any,
    alice: Any,
    storage: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from tests.datasets.conftest import stored_files

    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(alice).delete(
            f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/"
        )
    assert response.status_code == 204
    assert stored_files(storage) == []
    assert AuditEvent.objects.filter(action="snapshot.deleted").count() == 1
