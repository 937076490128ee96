"""A group column and a stratify column together: a stratified group split."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError

from datasets import services
from datasets.models import Split, SplitStatus
from datasets.splitting import group_split_folds, split_indices
from datasets.storage import default_store, object_key


def _table(households: int = 40, per: int = 5) -> pa.Table:
    # Households 0, 4, 8 … churn; one label per household, 20 % positive.
    household = [h for h in range(households) for _ in range(per)]
    churned = ["yes" if h % 5 == 0 else "no" for h in household]
    return pa.table({"household": household, "churned": churned, "x": range(len(household))})


def test_groups_stay_together_and_classes_stay_balanced() -> None:
    table = _table()
    train, test = split_indices(
        table, test_fraction=0.2, seed=7, stratify_column="churned", group_column="household"
    )
    household = table.column("household").to_numpy()
    churned = table.column("churned").to_numpy(zero_copy_only=False)
    assert set(household[train]).isdisjoint(household[test])
    assert len(train) + len(test) == table.num_rows
    assert len(test) == table.num_rows // 5
    # Stratified: the test side has the whole table's share of positives.
    assert (churned[test] == "yes").mean() == pytest.approx(0.2, abs=0.06)
    again = split_indices(
        table, test_fraction=0.2, seed=7, stratify_column="churned", group_column="household"
    )
    assert (again[0] == train).all() and (again[1] == test).all()


def test_a_large_test_fraction_is_all_but_one_fold() -> None:
    assert group_split_folds(0.2) == 5
    assert group_split_folds(0.75) == 4
    assert group_split_folds(0.5) == 2
    table = _table()
    train, test = split_indices(
        table, test_fraction=0.75, seed=1, stratify_column="churned", group_column="household"
    )
    assert len(test) == 3 * table.num_rows // 4


def test_too_few_groups_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="at least 5 groups; there are 3"):
        split_indices(
            _table(households=3),
            test_fraction=0.2,
            seed=1,
            stratify_column="churned",
            group_column="household",
        )


def test_the_same_column_for_both_is_refused(upload_source: Any, ingest: Any, alice: Any) -> None:
    snapshot = ingest(upload_source).snapshot
    with pytest.raises(ValidationError) as caught:
        services.split_create(
            actor=alice,
            snapshot=snapshot,
            test_fraction=0.2,
            seed=1,
            stratify_column="plan",
            group_column="plan",
        )
    assert "another column" in caught.value.message_dict["stratify_column"][0]
    assert not Split.objects.exists()


def test_the_service_keeps_both_columns(
    upload_source: Any, ingest: Any, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    buffer = io.StringIO()
    _table().to_pandas().to_csv(buffer, index=False)
    snapshot = ingest(upload_source, data=buffer.getvalue().encode()).snapshot
    with django_capture_on_commit_callbacks(execute=True):
        split = services.split_create(
            actor=alice,
            snapshot=snapshot,
            test_fraction=0.2,
            seed=3,
            stratify_column="churned",
            group_column="household",
        )
    split.refresh_from_db()
    assert (split.stratify_column, split.group_column) == ("churned", "household")
    assert split.status == SplitStatus.READY, split.error
    store = default_store()
    with store.open(object_key(split.train_sha256)) as f:
        train = pq.read_table(io.BytesIO(f.read())).to_pandas()
    with store.open(object_key(split.test_sha256)) as f:
        test = pq.read_table(io.BytesIO(f.read())).to_pandas()
    assert set(train.household).isdisjoint(test.household)
    assert (test.churned == "yes").mean() == pytest.approx(0.2, abs=0.06)
