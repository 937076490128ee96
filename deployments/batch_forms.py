"""The form of the page that starts a batch scoring."""

from __future__ import annotations

from typing import Any

from django import forms

from datasets.models import DataSource, Snapshot
from deployments import batch_selectors as sel
from deployments.batch_models import BatchSchedule
from experiments.models import ModelVersion
from projects.models import Project


class BatchScoringForm(forms.Form):
    version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        label="Model version",
        help_text="Only versions whose batch deployment request was approved.",
    )
    snapshot = forms.ModelChoiceField(
        queryset=Snapshot.objects.none(),
        required=False,
        label="Snapshot to score",
        empty_label="The latest snapshot of the source the version was trained from",
    )
    output_table = forms.CharField(
        max_length=100,
        label="Output table",
        help_text="Lower-case letters, digits and underscores (e.g. churn_scores).",
    )
    reporting_source = forms.ModelChoiceField(
        queryset=DataSource.objects.none(),
        required=False,
        label="Reporting database",
        empty_label="The project's embedded SQLite file",
    )
    schedule = forms.ChoiceField(choices=BatchSchedule.choices, initial=BatchSchedule.NONE)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields: Any = self.fields
        fields["version"].queryset = sel.approved_versions(project)
        fields["version"].label_from_instance = lambda v: (
            f"{v.registered_model.name} version {v.version}"
        )
        fields["snapshot"].queryset = sel.snapshots_of(project)
        fields["snapshot"].label_from_instance = lambda s: (
            f"{s.source.name} version {s.version} ({s.rows} rows)"
        )
        fields["reporting_source"].queryset = sel.reporting_sources(project)
        fields["reporting_source"].label_from_instance = lambda s: f"PostgreSQL: {s.name}"
