"""Reads of drift monitoring: the reports of an endpoint's deployments over
time, the latest per deployment, and the plotly figures of the drift page
(docs/serving.md, Drift)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.db.models import OuterRef, Subquery

from deployments import drift
from deployments.drift_models import DriftReport
from deployments.gate_models import ValidationReport
from deployments.gate_selectors import metric_words
from deployments.serving_models import Deployment, Endpoint

# How many reports the page and the API show at most: two weeks of hourly checks.
HISTORY = 24 * 14
# The bottom of a logarithmic PSI axis.
PSI_FLOOR = 0.001
STATUS_ORDER = {"alert": 3, "warn": 2, "ok": 1, "no_data": 0, "": -1}
WARN_COLOR, ALERT_COLOR = "#d97706", "#dc2626"
REFERENCE_COLOR, CURRENT_COLOR = "#64748b", "#2563eb"


def report_status(report: DriftReport | None) -> str:
    """alert: the dataset drifts; warn: some features drift, or warn; ok;
    no_data: nothing could be judged; "" before the first check."""
    if report is None:
        return ""
    if report.judged_features == 0:
        return "no_data"
    if report.dataset_drift:
        return "alert"
    if report.drifted_features or any(f.get("status") == "warn" for f in report.features):
        return "warn"
    return "ok"


def latest_reports(deployments: list[Deployment]) -> dict[int, DriftReport]:
    """The latest report of each deployment, by deployment id (two queries,
    however many deployments and reports)."""
    if not deployments:
        return {}
    latest = (
        DriftReport.objects.filter(deployment=OuterRef("pk"))
        .order_by("-computed_at", "-pk")
        .values("pk")[:1]
    )
    ids = [
        pk
        for pk in Deployment.objects.filter(pk__in=[d.pk for d in deployments])
        .annotate(latest=Subquery(latest))
        .values_list("latest", flat=True)
        if pk is not None
    ]
    reports = DriftReport.objects.filter(pk__in=ids).select_related(
        "model_version__registered_model"
    )
    return {r.deployment_id: r for r in reports}


@dataclass
class Monitor:
    """One endpoint's drift at a glance: the latest report of each deployment."""

    endpoint: Endpoint
    deployments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def model_name(self) -> str:
        return self.endpoint.registered_model.name

    @property
    def status(self) -> str:
        """The worst latest status among the deployments that are running."""
        statuses = [d["status"] for d in self.deployments if d["state"] == "running"]
        return max(statuses, key=lambda s: STATUS_ORDER.get(s, -1)) if statuses else ""

    @property
    def checked_at(self) -> Any:
        times = [d["report"].computed_at for d in self.deployments if d["report"] is not None]
        return max(times) if times else None


def monitors_of(endpoints: list[Endpoint]) -> list[Monitor]:
    """A monitor per endpoint (deployments prefetched, as ``endpoints_of`` does)."""
    latest = latest_reports([d for e in endpoints for d in e.deployments.all()])
    monitors = []
    for endpoint in endpoints:
        monitor = Monitor(endpoint=endpoint)
        for d in endpoint.deployments.all():
            report = latest.get(d.pk)
            monitor.deployments.append(
                {
                    "name": d.name,
                    "state": d.state,
                    "model_version": d.model_version.version,
                    "report": report,
                    "status": report_status(report),
                }
            )
        monitors.append(monitor)
    return monitors


def reports_of(deployment: Deployment, *, limit: int = HISTORY) -> list[DriftReport]:
    """A deployment's latest ``limit`` reports, oldest first (one query)."""
    rows = list(
        DriftReport.objects.filter(deployment=deployment)
        .select_related("model_version")
        .order_by("-computed_at", "-pk")[:limit]
    )
    rows.reverse()
    return rows


