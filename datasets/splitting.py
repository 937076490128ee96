"""Deterministic train/test splits: same table and parameters, same bytes."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split


def split_indices(
    table: pa.Table,
    *,
    test_fraction: float,
    seed: int,
    stratify_column: str = "",
    group_column: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of train and test, each in the table's order."""
    rows = table.num_rows
    if rows < 2:
        raise ValidationError("A split needs at least two rows.")
    indices = np.arange(rows)
    random_state = seed % (2**32)
    if group_column and stratify_column == group_column:
        raise ValidationError(
            {"stratify_column": "Stratify by another column than the one that keeps groups."}
        )
    stratify = _labels(table, stratify_column) if stratify_column else None
    if group_column:
        groups = _labels(table, group_column)
        if len(set(groups)) < 2:
            raise ValidationError({"group_column": "A group split needs at least two groups."})
        if stratify is not None:
            train, test = _stratified_group_split(
                indices, stratify, groups, test_fraction, random_state
            )
        else:
            splitter = GroupShuffleSplit(
                n_splits=1, test_size=test_fraction, random_state=random_state
            )
            train, test = next(splitter.split(indices, groups=groups))
    else:
        try:
            train, test = train_test_split(
                indices, test_size=test_fraction, random_state=random_state, stratify=stratify
            )
        except ValueError as exc:
            raise ValidationError({"stratify_column": str(exc)}) from exc
    return np.sort(train), np.sort(test)


def _labels(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_pandas().astype("string").fillna("<missing>").to_numpy()


def group_split_folds(test_fraction: float) -> int:
    """The folds of a stratified group split: its test side is one fold (or
    all but one), the nearest to ``test_fraction`` that folds can give."""
    share = min(test_fraction, 1 - test_fraction)
    return max(2, round(1 / share))


def _stratified_group_split(
    indices: np.ndarray,
    stratify: np.ndarray,
    groups: np.ndarray,
    test_fraction: float,
    random_state: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep each group on one side and each side's class mix near the whole's."""
    folds = group_split_folds(test_fraction)
    if len(set(groups)) < folds:
        raise ValidationError(
            {
                "group_column": f"A stratified group split with this test fraction needs "
                f"at least {folds} groups; there are {len(set(groups))}."
            }
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=random_state)
    rest, fold = next(splitter.split(indices, stratify, groups=groups))
    return (rest, fold) if test_fraction <= 0.5 else (fold, rest)


def table_bytes(table: pa.Table) -> bytes:
    """Parquet bytes that depend only on the table's content."""
    buffer = io.BytesIO()
    pq.write_table(
        table.replace_schema_metadata(None),
        buffer,
        compression="zstd",
        write_statistics=True,
        use_dictionary=True,
    )
    return buffer.getvalue()
