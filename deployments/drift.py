"""Data drift of a deployment's logged inputs against its training split.

Pure computation (numpy, pandas, scipy), no database: the caller hands over
the training part of the split and the sampled rows the scoring process logged
(``samples_frame`` turns its JSON lines into a frame) and gets a plain
``DriftReport`` back.

Per feature:

- **PSI** (population stability index) over bins taken from the reference:
  deciles of a numerical column (with one bin below and one above the range the
  training data covered), the categories of a categorical one (with one bin for
  categories training never saw); missing values have a bin of their own, so a
  column that starts arriving empty drifts too. Warn at 0.1, alert at 0.2.
- **Jensen-Shannon distance** (base 2, so between 0 and 1) of the category
  shares of a categorical feature; alert at 0.1.
- **Normalised Wasserstein distance** of a numerical feature: the earth
  mover's distance between the two samples divided by the reference's
  standard deviation; alert at 0.1. A column constant in the training data has
  no spread to divide by: its distance is the share of current values that
  differ from that constant.

A feature drifts when its status is ``alert``; the dataset drifts when the
share of drifted features (of those that could be judged) reaches
``drift_share`` (50% by default). The predictions are compared the same way
(against the training labels, or the model's predictions on the training
rows) but do not count towards the dataset's drift.

Edge cases give a status, never an exception: a window with fewer than
``min_rows`` rows, or a feature the window does not carry (say, a column left
out of the log as sensitive), is ``no_data`` with a note saying why.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

Kind = Literal["numerical", "categorical"]
Status = Literal["ok", "warn", "alert", "no_data"]

PSI_WARN = 0.1
PSI_ALERT = 0.2
DISTANCE_ALERT = 0.1
DRIFT_SHARE = 0.5
MIN_ROWS = 100
PSI_BINS = 10
# An empty bin on one side would make PSI infinite; it counts as this share.
PSI_EPSILON = 1e-4
# An integer column with this few distinct training values is a code
# (plan 0/1/2, a star rating), compared as categories.
MAX_CODES = 10
# A chart shows this many categories at most; the rest are summed as "(other)"
# (the statistics use them all).
CHART_CATEGORIES = 20


@dataclass(frozen=True)
class FeatureDrift:
    """One feature (or the predictions): its statistics and verdict."""

    name: str
    kind: Kind
    status: Status
    psi: float | None
    # "jensen_shannon" for a categorical feature, "wasserstein" for a numerical one.
    distance_name: str
    distance: float | None
    reference_rows: int
    current_rows: int
    reference_missing: float
    current_missing: float
    # Share of current values in categories the training data never had.
    unseen: float = 0.0
    note: str = ""
    # What a chart of the two distributions needs: the bins' labels and each
    # side's share per bin (numerical: below the training range, the deciles,
    # above it, missing; categorical: the most frequent training categories,
    # "(other)" for the rest, "(unseen)", "(missing)"). ``edges`` are a
    # numerical feature's bin edges, from the training minimum to its maximum.
    bins: list[str] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.status == "alert"


@dataclass(frozen=True)
class DriftReport:
    """The drift of one window of logged rows against the training split."""

    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    reference_rows: int
    current_rows: int
    drifted_features: int
    judged_features: int
    drifted_share: float
    dataset_drift: bool
    drift_share: float = DRIFT_SHARE
    note: str = ""
    # Columns in the log that the training data does not have (not compared).
    extra_columns: list[str] = field(default_factory=list)

    def feature(self, name: str) -> FeatureDrift:
        return next(f for f in self.features if f.name == name)


@dataclass(frozen=True)
class ColumnReference:
    """What a comparison needs of one training column, computed once."""

    name: str
    kind: Kind
    rows: int
    missing: int
    # numerical: the sorted non-missing values, the decile edges, their std
    values: np.ndarray | None = None
    edges: np.ndarray | None = None
    std: float = 0.0
    # categorical: the categories and their counts (missing left out)
    categories: pd.Index | None = None
    counts: np.ndarray | None = None


def column_kind(series: pd.Series) -> Kind:
    """Numerical for real numbers and integers with many values; categorical
    for text, booleans and integer codes."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    if pd.api.types.is_integer_dtype(series) and series.nunique(dropna=True) <= MAX_CODES:
        return "categorical"
    return "numerical"