def default_deployment(endpoint: Endpoint, chosen: str = "") -> Deployment | None:
    """The deployment asked for, else the one taking most traffic, else the
    first with any report (deployments prefetched)."""
    deployments = list(endpoint.deployments.all())
    by_name = {d.name: d for d in deployments}
    if chosen in by_name:
        return by_name[chosen]
    if endpoint.live in by_name:
        return by_name[endpoint.live]
    return deployments[0] if deployments else None


def feature_names(reports: list[DriftReport]) -> list[str]:
    """The features of the reports, in the latest report's order first."""
    names: list[str] = []
    for report in reversed(reports):
        for f in report.features:
            if f["name"] not in names:
                names.append(f["name"])
    return names


def _threshold_lines(
    *levels: tuple[float, str, str], log: bool = False
) -> tuple[list[Any], list[Any]]:
    """Dashed lines across the chart at each level, labelled (the first at
    the left, the others at the right, so that close levels stay readable).
    On a log axis plotly.js places shapes by the value and notes by its log10."""
    shapes, notes = [], []
    for i, (level, color, text) in enumerate(levels):
        y = math.log10(level) if log else level
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": level,
                "y1": level,
                "line": {"color": color, "dash": "dash", "width": 1.5},
            }
        )
        notes.append(
            {
                "xref": "paper",
                "x": 0 if i == 0 and len(levels) > 1 else 1,
                "y": y,
                "xanchor": "left" if i == 0 and len(levels) > 1 else "right",
                "yanchor": "bottom",
                "text": text,
                "showarrow": False,
                "font": {"color": color, "size": 11},
            }
        )
    return shapes, notes


def _layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "height": 300,
        "margin": {"l": 55, "r": 20, "t": 40, "b": 45},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.25},
        **extra,
    }


def _times(reports: list[DriftReport]) -> list[str]:
    return [r.computed_at.isoformat() for r in reports]


