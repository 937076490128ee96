"""Batch scoring: a model version scores a snapshot into the reporting database.

A ``BatchScoring`` names a version with an approved batch deployment request,
the snapshot it scores, and the table of the project's reporting database
its predictions land in (a PostgreSQL source of the project, or an embedded
SQLite file by default). It runs as a job on the project's compute; the
worker then writes the job's predictions into the table, replacing the rows
of this scoring (docs/serving.md, Batch scoring). Its lease is that of the
work after the job was created: watching the job, then writing the rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from background.models import Leased

__all__ = ["BatchSchedule", "BatchScoring", "BatchState"]


class BatchState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Scoring"
    WRITING = "writing", "Writing the rows"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (BatchState.QUEUED, BatchState.RUNNING, BatchState.WRITING)


class BatchSchedule(models.TextChoices):
    NONE = "none", "Once"
    DAILY = "daily", "Daily"


class BatchScoring(Leased):
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="batch_scorings"
    )
    version = models.ForeignKey(
        "experiments.ModelVersion", on_delete=models.CASCADE, related_name="batch_scorings"
    )
    # The approved batch deployment request it relies on.
    deployment_request = models.ForeignKey(
        "deployments.DeploymentRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batch_scorings",
    )
    snapshot = models.ForeignKey(
        "datasets.Snapshot", on_delete=models.PROTECT, related_name="batch_scorings"
    )
    snapshot_digest = models.CharField(max_length=64)
    output_table = models.CharField(max_length=63)
    # A PostgreSQL source of the project; blank: the embedded SQLite file.
    reporting_source = models.ForeignKey(
        "datasets.DataSource",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="batch_scorings",
    )
    schedule = models.CharField(
        max_length=10, choices=BatchSchedule.choices, default=BatchSchedule.NONE
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=BatchState.choices, default=BatchState.QUEUED)
    job = models.ForeignKey(
        "experiments.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    runs = models.PositiveIntegerField(default=0)
    rows_written = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="batchscoring_project_new"),
            models.Index(fields=["schedule", "next_run_at"], name="batchscoring_due"),
        ]

    def __str__(self) -> str:
        return f"batch scoring {self.pk} ({self.state})"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def reporting_label(self) -> str:
        if self.reporting_source is not None:
            return f"PostgreSQL source “{self.reporting_source.name}”"
        return "the project's embedded SQLite reporting file"
