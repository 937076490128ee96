"""What a charter may say: question types, the metrics that fit each, their
ranges and directions. Validation of a charter's content lives here too."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import models


class QuestionType(models.TextChoices):
    REGRESSION = "regression", "Regression (how much / how many?)"
    CLASSIFICATION = "classification", "Classification (which category?)"
    CLUSTERING = "clustering", "Clustering (which group?)"
    ANOMALY_DETECTION = "anomaly_detection", "Anomaly detection (is this unusual?)"
    RECOMMENDATION = "recommendation", "Recommendation (which option?)"


class Direction(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


class DeploymentMode(models.TextChoices):
    BATCH = "batch", "Batch scoring"
    REALTIME = "realtime", "Real-time endpoint"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    question_types: frozenset[str]
    low: float
    high: float
    direction: str

    def in_range(self, value: float) -> bool:
        return self.low <= value <= self.high

    def range_text(self) -> str:
        low = "−∞" if math.isinf(self.low) else f"{self.low:g}"
        high = "∞" if math.isinf(self.high) else f"{self.high:g}"
        return f"[{low}, {high}]"


_C, _R, _CL, _A, _REC = (
    QuestionType.CLASSIFICATION,
    QuestionType.REGRESSION,
    QuestionType.CLUSTERING,
    QuestionType.ANOMALY_DETECTION,
    QuestionType.RECOMMENDATION,
)
INF = math.inf
METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", "Accuracy", frozenset({_C}), 0, 1, Direction.HIGHER),
        Metric("f1", "F1 score", frozenset({_C, _A}), 0, 1, Direction.HIGHER),
        Metric("roc_auc", "ROC AUC", frozenset({_C, _A}), 0, 1, Direction.HIGHER),
        Metric("precision", "Precision", frozenset({_C, _A}), 0, 1, Direction.HIGHER),
        Metric("recall", "Recall", frozenset({_C, _A}), 0, 1, Direction.HIGHER),
        Metric("log_loss", "Log loss", frozenset({_C}), 0, INF, Direction.LOWER),
        Metric("rmse", "Root mean squared error", frozenset({_R}), 0, INF, Direction.LOWER),
        Metric("mae", "Mean absolute error", frozenset({_R}), 0, INF, Direction.LOWER),
        Metric("mape", "Mean absolute percentage error", frozenset({_R}), 0, INF, Direction.LOWER),
        Metric("r2", "R²", frozenset({_R}), -INF, 1, Direction.HIGHER),
        Metric("silhouette", "Silhouette score", frozenset({_CL}), -1, 1, Direction.HIGHER),
        Metric("davies_bouldin", "Davies–Bouldin index", frozenset({_CL}), 0, INF, Direction.LOWER),
        Metric("precision_at_k", "Precision at k", frozenset({_REC}), 0, 1, Direction.HIGHER),
        Metric("recall_at_k", "Recall at k", frozenset({_REC}), 0, 1, Direction.HIGHER),
        Metric("ndcg_at_k", "NDCG at k", frozenset({_REC}), 0, 1, Direction.HIGHER),
    ]
}
METRIC_CHOICES = [(m.name, m.label) for m in METRICS.values()]

# Question types whose models predict a target column.
SUPERVISED = frozenset({_R, _C, _REC})

# Every field a charter version holds, in the order pages show them.
CHARTER_FIELDS = [
    "business_problem",
    "objective",
    "question_type",
    "target_variable",
    "success_metric",
    "threshold",
    "direction",
    "scope",
    "out_of_scope",
    "data_sources",
    "deployment_mode",
    "stakeholders",
    "cost_ceiling",
]
EDITABLE_FIELDS = [f for f in CHARTER_FIELDS if f != "direction"]
REQUIRED_TO_SUBMIT = [
    "business_problem",
    "objective",
    "question_type",
    "success_metric",
    "threshold",
    "scope",
    "deployment_mode",
]


def metrics_for(question_type: str) -> list[Metric]:
    return [m for m in METRICS.values() if question_type in m.question_types]


def charter_errors(values: dict[str, Any], *, complete: bool) -> dict[str, list[str]]:
    """Messages per field for a charter's content; empty when it is consistent.

    ``complete`` also asks for every field a submitted charter needs.
    """
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    qtype = values.get("question_type") or ""
    metric_name = values.get("success_metric") or ""
    threshold = values.get("threshold")
    if qtype and qtype not in QuestionType.values:
        add("question_type", f"Unknown question type {qtype!r}.")
    metric = METRICS.get(metric_name)
    if metric_name and metric is None:
        add("success_metric", f"Unknown metric {metric_name!r}.")
    if metric and qtype in QuestionType.values and qtype not in metric.question_types:
        fitting = ", ".join(m.name for m in metrics_for(qtype))
        add(
            "success_metric",
            f"{metric.label} does not measure {QuestionType(qtype).label.split(' (')[0].lower()}; "
            f"choose one of: {fitting}.",
        )
    if threshold is not None and metric is not None:
        if isinstance(threshold, float) and math.isnan(threshold):
            add("threshold", "The threshold must be a number.")
        elif not metric.in_range(float(threshold)):
            add(
                "threshold",
                f"{metric.label} lies in {metric.range_text()}; {threshold:g} is outside it.",
            )
    if complete:
        for field in REQUIRED_TO_SUBMIT:
            value = values.get(field)
            if value is None or value == "" or value == []:
                add(field, "Required before the charter can be submitted.")
        if qtype in SUPERVISED and not values.get("target_variable"):
            add("target_variable", "A supervised question needs a target variable.")
        if threshold is not None and metric is None and not metric_name:
            add("success_metric", "Choose the metric the threshold applies to.")
    return errors
