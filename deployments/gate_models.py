"""Validation reports of model versions and deployment requests (the gate).

A ``ValidationReport`` is evidence computed by the portal: a validation job
scores the version on the held-out part of its split, beside the champion,
per segment, and checks that it loads and answers in a clean process. A
``DeploymentRequest`` goes through the two-step governance chain (validator,
then business approver); a failed or missing validation blocks it until a
platform admin overrides with a written justification.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from projects.models import Project

__all__ = [
    "DeploymentRequest",
    "RequestState",
    "Rollout",
    "Target",
    "ValidationReport",
    "ValidationState",
]


class ValidationState(models.TextChoices):
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Could not be computed"


class ValidationReport(models.Model):
    """The model report of one validation run of a version (TDSP's model report)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(
        "experiments.ModelVersion", on_delete=models.CASCADE, related_name="validation_reports"
    )
    job = models.ForeignKey(
        "experiments.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    split = models.ForeignKey(
        "datasets.Split", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(
        max_length=20, choices=ValidationState.choices, default=ValidationState.RUNNING
    )
    # What the requester asked for and noted.
    segment_columns = models.JSONField(default=list, blank=True)
    risks = models.TextField(blank=True)
    # The charter the version is measured against.
    charter_version = models.PositiveIntegerField(null=True, blank=True)
    question = models.TextField(blank=True)
    metric = models.CharField(max_length=30, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    direction = models.CharField(max_length=10, blank=True)
    # The result.
    value = models.FloatField(null=True, blank=True)
    meets_threshold = models.BooleanField(null=True, blank=True)
    champion = models.ForeignKey(
        "experiments.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    champion_value = models.FloatField(null=True, blank=True)
    beats_champion = models.BooleanField(null=True, blank=True)
    segments = models.JSONField(default=list, blank=True)
    segment_gap = models.FloatField(null=True, blank=True)
    integration = models.JSONField(default=dict, blank=True)
    integration_ok = models.BooleanField(null=True, blank=True)
    approach = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # Inputs pinned by digest.
    snapshot_digest = models.CharField(max_length=64, blank=True)
    train_digest = models.CharField(max_length=64, blank=True)
    test_digest = models.CharField(max_length=64, blank=True)
    model_digest = models.CharField(max_length=64, blank=True)
    champion_digest = models.CharField(max_length=64, blank=True)
    code_digest = models.CharField(max_length=64, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["version", "-created_at"], name="validation_version_new")]

    def __str__(self) -> str:
        return f"validation {self.pk} of {self.version_id} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state != ValidationState.RUNNING

    @property
    def metric_label(self) -> str:
        """The metric as people read it ("ROC AUC" for ``roc_auc``)."""
        from charter.rules import METRICS

        known = METRICS.get(self.metric)
        return known.label if known else self.metric


class Target(models.TextChoices):
    REALTIME = "realtime", "Real-time endpoint"
    BATCH = "batch", "Batch scoring"


class Rollout(models.TextChoices):
    ALL_AT_ONCE = "all_at_once", "All at once"
    CANARY = "canary", "Canary"


class RequestState(models.TextChoices):
    BLOCKED = "blocked", "Blocked: validation not passed"
    PENDING = "pending", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class DeploymentRequest(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    # A deleted version takes its requests along; the audit trail keeps them.
    version = models.ForeignKey(
        "experiments.ModelVersion", on_delete=models.CASCADE, related_name="deployment_requests"
    )
    report = models.ForeignKey(
        ValidationReport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    target = models.CharField(max_length=20, choices=Target.choices)
    rollout = models.CharField(max_length=20, choices=Rollout.choices)
    canary_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    baking_minutes = models.PositiveIntegerField(null=True, blank=True)
    size = models.ForeignKey(
        "compute.ComputeSize", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    user_impact = models.TextField(blank=True)
    state = models.CharField(max_length=20, choices=RequestState.choices)
    approval = models.ForeignKey(
        "governance.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    override_justification = models.TextField(blank=True)
    override_at = models.DateTimeField(null=True, blank=True)
    previous_champion = models.ForeignKey(
        "experiments.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="deployment_project_new")]

    def __str__(self) -> str:
        return f"deployment request {self.pk} ({self.state})"
