from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from charter.rules import (
    CHARTER_FIELDS,
    METRICS,
    DeploymentMode,
    Direction,
    Metric,
    QuestionType,
    metrics_for,
)

CHARTER_LABELS: dict[str, str] = {
    "business_problem": "Business problem",
    "objective": "Objective",
    "question_type": "Question type",
    "target_variable": "Target variable",
    "success_metric": "Success metric",
    "threshold": "Threshold",
    "direction": "Direction",
    "scope": "Scope",
    "out_of_scope": "Out of scope",
    "data_sources": "Planned data sources",
    "deployment_mode": "Deployment mode",
    "stakeholders": "Stakeholders",
    "cost_ceiling": "Cost ceiling",
}


def _metric_help() -> str:
    lines = []
    for qtype in QuestionType:
        names = ", ".join(m.name for m in metrics_for(qtype.value))
        lines.append(f"{qtype.label.split(' (')[0]}: {names}")
    return "Metrics that fit each question type — " + "; ".join(lines) + "."


def _metric_choice(metric: Metric) -> tuple[str, str]:
    better = "higher" if metric.direction == Direction.HIGHER else "lower"
    return metric.name, f"{metric.label} ({metric.name}), {metric.range_text()}, {better} is better"


def _blank(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("", "—"), *choices]


def _textarea(rows: int = 3) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows})


class CharterForm(forms.Form):
    """The editable fields of a charter, as ``projects.charter_api.CharterInput``
    takes them. A draft may be incomplete; consistency and completeness are
    checked by the charter services, whose messages land on these fields."""

    business_problem = forms.CharField(
        label=CHARTER_LABELS["business_problem"],
        required=False,
        max_length=10000,
        widget=_textarea(),
    )
    objective = forms.CharField(
        label=CHARTER_LABELS["objective"],
        required=False,
        max_length=10000,
        widget=_textarea(2),
        help_text="The decision the model supports.",
    )
    question_type = forms.ChoiceField(
        label=CHARTER_LABELS["question_type"],
        required=False,
        choices=_blank(list(QuestionType.choices)),
    )
    target_variable = forms.CharField(
        label=CHARTER_LABELS["target_variable"],
        required=False,
        max_length=200,
        help_text="The column the model predicts; not needed for clustering or anomaly detection.",
    )
    success_metric = forms.ChoiceField(
        label=CHARTER_LABELS["success_metric"],
        required=False,
        choices=_blank([_metric_choice(m) for m in METRICS.values()]),
        help_text=_metric_help(),
    )
    threshold = forms.FloatField(
        label=CHARTER_LABELS["threshold"],
        required=False,
        help_text="The value a model must reach on the held-out data; "
        "the direction follows from the metric.",
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    scope = forms.CharField(
        label=CHARTER_LABELS["scope"], required=False, max_length=10000, widget=_textarea(2)
    )
    out_of_scope = forms.CharField(
        label=CHARTER_LABELS["out_of_scope"], required=False, max_length=10000, widget=_textarea(2)
    )
    data_sources = forms.CharField(
        label=CHARTER_LABELS["data_sources"],
        required=False,
        widget=_textarea(3),
        help_text="One per line.",
    )
    deployment_mode = forms.ChoiceField(
        label=CHARTER_LABELS["deployment_mode"],
        required=False,
        choices=_blank(list(DeploymentMode.choices)),
    )
    stakeholders = forms.CharField(
        label=CHARTER_LABELS["stakeholders"], required=False, max_length=5000, widget=_textarea(2)
    )
    cost_ceiling = forms.DecimalField(
        label=CHARTER_LABELS["cost_ceiling"],
        required=False,
        max_digits=12,
        decimal_places=2,
        min_value=0,
        help_text="The most the project may spend in all.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_data_sources(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["data_sources"].splitlines()]
        sources = [line for line in lines if line]
        if len(sources) > 100:
            raise forms.ValidationError("At most 100 data sources.")
        too_long = [s for s in sources if len(s) > 300]
        if too_long:
            raise forms.ValidationError(
                f"Keep each source under 300 characters (“{too_long[0][:40]}…” is longer)."
            )
        return sources

    @classmethod
    def initial_from(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Form data for a charter version's values (as ``charter_values`` gives them)."""
        data: dict[str, Any] = {}
        for name in cls.base_fields:
            value = values.get(name)
            if name == "data_sources":
                value = "\n".join(value or [])
            elif name == "threshold" and value is not None:
                value = f"{value:g}"
            data[name] = "" if value is None else value
        return data

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put a service's ValidationError messages on the fields they name."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for field, errors in exc.error_dict.items():
            self.add_error(field if field in self.fields else None, errors)


def charter_display(field: str, value: Any) -> str:
    """One charter value as people read it."""
    if value is None or value == "" or value == []:
        return ""
    if field == "question_type" and value in QuestionType.values:
        return str(QuestionType(value).label)
    if field == "success_metric" and value in METRICS:
        return f"{METRICS[value].label} ({value})"
    if field == "direction" and value in Direction.values:
        return str(Direction(value).label)
    if field == "deployment_mode" and value in DeploymentMode.values:
        return str(DeploymentMode(value).label)
    if field == "data_sources" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if field == "threshold":
        return f"{float(value):g}"
    if field == "cost_ceiling":
        return f"{Decimal(value):,.2f}"
    return str(value)


def charter_rows(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, display value) for every charter field, in page order."""
    return [(CHARTER_LABELS[f], charter_display(f, values.get(f))) for f in CHARTER_FIELDS]
