"""Reads of the gate's pages and API: reports, requests, and the evidence
an approver reads (charter, champion, segments, lineage, cost)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from charter.rules import METRICS
from deployments.gate import blocked_because, monthly_cost
from deployments.gate_models import DeploymentRequest, ValidationReport
from experiments.models import ModelVersion
from projects.models import Project


def model_version(project: Project, name: str, version: int) -> ModelVersion:
    found = (
        ModelVersion.objects.select_related("registered_model", "run")
        .filter(registered_model__project=project, registered_model__name=name, version=version)
        .first()
    )
    if found is None:
        raise Http404("No such model version.")
    return found


def reports_of(version: ModelVersion) -> QuerySet[ValidationReport]:
    return ValidationReport.objects.filter(version=version).select_related(
        "requested_by", "champion"
    )


def report_get(project: Project, pk: int) -> ValidationReport:
    found = (
        ValidationReport.objects.select_related(
            "version__registered_model", "champion", "requested_by", "job", "split__parent__source"
        )
        .filter(project=project, pk=pk)
        .first()
    )
    if found is None:
        raise Http404("No such validation report.")
    return found


def requests_of(project: Project) -> QuerySet[DeploymentRequest]:
    return DeploymentRequest.objects.filter(project=project).select_related(
        "version__registered_model", "requested_by", "report"
    )


def request_get(project: Project, pk: int) -> DeploymentRequest:
    found = (
        requests_of(project)
        .select_related(
            "report__champion",
            "report__split__parent__source",
            "size",
            "override_by",
            "previous_champion",
        )
        .filter(pk=pk)
        .first()
    )
    if found is None:
        raise Http404("No such deployment request.")
    return found


def metric_words(metric: str) -> str:
    known = METRICS.get(metric)
    return known.label if known else metric


METRIC_EXPLAINED = {
    "roc_auc": "how well the model ranks the cases that happen above those that do not "
    "(0.5 is a coin toss, 1 is perfect)",
    "accuracy": "the share of predictions that are right",
    "f1": "a balance of how many flagged cases are real and how many real cases are flagged",
    "precision": "of the cases the model flags, the share that are real",
    "recall": "of the real cases, the share the model flags",
    "log_loss": "how confident and right the predicted probabilities are (lower is better)",
    "rmse": "the typical size of an error, in the target's unit (lower is better)",
    "mae": "the average size of an error, in the target's unit (lower is better)",
    "mape": "the average error as a share of the true value (lower is better)",
    "r2": "the share of the target's variation the model explains (1 is perfect)",
}


def evidence_figures(report: ValidationReport) -> dict[str, Any]:
    """Plotly figures: the result against threshold and champion; segments."""
    label = metric_words(report.metric)
    names, values, colors = [], [], []
    if report.value is not None:
        names.append(f"This version (v{report.version.version})")
        values.append(report.value)
        colors.append("#2563eb")
    if report.champion_value is not None and report.champion is not None:
        names.append(f"Champion today (v{report.champion.version})")
        values.append(report.champion_value)
        colors.append("#9ca3af")
    shapes = []
    if report.threshold is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": report.threshold,
                "y1": report.threshold,
                "line": {"color": "#dc2626", "dash": "dash"},
            }
        )
    layout = {
        "height": 280,
        "margin": {"l": 50, "r": 10, "t": 30, "b": 40},
        "yaxis": {"title": label},
        "shapes": shapes,
        "annotations": (
            [
                {
                    "xref": "paper",
                    "x": 1,
                    "y": report.threshold,
                    "text": f"charter threshold {report.threshold:g}",
                    "showarrow": False,
                    "yshift": 10,
                    "xanchor": "right",
                }
            ]
            if report.threshold is not None
            else []
        ),
    }
    comparison = {
        "data": [{"type": "bar", "x": names, "y": values, "marker": {"color": colors}}],
        "layout": layout,
    }
    segments: list[dict[str, Any]] = []
    for column in report.segments:
        rows = [r for r in column.get("rows", []) if r.get("metric") is not None]
        if not rows:
            continue
        segments.append(
            {
                "data_id": f"fig-seg-{len(segments) + 1}",
                "column": column["column"],
                "gap": column.get("gap"),
                "figure": {
                    "data": [
                        {
                            "type": "bar",
                            "x": [f"{r['value']} ({r['rows']} rows)" for r in rows],
                            "y": [r["metric"] for r in rows],
                            "marker": {"color": "#2563eb"},
                        }
                    ],
                    "layout": {
                        "height": 240,
                        "margin": {"l": 50, "r": 10, "t": 20, "b": 60},
                        "yaxis": {"title": label},
                        "shapes": shapes,
                    },
                },
            }
        )
    return {"comparison": comparison, "segments": segments}


def request_evidence(request: DeploymentRequest) -> dict[str, Any]:
    report = request.report
    cost = monthly_cost(request.size, request.target)
    return {
        "report": report,
        "metric_label": metric_words(report.metric) if report else "",
        "metric_explained": METRIC_EXPLAINED.get(report.metric, "") if report else "",
        "figures": evidence_figures(report) if report else None,
        "monthly_cost": cost,
        "hourly": request.size.hourly_price.quantize(Decimal("0.01")) if request.size else None,
        "blocked_because": blocked_because(request) if request.state == "blocked" else "",
        "lineage": lineage(report),
    }


def lineage(report: ValidationReport | None) -> list[tuple[str, str]]:
    """From the version back to the source snapshot, with digests."""
    if report is None or report.split is None:
        return []
    split = report.split
    snapshot = split.parent
    return [
        (
            "Source",
            f"{snapshot.source.name}, version {snapshot.version} ({snapshot.rows} rows), "
            f"digest {report.snapshot_digest[:12]}",
        ),
        (
            "Split",
            f"split {split.number}: {split.train_rows} rows to learn from "
            f"(digest {report.train_digest[:12]}), {split.test_rows} held back to test "
            f"(digest {report.test_digest[:12]})",
        ),
        ("Model files", f"digest {report.model_digest[:12] or '—'}"),
        ("Validation code", f"digest {report.code_digest[:12]}"),
    ]
