"""Sweeps and AutoML runs: each is carried out by one training job.

The job (``experiments.job_models.Job``) holds the state, the compute, the
quota and the run; a ``Sweep`` row says what kind of search the job runs and
keeps its checked configuration. The trials are the child runs of the job's
run (tag ``mlflow.parentRunId``).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from projects.models import Project


class SweepKind(models.TextChoices):
    SWEEP = "sweep", "Sweep"
    AUTOML = "automl", "AutoML"


class Sweep(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sweeps")
    job = models.OneToOneField("experiments.Job", on_delete=models.CASCADE, related_name="sweep")
    kind = models.CharField(max_length=10, choices=SweepKind.choices)
    config = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "kind"], name="sweep_project_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk}"