def column_reference(series: pd.Series, kind: Kind | None = None) -> ColumnReference:
    """Profile one training column for later comparisons."""
    kind = kind or column_kind(series)
    name = str(series.name)
    rows = len(series)
    if kind == "numerical":
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        finite = numbers[~np.isnan(numbers)]
        values = np.sort(finite)
        if len(values):
            edges = np.unique(np.quantile(values, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
            std = float(values.std())
        else:
            edges, std = np.array([]), 0.0
        return ColumnReference(
            name, kind, rows, rows - len(values), values=values, edges=edges, std=std
        )
    labels = _labels(series)
    counts = labels.value_counts(dropna=True)
    return ColumnReference(
        name,
        kind,
        rows,
        int(labels.isna().sum()),
        categories=pd.Index(counts.index),
        counts=counts.to_numpy(dtype=float),
    )


def _labels(series: pd.Series) -> pd.Series:
    """Categories as text, so 1 logged as JSON and "1" read from Parquet meet
    (and 1.0, a code in a column that also holds a missing value)."""
    missing = series.isna()
    if pd.api.types.is_float_dtype(series):
        values = series[~missing]
        if bool((values == np.floor(values)).all()):
            series = series.astype("Int64")
    text = series.astype(str)
    return text.where(~missing, None)


def _bin_counts_numerical(ref: ColumnReference, sorted_values: np.ndarray) -> np.ndarray:
    """Counts per bin: below the reference's range, its deciles, above it."""
    assert ref.values is not None and ref.edges is not None
    lo, hi = ref.values[0], ref.values[-1]
    below = np.searchsorted(sorted_values, lo, side="left")
    above = len(sorted_values) - np.searchsorted(sorted_values, hi, side="right")
    # Inside [lo, hi]: bin i holds edges[i-1] <= x < edges[i].
    cuts = np.searchsorted(sorted_values, ref.edges, side="left")
    bounds = np.concatenate(([below], cuts, [len(sorted_values) - above]))
    inside = np.diff(bounds)
    return np.concatenate(([below], inside, [above])).astype(float)


def _shares(counts: np.ndarray) -> list[float]:
    total = float(counts.sum())
    return [float(c) / total for c in counts] if total > 0 else [0.0] * len(counts)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _chart_numerical(
    ref: ColumnReference, ref_counts: np.ndarray, cur_counts: np.ndarray | None
) -> dict[str, Any]:
    """The bins of a numerical feature, labelled, with both sides' shares
    (counts as ``_bin_counts_numerical`` gives them, plus the missing bin)."""
    assert ref.values is not None and ref.edges is not None
    if len(ref.values) == 0:
        bins = ["(values)", "(missing)"]
        edges: list[float] = []
    else:
        lo, hi = float(ref.values[0]), float(ref.values[-1])
        edges = [lo, *(float(e) for e in ref.edges), hi]
        bins = [
            f"below {_fmt(lo)}",
            *(f"{_fmt(a)} to {_fmt(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)),
            f"above {_fmt(hi)}",
            "(missing)",
        ]
    return {
        "bins": bins,
        "reference_shares": _shares(ref_counts),
        "current_shares": _shares(cur_counts) if cur_counts is not None else [],
        "edges": edges,
    }


def _chart_categorical(
    ref: ColumnReference, ref_counts: np.ndarray, cur_counts: np.ndarray | None
) -> dict[str, Any]:
    """The bins of a categorical feature (training categories, most frequent
    first, then unseen and missing), at most ``CHART_CATEGORIES`` categories
    and "(other)" for the rest."""
    assert ref.categories is not None
    names = [str(c) for c in ref.categories]
    known = len(names)

    def fold(counts: np.ndarray) -> np.ndarray:
        if known <= CHART_CATEGORIES:
            return counts
        head, rest, tail = (
            counts[:CHART_CATEGORIES],
            counts[CHART_CATEGORIES:known],
            counts[known:],
        )
        return np.concatenate((head, [rest.sum()], tail))

    labels = names if known <= CHART_CATEGORIES else [*names[:CHART_CATEGORIES], "(other)"]
    return {
        "bins": [*labels, "(unseen)", "(missing)"],
        "reference_shares": _shares(fold(ref_counts)),
        "current_shares": _shares(fold(cur_counts)) if cur_counts is not None else [],
        "edges": [],
    }


def _reference_counts(ref: ColumnReference) -> np.ndarray:
    """The training side's counts over the chart's bins, missing last."""
    if ref.kind == "numerical":
        assert ref.values is not None
        if len(ref.values) == 0:
            return np.array([0.0, float(ref.missing)])
        return np.append(_bin_counts_numerical(ref, ref.values), float(ref.missing))
    assert ref.counts is not None
    return np.concatenate((ref.counts, [0.0, float(ref.missing)]))


def _chart(ref: ColumnReference, cur_counts: np.ndarray | None) -> dict[str, Any]:
    counts = _reference_counts(ref)
    if ref.kind == "numerical":
        return _chart_numerical(ref, counts, cur_counts)
    return _chart_categorical(ref, counts, cur_counts)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    r = reference / reference.sum()
    c = current / current.sum()
    r = np.where(r > 0, r, PSI_EPSILON)
    c = np.where(c > 0, c, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors."""
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0)
        right = np.where(q > 0, q * np.log2(q / m), 0.0)
    return float(math.sqrt(max(float(left.sum() + right.sum()) / 2, 0.0)))


def wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """Wasserstein-1 distance of two samples given sorted (the area between
    their empirical distribution functions)."""
    # A stable sort of two sorted runs is a merge; who came from which side
    # gives both distribution functions by counting.
    both = np.concatenate((u, v))
    order = np.argsort(both, kind="stable")
    from_u = order < len(u)
    u_cdf = np.cumsum(from_u)[:-1] / len(u)
    v_cdf = np.cumsum(~from_u)[:-1] / len(v)
    return float(np.sum(np.abs(u_cdf - v_cdf) * np.diff(both[order])))


def _status(psi_value: float | None, distance: float | None) -> Status:
    if (psi_value is not None and psi_value >= PSI_ALERT) or (
        distance is not None and distance >= DISTANCE_ALERT
    ):
        return "alert"
    if psi_value is not None and psi_value >= PSI_WARN:
        return "warn"
    return "ok"


def compare_column(ref: ColumnReference, series: pd.Series) -> FeatureDrift:
    """The drift of one window column against its training profile."""
    rows = len(series)
    ref_missing = ref.missing / ref.rows if ref.rows else 0.0
    base: dict[str, Any] = {
        "name": ref.name,
        "kind": ref.kind,
        "distance_name": "wasserstein" if ref.kind == "numerical" else "jensen_shannon",
        "reference_rows": ref.rows,
        "current_rows": rows,
        "reference_missing": ref_missing,
    }
    if rows == 0 or ref.rows == 0:
        return FeatureDrift(
            **base,
            status="no_data",
            psi=None,
            distance=None,
            current_missing=0.0,
            note="No training rows." if ref.rows == 0 else "No logged rows.",
            **_chart(ref, None),
        )
    if ref.kind == "numerical":
        return _compare_numerical(ref, series, base)
    return _compare_categorical(ref, series, base)


def _compare_numerical(
    ref: ColumnReference, series: pd.Series, base: dict[str, Any]
) -> FeatureDrift:
    assert ref.values is not None
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    current = np.sort(numbers[~np.isnan(numbers)])
    missing = len(numbers) - len(current)
    current_missing = missing / len(numbers)
    notes = []
    if len(ref.values) == 0:
        # Training had no values at all: only the missing share can be compared.
        cur_counts = np.array([float(len(current)), float(missing)])
        psi_value = psi(np.array([0.0, ref.missing]), cur_counts)
        return FeatureDrift(
            **base,
            status=_status(psi_value, None),
            psi=psi_value,
            distance=None,
            current_missing=current_missing,
            note="No values in the training data.",
            **_chart(ref, cur_counts),
        )
    cur_counts = np.append(_bin_counts_numerical(ref, current), missing)
    psi_value = psi(np.append(_bin_counts_numerical(ref, ref.values), ref.missing), cur_counts)
    distance: float | None
    if len(current) == 0:
        distance = None
        notes.append("No values in the logged rows.")
    elif ref.std > 0:
        distance = wasserstein_sorted(ref.values, current) / ref.std
    else:
        constant = ref.values[0]
        distance = float(np.count_nonzero(current != constant) / len(current))
        notes.append(
            "Constant in the training data: the distance is the share of values that differ."
        )
    return FeatureDrift(
        **base,
        status=_status(psi_value, distance),
        psi=psi_value,
        distance=distance,
        current_missing=current_missing,
        note=" ".join(notes),
        **_chart(ref, cur_counts),
    )


def _compare_categorical(
    ref: ColumnReference, series: pd.Series, base: dict[str, Any]
) -> FeatureDrift:
    assert ref.categories is not None and ref.counts is not None
    labels = _labels(series)
    missing_mask = labels.isna().to_numpy()
    codes = ref.categories.get_indexer(labels)
    known = codes[codes >= 0]
    counts = np.bincount(known, minlength=len(ref.categories)).astype(float)
    missing = int(missing_mask.sum())
    unseen = len(codes) - len(known) - missing
    # Bins: the training categories, categories never seen, missing.
    ref_bins = _reference_counts(ref)
    cur_bins = np.concatenate((counts, [float(unseen), float(missing)]))
    psi_value = psi(ref_bins, cur_bins)
    distance = jensen_shannon(ref_bins, cur_bins)
    note = ""
    if unseen:
        note = (
            f"{unseen} value{'s' if unseen != 1 else ''} in categories the training data never had."
        )
    return FeatureDrift(
        **base,
        status=_status(psi_value, distance),
        psi=psi_value,
        distance=distance,
        current_missing=missing / len(labels),
        unseen=unseen / len(labels),
        note=note,
        **_chart(ref, cur_bins),
    )


@dataclass(frozen=True)
class Reference:
    """A training split profiled once, to compare many windows against."""

    columns: dict[str, ColumnReference]
    rows: int
    prediction: ColumnReference | None = None


def reference_profile(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    predictions: pd.Series | None = None,
    kinds: Mapping[str, Kind] | None = None,
) -> Reference:
    """Profile the training rows: every column but ``target`` is a feature.
    The predictions are compared with ``predictions`` when given (the model's
    answers on the training rows), else with the ``target`` column."""
    kinds = kinds or {}
    columns = {
        str(name): column_reference(frame[name], kinds.get(str(name)))
        for name in frame.columns
        if name != target
    }
    prediction_source = predictions
    if prediction_source is None and target is not None and target in frame.columns:
        prediction_source = frame[target]
    prediction = None
    if prediction_source is not None:
        prediction = column_reference(prediction_source.rename("prediction"))
    return Reference(columns=columns, rows=len(frame), prediction=prediction)


def drift_report(
    reference: Reference,
    current: pd.DataFrame,
    *,
    predictions: pd.Series | None = None,
    drift_share: float = DRIFT_SHARE,
    min_rows: int = MIN_ROWS,
) -> DriftReport:
    """Compare a window of logged rows (and their predictions) with the
    training profile."""
    rows = len(current)
    extra = sorted(str(c) for c in current.columns if str(c) not in reference.columns)
    if rows < min_rows:
        note = (
            "No logged rows in the window."
            if rows == 0
            else f"Only {rows} logged rows in the window; at least {min_rows} are needed."
        )
        features = [_no_data(ref, rows, note) for ref in reference.columns.values()]
        prediction = _no_data(reference.prediction, rows, note) if reference.prediction else None
        return DriftReport(
            features=features,
            prediction=prediction,
            reference_rows=reference.rows,
            current_rows=rows,
            drifted_features=0,
            judged_features=0,
            drifted_share=0.0,
            dataset_drift=False,
            drift_share=drift_share,
            note=note,
            extra_columns=extra,
        )
    present = {str(c): c for c in current.columns}
    features = []
    for name, ref in reference.columns.items():
        if name in present:
            features.append(compare_column(ref, current[present[name]]))
        else:
            features.append(_no_data(ref, rows, "Not in the logged rows."))
    prediction = None
    if reference.prediction is not None:
        if predictions is not None and len(predictions):
            prediction = compare_column(reference.prediction, predictions)
        else:
            prediction = _no_data(reference.prediction, 0, "No logged predictions.")
    judged = [f for f in features if f.status != "no_data"]
    drifted = sum(f.drifted for f in judged)
    share = drifted / len(judged) if judged else 0.0
    return DriftReport(
        features=features,
        prediction=prediction,
        reference_rows=reference.rows,
        current_rows=rows,
        drifted_features=drifted,
        judged_features=len(judged),
        drifted_share=share,
        dataset_drift=bool(judged) and share >= drift_share,
        drift_share=drift_share,
        note="" if judged else "No feature could be compared.",
        extra_columns=extra,
    )


def _no_data(ref: ColumnReference, rows: int, note: str) -> FeatureDrift:
    return FeatureDrift(
        name=ref.name,
        kind=ref.kind,
        status="no_data",
        psi=None,
        distance=None,
        distance_name="wasserstein" if ref.kind == "numerical" else "jensen_shannon",
        reference_rows=ref.rows,
        current_rows=rows,
        reference_missing=ref.missing / ref.rows if ref.rows else 0.0,
        current_missing=0.0,
        note=note,
        **_chart(ref, None),
    )


def samples_frame(records: Iterable[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.Series]:
    """The inputs and predictions of the scoring process's sampled lines
    (``{"ts", "deployment", "input": {...}, "prediction": ...}``); lines
    without an ``input`` object are skipped."""
    inputs: list[Mapping[str, Any]] = []
    outputs: list[Any] = []
    for record in records:
        row = record.get("input")
        if not isinstance(row, Mapping):
            continue
        inputs.append(row)
        prediction = record.get("prediction")
        outputs.append(None if isinstance(prediction, dict | list) else prediction)
    return pd.DataFrame.from_records(inputs), pd.Series(outputs, name="prediction", dtype=object)


def samples_read(data: bytes) -> tuple[pd.DataFrame, pd.Series]:
    """The inputs and predictions of a sample log's bytes (JSON lines).

    Read by Arrow's JSON reader, several times faster than a ``json.loads``
    per line; a log it refuses (a line cut short while being written, a column
    logged as a number and as text) is read line by line instead, skipping
    the lines that are not JSON."""
    if not data.strip():
        return samples_frame([])
    try:
        table = pa_json.read_json(io.BytesIO(data))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return samples_frame(_lines(data))
    if "input" not in table.column_names or not pa.types.is_struct(
        table.schema.field("input").type
    ):
        return samples_frame(_lines(data))
    table = table.filter(table.column("input").is_valid())
    inputs = table.column("input").combine_chunks()
    assert isinstance(inputs, pa.StructArray)
    frame = pa.table(
        {inputs.type.field(i).name: inputs.field(i) for i in range(inputs.type.num_fields)}
    ).to_pandas()
    if "prediction" in table.column_names and _is_scalar(table.schema.field("prediction").type):
        predictions = table.column("prediction").to_pandas().rename("prediction")
    else:
        predictions = pd.Series([None] * table.num_rows, name="prediction", dtype=object)
    return frame, predictions


def _is_scalar(kind: pa.DataType) -> bool:
    return not (pa.types.is_nested(kind) or pa.types.is_null(kind))


def _lines(data: bytes) -> Iterable[Mapping[str, Any]]:
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record
