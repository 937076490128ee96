"""Forms of the gate's pages: run a validation, request a deployment, override."""

from __future__ import annotations

from django import forms

from deployments.gate_models import Rollout, Target


class ValidationForm(forms.Form):
    segments = forms.CharField(
        required=False,
        max_length=1000,
        label="Segment columns",
        help_text="Columns to measure the model per group of, comma-separated (e.g. region).",
    )
    risks = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Risks you know of",
        help_text="What the approvers should know: groups with little data, known blind spots.",
    )


class DeploymentRequestForm(forms.Form):
    target = forms.ChoiceField(
        choices=Target.choices,
        widget=forms.RadioSelect,
        label="Where it runs",
        help_text="Real-time answers one request at a time within a second; batch scores a "
        "whole table on a schedule.",
    )
    rollout = forms.ChoiceField(
        choices=Rollout.choices,
        widget=forms.RadioSelect,
        initial=Rollout.ALL_AT_ONCE,
        label="How it goes live",
        help_text="A canary sends a small share of the traffic to the new version first.",
    )
    canary_percent = forms.IntegerField(
        required=False, min_value=1, max_value=50, label="Canary share (%)"
    )
    baking_minutes = forms.IntegerField(
        required=False,
        min_value=5,
        label="Baking period (minutes)",
        help_text="How long the canary runs before all traffic moves.",
    )
    reason = forms.CharField(
        max_length=5000, widget=forms.Textarea(attrs={"rows": 3}), label="Why this version"
    )
    user_impact = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="What changes for users",
        help_text="In words the business reads: who sees a difference, and which.",
    )


class OverrideForm(forms.Form):
    justification = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Why it may go on despite its validation",
    )
