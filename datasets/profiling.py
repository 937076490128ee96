"""Exploratory profile of a table, vectorised (no per-row Python)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from datasets.readers import type_name

HISTOGRAM_BINS = 30
TOP_VALUES = 10
HEATMAP_MAX_COLUMNS = 30
# How a blank (empty or whitespace-only) text value is shown among top values.
BLANK_LABEL = "(blank)"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _numeric_stats(values: np.ndarray) -> dict[str, Any]:
    if values.size == 0:
        return {}
    q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    iqr = q75 - q25
    low, high = q25 - 1.5 * iqr, q75 + 1.5 * iqr
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {
        "min": _num(values.min()),
        "max": _num(values.max()),
        "mean": _num(values.mean()),
        "std": _num(values.std(ddof=1)) if values.size > 1 else None,
        "q25": _num(q25),
        "q50": _num(q50),
        "q75": _num(q75),
        "outliers": int(np.count_nonzero((values < low) | (values > high))),
        "histogram": {"counts": counts.tolist(), "edges": [float(e) for e in edges]},
    }


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return None


def _top_values(column: pa.ChunkedArray) -> list[list[Any]]:
    """The most frequent values, blanks counted together under BLANK_LABEL."""
    text = _as_text(column)
    if text is None:
        return []
    labels = text.to_pandas().dropna()
    labels = labels.where(~labels.str.fullmatch(r"\s*"), BLANK_LABEL)
    counts = labels.value_counts().head(TOP_VALUES)
    return [[str(k), int(v)] for k, v in counts.items()]


def _datetime_stats(column: pa.ChunkedArray) -> dict[str, Any]:
    """Earliest, latest and a histogram over time (edges as ISO 8601 text)."""
    if pa.types.is_date(column.type):
        column = pc.cast(column, pa.timestamp("s"))
    values = pc.drop_null(column).to_numpy().astype("datetime64[ns]")
    if values.size == 0:
        return {}
    ns = values.astype("int64")
    counts, edges = np.histogram(ns, bins=HISTOGRAM_BINS)
    as_text = [str(np.datetime64(int(e), "ns").astype("datetime64[s]")) for e in edges]
    return {
        "min": as_text[0],
        "max": as_text[-1],
        "time_histogram": {"counts": counts.tolist(), "edges": as_text},
    }


def _target_codes(series: pd.Series) -> tuple[np.ndarray, bool]:
    """The target as numbers, and whether it is categorical with >2 classes."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype="float64", na_value=np.nan), False
    codes, uniques = pd.factorize(series, sort=True)
    numeric = codes.astype("float64")
    numeric[codes < 0] = np.nan
    return numeric, len(uniques) > 2


def _correlation_ratio(values: np.ndarray, classes: np.ndarray) -> float | None:
    """Eta: how much of a numeric column's variance the target's classes explain."""
    mask = ~(np.isnan(values) | np.isnan(classes))
    x, c = values[mask], classes[mask].astype(np.int64)
    if x.size < 2:
        return None
    total = ((x - x.mean()) ** 2).sum()
    if total == 0:
        return None
    sums = np.bincount(c, weights=x)
    counts = np.bincount(c)
    present = counts > 0
    means = sums[present] / counts[present]
    between = (counts[present] * (means - x.mean()) ** 2).sum()
    return _num(math.sqrt(between / total))


def profile_table(table: pa.Table, *, target: str = "") -> dict[str, Any]:
    """Per-column statistics, duplicated rows and correlation with the target."""
    rows = table.num_rows
    frame = table.to_pandas()
    columns: list[dict[str, Any]] = []
    numeric_columns: list[str] = []
    for field in table.schema:
        name = field.name
        kind = type_name(field.type)
        column = table.column(name)
        nulls = column.null_count
        if kind in ("float",):
            nulls += pc.sum(pc.is_nan(column)).as_py() or 0
        blank = 0
        text = _as_text(column) if kind == "string" else None
        if text is not None:
            blank = pc.sum(pc.match_substring_regex(text, r"^\s*$")).as_py() or 0
        missing = nulls + blank
        series = frame[name]
        if blank:
            series = series.where(~series.astype("string").str.fullmatch(r"\s*").fillna(False))
        entry: dict[str, Any] = {
            "name": name,
            "type": kind,
            "count": rows - missing,
            "missing": missing,
            "nulls": nulls,
            "blank": blank,
            "missing_pct": round(100.0 * missing / rows, 2) if rows else 0.0,
            "distinct": int(series.nunique(dropna=True)),
            "categorical": False,
        }
        if kind in ("integer", "float"):
            values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
            values = values[~np.isnan(values)]
            numeric_columns.append(name)
            if values.size and np.isin(values, (0.0, 1.0)).all():
                # A 0/1 flag is a category: its "outliers" would be the rarer class.
                entry["categorical"] = True
                entry["mean"] = _num(values.mean())
                entry["top"] = _top_values(column)
            else:
                entry.update(_numeric_stats(values))
        elif kind == "datetime":
            entry.update(_datetime_stats(column))
        else:
            entry["categorical"] = True
            entry["top"] = _top_values(column)
        columns.append(entry)

    duplicated = int(frame.duplicated().sum()) if rows else 0

    correlations: dict[str, float | None] = {}
    if target and target in frame.columns:
        y, multiclass = _target_codes(frame[target])
        for name in numeric_columns:
            if name == target:
                continue
            x = frame[name].to_numpy(dtype="float64", na_value=np.nan)
            if multiclass:
                correlations[name] = _correlation_ratio(x, y)
                continue
            mask = ~(np.isnan(x) | np.isnan(y))
            if mask.sum() < 2 or x[mask].std() == 0 or y[mask].std() == 0:
                correlations[name] = None
                continue
            correlations[name] = _num(np.corrcoef(x[mask], y[mask])[0, 1])

    heat_columns = numeric_columns[:HEATMAP_MAX_COLUMNS]
    matrix: list[list[float | None]] = []
    if len(heat_columns) >= 2:
        corr = frame[heat_columns].astype("float64").corr()
        matrix = [[_num(v) for v in row] for row in corr.to_numpy()]
    return {
        "rows": rows,
        "columns": columns,
        "duplicated_rows": duplicated,
        "target": target if target in frame.columns else "",
        "target_correlations": correlations,
        "correlation_matrix": {"columns": heat_columns, "values": matrix},
    }
