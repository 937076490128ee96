"""Comparing runs: the selection, its data in a fixed number of queries, and
the pure computations of the comparison page (downsampling, smoothing,
grouping, baseline deltas, the charter's threshold).

``comparison_load`` reads everything the page needs, whatever the number of
runs: the runs, their params, and per metric the last value with its min and
max (one ``LatestMetric`` row per run and metric, kept by the writes). Metric
histories are read per chart by ``metric_series``, downsampled in SQL by
min/max bucketing so no series sends more than ``MAX_POINTS`` points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q
from django.utils.html import escape
from django.utils.safestring import mark_safe

from charter.selectors import charter_signed_off
from experiments.errors import MlflowError
from experiments.models import (
    Experiment,
    LatestMetric,
    Lifecycle,
    Metric,
    ModelAlias,
    Param,
    Run,
    RunStatus,
)
from experiments.search import filter_to_q
from projects.models import Project

MAX_RUNS = 500
MAX_POINTS = 1000
# Points of one chart in all, shared by its series: many runs get fewer points each.
CHART_POINT_BUDGET = 100_000
MIN_POINTS = 50
CHAMPION = "champion"
STATUS_WORDS = dict(RunStatus.choices)
# Plotly's default colours, so a group's band and its mean line match.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class SelectionError(ValueError):
    """A selection that cannot be compared; the message says why."""


@dataclass(frozen=True)
class Selection:
    run_ids: tuple[str, ...] = ()
    experiment_id: int | None = None
    filter_text: str = ""


def selection_parse(params: Any) -> Selection:
    """``?runs=<id>,<id>`` or ``?experiment=<id>&filter=<expr>`` from a QueryDict."""
    runs_text = (params.get("runs") or "").strip()
    experiment_text = (params.get("experiment") or "").strip()
    filter_text = (params.get("filter") or "").strip()
    if runs_text:
        ids = [part.strip().lower() for part in runs_text.split(",") if part.strip()]
        bad = [part for part in ids if not RUN_ID_RE.match(part)]
        if bad:
            raise SelectionError(
                f"“{bad[0][:40]}” is not a run id (run ids are 32 hexadecimal characters)."
            )
        if len(ids) > MAX_RUNS:
            raise SelectionError(
                f"At most {MAX_RUNS} runs can be compared; {len(ids)} were chosen."
            )
        return Selection(run_ids=tuple(dict.fromkeys(ids)))
    if experiment_text:
        if not experiment_text.isdigit() or len(experiment_text) > 18:
            raise SelectionError(f"“{experiment_text[:40]}” is not an experiment id.")
        return Selection(experiment_id=int(experiment_text), filter_text=filter_text)
    if filter_text:
        raise SelectionError("Choose an experiment for the filter.")
    return Selection()


@dataclass
class RunRow:
    pk: int
    uuid: str
    name: str
    status: str
    experiment: str
    params: dict[str, str] = field(default_factory=dict)
    # metric name -> (last, min, max)
    metrics: dict[str, tuple[float, float | None, float | None]] = field(default_factory=dict)


@dataclass
class Comparison:
    runs: list[RunRow]
    truncated: bool
    missing: int
    metric_keys: list[str]
    param_keys: list[str]
    baseline: RunRow | None
    baseline_is_champion: bool
    charter: Any
    experiments: list[Experiment]
    key_ids: dict[str, int]


def _runs_query(project: Project, selection: Selection) -> tuple[Q, str]:
    base = Q(experiment__project=project)
    if selection.run_ids:
        return base & Q(uuid__in=selection.run_ids), "selected"
    if selection.experiment_id is not None:
        try:
            condition = filter_to_q(selection.filter_text)
        except MlflowError as exc:
            raise SelectionError(exc.message) from None
        return (
            base
            & Q(experiment_id=selection.experiment_id, lifecycle_stage=Lifecycle.ACTIVE)
            & condition
        ), "filter"
    return Q(pk__in=[]), "none"


def champion_run_id(project: Project) -> int | None:
    """The run behind the version holding the ``champion`` alias, if any."""
    alias = (
        ModelAlias.objects.filter(
            registered_model__project=project, alias=CHAMPION, version__run__isnull=False
        )
        .order_by("registered_model__name")
        .values_list("version__run_id", flat=True)
        .first()
    )
    return alias


def _summaries(pks: list[int]) -> list[tuple[int, int, str, float, float | None, float | None]]:
    """(run, key id, key, last, min, max) of every metric of the runs: one row
    each, kept up to date by the metric writes (``LatestMetric``)."""
    return list(
        LatestMetric.objects.filter(run_id__in=pks).values_list(
            "run_id", "key_id", "key__name", "value", "low", "high"
        )
    )


def comparison_load(*, project: Project, selection: Selection, baseline: str = "") -> Comparison:
    """Everything the page shows but the charts, in a fixed number of queries."""
    condition, _ = _runs_query(project, selection)
    if (
        selection.experiment_id is not None
        and not Experiment.objects.filter(project=project, pk=selection.experiment_id).exists()
    ):
        raise SelectionError("No such experiment in this project.")
    champion_pk = champion_run_id(project) if not baseline else None
    base_q = Q(experiment__project=project)
    if baseline:
        if not RUN_ID_RE.match(baseline):
            raise SelectionError("The baseline is not a run id.")
        extra = base_q & Q(uuid=baseline)
    elif champion_pk is not None:
        extra = base_q & Q(pk=champion_pk)
    else:
        extra = Q(pk__in=[])
    rows = list(
        Run.objects.filter(condition)
        .order_by("-start_time", "-pk")
        .values_list("pk", "uuid", "name", "status", "experiment__name")[: MAX_RUNS + 1]
    )
    truncated = len(rows) > MAX_RUNS
    rows = rows[:MAX_RUNS]
    extra_rows = list(
        Run.objects.filter(extra).values_list("pk", "uuid", "name", "status", "experiment__name")
    )
    runs = [RunRow(pk=r[0], uuid=r[1], name=r[2], status=r[3], experiment=r[4]) for r in rows]
    by_pk = {r.pk: r for r in runs}
    baseline_row: RunRow | None = None
    if extra_rows:
        r = extra_rows[0]
        baseline_row = by_pk.get(r[0]) or RunRow(
            pk=r[0], uuid=r[1], name=r[2], status=r[3], experiment=r[4]
        )
    elif baseline:
        raise SelectionError("The baseline run is not in this project.")
    everyone = {**by_pk}
    if baseline_row is not None:
        everyone[baseline_row.pk] = baseline_row
    pks = list(everyone)
    for run_id, key, value in Param.objects.filter(run_id__in=pks).values_list(
        "run_id", "key", "value"
    ):
        everyone[run_id].params[key] = value
    key_ids: dict[str, int] = {}
    for run_id, key_id, name, last, low, high in _summaries(pks):
        everyone[run_id].metrics[name] = (last, low, high)
        key_ids[name] = key_id
    charter = charter_signed_off(project=project)
    experiments = list(
        Experiment.objects.filter(project=project, lifecycle_stage=Lifecycle.ACTIVE).order_by(
            "name"
        )
    )
    comparison = Comparison(
        runs=runs,
        truncated=truncated,
        missing=len(selection.run_ids) - len(runs) if selection.run_ids else 0,
        metric_keys=sorted(key_ids),
        param_keys=sorted({k for r in everyone.values() for k in r.params}),
        baseline=baseline_row,
        baseline_is_champion=baseline_row is not None and not baseline,
        charter=charter,
        experiments=experiments,
        key_ids=key_ids,
    )
    return comparison


# --- pure computations ------------------------------------------------------


def params_differing(runs: list[RunRow], keys: list[str]) -> list[str]:
    """The params whose value is not the same in every run (a missing one counts)."""
    differing = []
    for key in keys:
        values = {r.params.get(key) for r in runs}
        if len(values) > 1:
            differing.append(key)
    return differing


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def delta(value: float | None, base: float | None) -> float | None:
    if not _finite(value) or not _finite(base):
        return None
    return float(value) - float(base)  # type: ignore[arg-type]


def meets_threshold(value: float | None, threshold: float, direction: str) -> bool | None:
    """Whether a value meets the charter's threshold; None when it has no value."""
    if value is None or math.isnan(value):
        return None
    if direction == "lower":
        return value <= threshold
    return value >= threshold