def _psi_axis(values: list[float | None]) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The PSI axis with the warn and alert lines: linear, or logarithmic
    (from 0.001) once a value passes 1, so that the thresholds stay readable
    beside a feature that drifted far."""
    top = max((v for v in values if v is not None), default=0.0)
    log = top > 1
    shapes, notes = _threshold_lines(
        (drift.PSI_WARN, WARN_COLOR, f"warn {drift.PSI_WARN}"),
        (drift.PSI_ALERT, ALERT_COLOR, f"alert {drift.PSI_ALERT}"),
        log=log,
    )
    if log:
        axis = {
            "title": {"text": "PSI (log scale)"},
            "type": "log",
            "range": [math.log10(PSI_FLOOR), math.log10(top) + 0.1],
        }
    else:
        axis = {"title": {"text": "PSI"}, "range": [0, max(0.3, top * 1.1)]}
    return axis, shapes, notes


def share_figure(reports: list[DriftReport]) -> dict[str, Any]:
    """The share of drifted features over time against the dataset threshold."""
    threshold = reports[-1].drift_share if reports else drift.DRIFT_SHARE
    shapes, notes = _threshold_lines((threshold, ALERT_COLOR, f"dataset drifts at {threshold:.0%}"))
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "drifted features",
                "x": _times(reports),
                "y": [r.drifted_share for r in reports],
                "marker": {
                    "color": [ALERT_COLOR if r.dataset_drift else CURRENT_COLOR for r in reports]
                },
                "text": [f"{r.drifted_features} of {r.judged_features}" for r in reports],
                "hovertemplate": "%{x}<br>%{text} features drift<extra></extra>",
            }
        ],
        "layout": _layout(
            "Share of the features that drift",
            "share",
            yaxis={"title": {"text": "share"}, "range": [0, 1.05], "tickformat": ".0%"},
            shapes=shapes,
            annotations=notes,
            showlegend=False,
        ),
    }


def psi_figure(reports: list[DriftReport], chosen: str) -> dict[str, Any]:
    """PSI of every feature over time, the chosen one drawn bold, with the
    warn and alert thresholds."""
    data: list[dict[str, Any]] = []
    every: list[float | None] = []
    for name in feature_names(reports):
        values: list[float | None] = []
        for r in reports:
            found = next((f for f in r.features if f["name"] == name), None)
            values.append(found["psi"] if found else None)
        every.extend(values)
        bold = name == chosen
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if bold else "lines",
                "name": name,
                "x": _times(reports),
                "y": values,
                "line": {"width": 3 if bold else 1},
                "opacity": 1 if bold else 0.45,
            }
        )
    axis, shapes, notes = _psi_axis(every)
    return {
        "data": data,
        "layout": _layout(
            "Drift of each feature (PSI)", "PSI", yaxis=axis, shapes=shapes, annotations=notes
        ),
    }


def prediction_figure(reports: list[DriftReport]) -> dict[str, Any]:
    """PSI of the predictions over time, with the thresholds."""
    values = [(r.prediction or {}).get("psi") for r in reports]
    axis, shapes, notes = _psi_axis(values)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "predictions",
                "x": _times(reports),
                "y": values,
                "line": {"color": "#7c3aed"},
            }
        ],
        "layout": _layout(
            "Drift of the predictions (PSI)",
            "PSI",
            yaxis=axis,
            shapes=shapes,
            annotations=notes,
            showlegend=False,
        ),
    }


def distribution_figure(feature: dict[str, Any] | None, title: str) -> dict[str, Any] | None:
    """The training and the logged shares per bin, side by side; None for a
    report kept before the bins were."""
    if not feature or not feature.get("bins"):
        return None
    data = [
        {
            "type": "bar",
            "name": "training data",
            "x": feature["bins"],
            "y": feature["reference_shares"],
            "marker": {"color": REFERENCE_COLOR},
        }
    ]
    if feature.get("current_shares"):
        data.append(
            {
                "type": "bar",
                "name": "logged requests",
                "x": feature["bins"],
                "y": feature["current_shares"],
                "marker": {"color": CURRENT_COLOR},
            }
        )
    return {
        "data": data,
        "layout": _layout(
            title,
            "share of rows",
            barmode="group",
            yaxis={"title": {"text": "share of rows"}, "tickformat": ".0%"},
            xaxis={"type": "category", "automargin": True},
        ),
    }


def feature_of(report: DriftReport | None, name: str) -> dict[str, Any] | None:
    if report is None:
        return None
    return next((f for f in report.features if f["name"] == name), None)


def labelled_scores(endpoint: Endpoint) -> list[ValidationReport]:
    """The finished validations of the endpoint's deployed versions, oldest
    first: the charter's metric each time labelled data was scored (one query)."""
    versions = [d.model_version_id for d in endpoint.deployments.all()]
    return list(
        ValidationReport.objects.filter(version_id__in=versions, value__isnull=False)
        .select_related("version", "split__parent")
        .order_by("created_at", "pk")[:HISTORY]
    )


def labelled_figure(scores: list[ValidationReport]) -> dict[str, Any] | None:
    """The charter's metric over time on labelled data, one line per version,
    with the charter's threshold."""
    if not scores:
        return None
    latest = scores[-1]
    by_version: dict[int, list[ValidationReport]] = {}
    for score in scores:
        by_version.setdefault(score.version.version, []).append(score)
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"version {number}",
            "x": [s.created_at.isoformat() for s in rows],
            "y": [s.value for s in rows],
            "text": [f"data version {s.split.parent.version}" if s.split else "" for s in rows],
            "hovertemplate": "%{x}<br>%{y:.4f} on %{text}<extra></extra>",
        }
        for number, rows in by_version.items()
    ]
    shapes: list[Any] = []
    notes: list[Any] = []
    if latest.threshold is not None:
        shapes, notes = _threshold_lines(
            (latest.threshold, ALERT_COLOR, f"the charter asks for {latest.threshold}")
        )
    return {
        "data": data,
        "layout": _layout(
            f"{metric_words(latest.metric)} on labelled data",
            latest.metric,
            yaxis={"title": {"text": metric_words(latest.metric)}},
            shapes=shapes,
            annotations=notes,
        ),
    }
