"""Deterministic train/test splits: same table and parameters, same bytes."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError
from sklearn.model_selection import GroupShuffleSplit, train_test_split


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
    if group_column:
        groups = table.column(group_column).to_pandas().astype("string").fillna("<missing>")
        if groups.nunique() < 2:
            raise ValidationError({"group_column": "A group split needs at least two groups."})
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=random_state)
        train, test = next(splitter.split(indices, groups=groups.to_numpy()))
    else:
        stratify = None
        if stratify_column:
            stratify = (
                table.column(stratify_column).to_pandas().astype("string").fillna("<missing>")
            ).to_numpy()
        try:
            train, test = train_test_split(
                indices, test_size=test_fraction, random_state=random_state, stratify=stratify
            )
        except ValueError as exc:
            raise ValidationError({"stratify_column": str(exc)}) from exc
    return np.sort(train), np.sort(test)


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
