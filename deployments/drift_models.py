"""Drift checks of running deployments: one row per check (docs/serving.md, Drift)."""

from __future__ import annotations

from django.db import models

from deployments.serving_models import Deployment

__all__ = ["DriftReport"]


class DriftReport(models.Model):
    """What ``deployments.drift`` found in one window of a deployment's sample log."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="drift_reports"
    )
    model_version = models.ForeignKey(
        "experiments.ModelVersion", on_delete=models.CASCADE, related_name="drift_reports"
    )
    # The training part the window was compared with.
    train_sha256 = models.CharField(max_length=64)
    computed_at = models.DateTimeField(auto_now_add=True)
    reference_rows = models.BigIntegerField()
    current_rows = models.BigIntegerField()
    judged_features = models.PositiveIntegerField()
    drifted_features = models.PositiveIntegerField()
    drifted_share = models.FloatField()
    drift_share = models.FloatField()
    dataset_drift = models.BooleanField()
    prediction_status = models.CharField(max_length=10, blank=True)
    # Per feature: the fields of deployments.drift.FeatureDrift.
    features = models.JSONField(default=list)
    prediction = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-computed_at", "-pk"]
        indexes = [
            models.Index(fields=["deployment", "-computed_at"], name="driftreport_dep_time"),
        ]

    def __str__(self) -> str:
        return f"drift of {self.deployment_id} at {self.computed_at:%Y-%m-%d %H:%M}"