def ema(values: list[float], weight: float) -> list[float]:
    """Exponential moving average as TensorBoard smooths (debiased from the start)."""
    if weight <= 0:
        return list(values)
    out: list[float] = []
    last = 0.0
    count = 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        count += 1
        out.append(last / (1 - weight**count))
    return out


def points_per_series(run_count: int, requested: int | None = None) -> int:
    """At most ``MAX_POINTS``; fewer when many runs share the chart."""
    budget = max(MIN_POINTS, CHART_POINT_BUDGET // max(run_count, 1))
    points = min(MAX_POINTS, budget)
    if requested:
        points = min(points, max(MIN_POINTS, requested))
    return points - points % 2


def downsample_minmax(
    steps: list[int], values: list[float], points: int
) -> list[tuple[int, float]]:
    """Min/max bucketing in Python, the reference for the SQL in ``metric_series``:
    the step range in ``points // 2`` equal buckets, each giving its lowest and
    highest point (in step order); series that fit are returned whole."""
    pairs = sorted(zip(steps, values, strict=True))
    if len(pairs) <= points:
        return pairs
    buckets = max(points // 2, 1)
    s0, s1 = pairs[0][0], pairs[-1][0]
    grouped: dict[int, list[tuple[int, float]]] = {}
    for step, value in pairs:
        b = 0 if s1 == s0 else int((step - s0) * buckets // (s1 - s0 + 1))
        grouped.setdefault(b, []).append((step, value))
    out: list[tuple[int, float]] = []
    for b in sorted(grouped):
        members = grouped[b]
        finite = [p for p in members if not math.isnan(p[1])] or members
        low = min(finite, key=lambda p: (p[1], p[0]))
        high = max(finite, key=lambda p: (p[1], -p[0]))
        out.extend(sorted({low, high}))
    return out


_SERIES_SQL = """
WITH ranges AS MATERIALIZED (
    SELECT lm.run_id, lm.step AS s1,
        (SELECT m.step FROM experiments_metric m
         WHERE m.run_id = lm.run_id AND m.key_id = lm.key_id
         ORDER BY m.step LIMIT 1) AS s0,
        (SELECT count(*) FROM experiments_metric m
         WHERE m.run_id = lm.run_id AND m.key_id = lm.key_id) AS n
    FROM experiments_latestmetric lm
    WHERE lm.key_id = %(key)s AND lm.run_id = ANY(%(runs)s)
),
bucketed AS (
    SELECT m.run_id, m.step, m.value,
        CASE WHEN r.n <= %(points)s THEN m.step
             WHEN r.s1 = r.s0 THEN 0
             ELSE floor((m.step - r.s0)::numeric * %(buckets)s / (r.s1 - r.s0 + 1))::bigint
        END AS bucket,
        r.n <= %(points)s AS whole
    FROM experiments_metric m JOIN ranges r ON r.run_id = m.run_id
    WHERE m.key_id = %(key)s AND m.run_id = ANY(%(runs)s)
)
SELECT run_id, bucket,
    min(ARRAY[CASE WHEN value = 'NaN'::float8 THEN 'Infinity'::float8 ELSE value END,
              step::float8, value]) AS low,
    max(ARRAY[CASE WHEN value = 'NaN'::float8 THEN '-Infinity'::float8 ELSE value END,
              -step::float8, value]) AS high
FROM bucketed
GROUP BY run_id, bucket
"""


def metric_series(
    *, key_id: int, run_pks: list[int], points: int
) -> dict[int, list[tuple[int, float]]]:
    """Each run's history of one metric, at most ``points`` points, min/max
    bucketed in the database (one query, whatever the number of runs)."""
    buckets = max(points // 2, 1)
    series: dict[int, set[tuple[int, float]]] = {pk: set() for pk in run_pks}
    if connection.vendor != "postgresql":
        # The embedded SQLite database: the points are read and bucketed here.
        history: dict[int, tuple[list[int], list[float]]] = {pk: ([], []) for pk in run_pks}
        for run_id, step, value in Metric.objects.filter(
            key_id=key_id, run_id__in=run_pks
        ).values_list("run_id", "step", "value"):
            history[run_id][0].append(step)
            history[run_id][1].append(math.nan if value is None else value)
        return {pk: downsample_minmax(*history[pk], points) for pk in run_pks}
    with connection.cursor() as cursor:
        cursor.execute(
            _SERIES_SQL,
            {"key": key_id, "runs": run_pks, "points": points, "buckets": buckets},
        )
        for run_id, _, low, high in cursor.fetchall():
            series[run_id].add((int(low[1]), low[2]))
            series[run_id].add((int(-high[1]), high[2]))
    return {pk: sorted(pts) for pk, pts in series.items()}


def group_bands(
    series: dict[int, list[tuple[int, float]]], groups: dict[int, str], grid_points: int = 200
) -> list[dict[str, Any]]:
    """Mean and standard deviation across the runs of each group, on a common
    step grid (each run's series interpolated within its own step range)."""
    import numpy as np

    out = []
    by_group: dict[str, list[int]] = {}
    for pk, label in groups.items():
        if series.get(pk):
            by_group.setdefault(label, []).append(pk)
    for label in sorted(by_group):
        members = by_group[label]
        lo = min(series[pk][0][0] for pk in members)
        hi = max(series[pk][-1][0] for pk in members)
        grid = np.unique(np.linspace(lo, hi, grid_points).round().astype(np.int64))
        stack = np.full((len(members), len(grid)), np.nan)
        for i, pk in enumerate(members):
            s = np.array([p[0] for p in series[pk]], dtype=float)
            v = np.array([p[1] for p in series[pk]], dtype=float)
            ok = np.isfinite(v)
            if not ok.any():
                continue
            s, v = s[ok], v[ok]
            inside = (grid >= s[0]) & (grid <= s[-1])
            stack[i, inside] = np.interp(grid[inside], s, v)
        count = np.sum(~np.isnan(stack), axis=0)
        keep = count > 0
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.where(keep, stack, 0), axis=0)
            std = np.nanstd(np.where(keep, stack, 0), axis=0)
        out.append(
            {
                "label": label,
                "runs": len(members),
                "steps": [int(x) for x in grid[keep]],
                "mean": [float(x) for x in mean[keep]],
                "std": [float(x) for x in std[keep]],
            }
        )
    return out


def param_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def check_points(text: str | None) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 6:
        raise SelectionError("The number of points must be a whole number.")
    return int(text)


def check_smoothing(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        weight = float(text)
    except ValueError:
        raise SelectionError("Smoothing must be a number from 0 to 0.99.") from None
    if not 0 <= weight <= 0.99:
        raise SelectionError("Smoothing must be a number from 0 to 0.99.")
    return weight


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and param_number(text) is None:
        return "'" + text
    return text


def project_experiments(project: Project) -> list[Experiment]:
    return list(
        Experiment.objects.filter(project=project, lifecycle_stage=Lifecycle.ACTIVE).order_by(
            "name"
        )
    )


# --- what the page shows ----------------------------------------------------

MAX_DEFAULT_CHARTS = 4
MAX_CHARTS = 20
MAX_DIMENSIONS = 12


def charter_target(found: Comparison) -> dict[str, Any] | None:
    """The signed-off charter's success metric and threshold, when runs log it."""
    charter = found.charter
    if charter is None or not charter.success_metric or charter.threshold is None:
        return None
    direction = charter.direction or "higher"
    return {
        "metric": charter.success_metric,
        "threshold": charter.threshold,
        "direction": direction,
        "sign": "≤" if direction == "lower" else "≥",
        "logged": charter.success_metric in found.key_ids,
        "version": charter.number,
    }


def _dimension(found: Comparison, name: str, runs: list[RunRow]) -> dict[str, Any] | None:
    kind, _, key = name.partition(".")
    if kind == "metrics":
        values = [r.metrics.get(key, (None, None, None))[0] for r in runs]
        numbers = [v if v is not None and math.isfinite(v) else None for v in values]
        if all(v is None for v in numbers):
            return None
        return {"label": key, "values": numbers}
    raw = [r.params.get(key) for r in runs]
    parsed = [param_number(v) for v in raw]
    if all(p is not None for p, v in zip(parsed, raw, strict=True) if v is not None):
        if all(p is None for p in parsed):
            return None
        return {"label": key, "values": parsed}
    labels = sorted({v for v in raw if v is not None})
    index = {v: i for i, v in enumerate(labels)}
    return {
        "label": key,
        "values": [index.get(v) if v is not None else None for v in raw],
        "tickvals": list(range(len(labels))),
        "ticktext": [label[:30] for label in labels],
    }


def parallel_figure(found: Comparison, dims: list[str]) -> dict[str, Any] | None:
    runs = found.runs
    dimensions = [d for d in (_dimension(found, name, runs) for name in dims) if d is not None]
    if len(dimensions) < 2:
        return None
    complete = [i for i in range(len(runs)) if all(d["values"][i] is not None for d in dimensions)]
    if not complete:
        return None
    for d in dimensions:
        d["values"] = [d["values"][i] for i in complete]
    return {
        "data": [
            {
                "type": "parcoords",
                "dimensions": dimensions,
                "line": {
                    "color": dimensions[-1]["values"],
                    "colorscale": "Viridis",
                    "showscale": True,
                },
            }
        ],
        "layout": {"margin": {"l": 60, "r": 60, "t": 40, "b": 20}, "height": 360},
    }


def scatter_figure(
    found: Comparison, x: str, y: str, target: dict[str, Any] | None
) -> dict[str, Any] | None:
    if not x or not y:
        return None
    xs, ys, names, colours = [], [], [], []
    for run in found.runs:
        value = run.params.get(x)
        last = run.metrics.get(y, (None, None, None))[0]
        if value is None or last is None or not math.isfinite(last):
            continue
        number = param_number(value)
        xs.append(number if number is not None else value)
        ys.append(last)
        names.append(run.name or run.uuid[:8])
        mark = (
            meets_threshold(last, target["threshold"], target["direction"])
            if target and target["metric"] == y
            else None
        )
        colours.append({True: "#1a7f37", False: "#cf222e", None: "#0969da"}[mark])
    if not xs:
        return None
    layout: dict[str, Any] = {
        "xaxis": {"title": {"text": f"param {x}"}},
        "yaxis": {"title": {"text": f"{y} (last)"}},
        "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
        "height": 340,
    }
    if target and target["metric"] == y:
        layout["shapes"] = [_threshold_line(target)]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "x": xs,
                "y": ys,
                "text": names,
                "marker": {"color": colours, "size": 8},
            }
        ],
        "layout": layout,
    }


def _threshold_line(target: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": target["threshold"],
        "y1": target["threshold"],
        "line": {"color": "#cf222e", "dash": "dash", "width": 2},
    }


# A metric's last value, marked against the charter's target (or not).
_MARK_CELL = {
    True: '<td class="meets" title="Meets the charter\'s target">{} ✓</td>',
    False: '<td class="misses" title="Misses the charter\'s target">{} ✗</td>',
    None: "<td>{}</td>",
}


def page_context(found: Comparison, params: Any) -> dict[str, Any]:
    """The rows, columns and figures of the page, from the loaded comparison."""
    show_all = params.get("params") == "all"
    pks = {r.pk for r in found.runs}
    differing = params_differing(found.runs, found.param_keys)
    param_columns = found.param_keys if show_all else differing
    target = charter_target(found)
    base = found.baseline
    rows: list[dict[str, Any]] = []
    above = below = 0
    for run in found.runs:
        cells: list[str] = []
        for key in found.metric_keys:
            last, low, high = run.metrics.get(key, (None, None, None))
            mark = (
                meets_threshold(last, target["threshold"], target["direction"])
                if target and target["metric"] == key
                else None
            )
            above += mark is True
            below += mark is False
            cells.append(_MARK_CELL[mark].format(number_text(last)))
            cells.append(f"<td>{number_text(low)}</td><td>{number_text(high)}</td>")
            if base:
                base_last = base.metrics.get(key, (None, None, None))[0]
                change = delta(last, base_last) if run.pk != base.pk else None
                cells.append("<td></td>" if change is None else f"<td>{change:+.4g}</td>")
        rows.append(
            {
                "run": run,
                "param_cells": mark_safe(  # noqa: S308 (every value escaped)
                    "".join(
                        "<td>—</td>" if v is None else f"<td>{escape(v)}</td>"
                        for v in (run.params.get(k) for k in param_columns)
                    )
                ),
                # 500 runs × 20 metrics × 4 cells: built here, where it takes a
                # tenth of the template language's time (bench/experiments_compare.py).
                "metric_cells": mark_safe("".join(cells)),  # noqa: S308 (numbers only)
                "is_baseline": base is not None and run.pk == base.pk,
                "status": STATUS_WORDS.get(run.status, run.status),
            }
        )
    charts = [m for m in params.getlist("chart") if m in found.key_ids][:MAX_CHARTS]
    if not charts:
        first = [target["metric"]] if target and target["logged"] else []
        charts = (first + [m for m in found.metric_keys if m not in first])[:MAX_DEFAULT_CHARTS]
    choices = [f"params.{k}" for k in found.param_keys] + [
        f"metrics.{k}" for k in found.metric_keys
    ]
    dims = [d for d in params.getlist("dim") if d in choices][:MAX_DIMENSIONS]
    if not dims:
        dims = [f"params.{k}" for k in differing[:4]]
        dims += [f"metrics.{m}" for m in charts[:2]]
    numeric_params = [
        k for k in differing if all(param_number(r.params.get(k)) is not None for r in found.runs)
    ]
    x = params.get("x") if params.get("x") in found.param_keys else ""
    x = x or (numeric_params[0] if numeric_params else (differing[0] if differing else ""))
    y = params.get("y") if params.get("y") in found.key_ids else ""
    y = y or (charts[0] if charts else "")
    group = params.get("group") if params.get("group") in found.param_keys else ""
    smoothing = params.get("smoothing", "")
    try:
        smoothing_value = check_smoothing(smoothing)
    except SelectionError:
        smoothing_value = 0.0
    return {
        "found": found,
        "rows": rows,
        "param_columns": param_columns,
        "show_all_params": show_all,
        "hidden_params": len(found.param_keys) - len(differing),
        "target": target,
        "above": above,
        "below": below,
        "charts": charts,
        "dims": dims,
        "dim_choices": choices,
        "x": x,
        "y": y,
        "group": group,
        "smoothing": smoothing_value,
        "parallel": parallel_figure(found, dims),
        "scatter": scatter_figure(found, x, y, target),
        "points": points_per_series(len(found.runs) + (1 if base and base.pk not in pks else 0)),
        "keep": [(k, v) for k in ("runs", "experiment", "filter") for v in params.getlist(k)],
        "query_no_params": _query_without(params, "params"),
        "experiment_id": params.get("experiment", ""),
        "filter_text": params.get("filter", ""),
        "max_runs": MAX_RUNS,
        "experiments": found.experiments,
    }


def metric_figure(
    found: Comparison,
    *,
    metric: str,
    points: int | None = None,
    smoothing: float = 0.0,
    group: str = "",
) -> dict[str, Any]:
    """One metric over steps: a line per run (or mean ± std per group), the
    baseline dashed, the charter's threshold as a red line."""
    runs = list(found.runs)
    base = found.baseline
    if base is not None and all(r.pk != base.pk for r in runs):
        runs.append(base)
    per_series = points_per_series(len(runs), points)
    series = metric_series(
        key_id=found.key_ids[metric], run_pks=[r.pk for r in runs], points=per_series
    )
    line_type = "scattergl" if len(runs) > 50 else "scatter"
    traces: list[dict[str, Any]] = []
    if group:
        groups = {r.pk: r.params.get(group, "(none)") for r in runs}
        for number, band in enumerate(group_bands(series, groups)):
            colour = PALETTE[number % len(PALETTE)]
            fill = "rgba({},{},{},0.2)".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))
            mean = ema(band["mean"], smoothing)
            upper = [m + s for m, s in zip(mean, band["std"], strict=True)]
            lower = [m - s for m, s in zip(mean, band["std"], strict=True)]
            label = f"{group}={band['label']} ({band['runs']} runs)"
            traces.append(
                {
                    "type": "scatter",
                    "x": band["steps"],
                    "y": upper,
                    "mode": "lines",
                    "line": {"width": 0, "color": colour},
                    "showlegend": False,
                    "hoverinfo": "skip",
                    "legendgroup": label,
                }
            )
            traces.append(
                {
                    "type": "scatter",
                    "x": band["steps"],
                    "y": lower,
                    "mode": "lines",
                    "line": {"width": 0},
                    "fill": "tonexty",
                    "fillcolor": fill,
                    "showlegend": False,
                    "hoverinfo": "skip",
                    "legendgroup": label,
                }
            )
            traces.append(
                {
                    "type": "scatter",
                    "x": band["steps"],
                    "y": mean,
                    "mode": "lines",
                    "name": label,
                    "line": {"color": colour},
                    "legendgroup": label,
                }
            )
    else:
        for run in runs:
            pts = series.get(run.pk) or []
            if not pts:
                continue
            values = ema([v for _, v in pts], smoothing)
            trace: dict[str, Any] = {
                "type": line_type,
                "mode": "lines",
                "name": run.name or run.uuid[:8],
                "x": [s for s, _ in pts],
                "y": [_plot_value(v) for v in values],
                "meta": run.uuid,
            }
            if base is not None and run.pk == base.pk:
                trace["line"] = {"dash": "dash", "width": 3, "color": "#24292f"}
                trace["name"] += " (baseline)"
            traces.append(trace)
    target = charter_target(found)
    layout: dict[str, Any] = {
        "title": {"text": metric},
        "xaxis": {"title": {"text": "step"}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        "height": 340,
        "showlegend": len(traces) <= 30,
    }
    if target and target["metric"] == metric:
        layout["shapes"] = [_threshold_line(target)]
        layout["annotations"] = [
            {
                "xref": "paper",
                "x": 1,
                "xanchor": "right",
                "y": target["threshold"],
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"Charter: {metric} {target['sign']} {target['threshold']:g}",
                "font": {"color": "#cf222e"},
            }
        ]
    return {
        "data": traces,
        "layout": layout,
        "points_per_series": per_series,
        "runs": len(runs),
    }


def number_text(value: float | None) -> str:
    """A metric value as the page and the CSV show it."""
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.6g}"


def _query_without(params: Any, name: str) -> str:
    copy = params.copy()
    copy.pop(name, None)
    return str(copy.urlencode())


def _plot_value(value: float) -> float | None:
    """Plotly leaves a gap for null; NaN and ±Infinity are not JSON numbers."""
    return value if math.isfinite(value) else None
