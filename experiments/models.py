"""Experiment tracking (the MLflow data model) and the model registry.

Times are milliseconds since the epoch, as MLflow's protocol has them. Metric
points live in one narrow table keyed by small integers (``MetricKey``);
``LatestMetric`` keeps each run's latest value per key for search and sort.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from projects.models import Project


class Lifecycle(models.TextChoices):
    ACTIVE = "active", "Active"
    DELETED = "deleted", "Deleted"


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    SCHEDULED = "SCHEDULED", "Scheduled"
    FINISHED = "FINISHED", "Finished"
    FAILED = "FAILED", "Failed"
    KILLED = "KILLED", "Killed"


def new_run_uuid() -> str:
    return uuid.uuid4().hex


class Experiment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=500)
    lifecycle_stage = models.CharField(
        max_length=10, choices=Lifecycle.choices, default=Lifecycle.ACTIVE
    )
    artifact_location = models.CharField(max_length=1000, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    creation_time = models.BigIntegerField()
    last_update_time = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="experiment_unique_name"),
        ]
        ordering = ["-creation_time", "-id"]

    def __str__(self) -> str:
        return self.name


class Run(models.Model):
    uuid = models.CharField(max_length=32, unique=True, default=new_run_uuid)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_id_text = models.CharField(max_length=250, blank=True)
    name = models.CharField(max_length=250, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    start_time = models.BigIntegerField(null=True)
    end_time = models.BigIntegerField(null=True)
    deleted_time = models.BigIntegerField(null=True)
    lifecycle_stage = models.CharField(
        max_length=10, choices=Lifecycle.choices, default=Lifecycle.ACTIVE
    )
    artifact_uri = models.CharField(max_length=1000, blank=True)

    class Meta:
        indexes = [models.Index(fields=["experiment", "start_time"])]

    def __str__(self) -> str:
        return self.name or self.uuid


class Param(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="param_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="runtag_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class MetricKey(models.Model):
    """A metric name, stored once; points refer to it by a small integer."""

    name = models.CharField(max_length=250, unique=True)

    def __str__(self) -> str:
        return self.name


class Metric(models.Model):
    """One metric point. Values may be NaN or ±Infinity, as MLflow allows."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    key = models.ForeignKey(MetricKey, on_delete=models.PROTECT, related_name="+")
    step = models.BigIntegerField()
    timestamp = models.BigIntegerField()
    value = models.FloatField()

    class Meta:
        indexes = [
            models.Index(fields=["run", "key", "step"]),
            # A run's min and max of a metric by two index probes, and its history
            # bucketed from the index alone (the comparison page).
            models.Index(
                fields=["run", "key", "value"], include=["step"], name="metric_minmax_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key_id}@{self.step}={self.value}"


class LatestMetric(models.Model):
    """A run's latest point per key (highest step, then timestamp, then value),
    with the lowest and highest value the key ever had (``NaN`` left out;
    null when every point was ``NaN``), kept by the same write, so that the
    comparison page reads one row per run and metric, not the history."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="latest_metrics")
    key = models.ForeignKey(MetricKey, on_delete=models.PROTECT, related_name="+")
    step = models.BigIntegerField()
    timestamp = models.BigIntegerField()
    value = models.FloatField()
    low = models.FloatField(null=True)
    high = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="latestmetric_unique_key"),
        ]
        indexes = [models.Index(fields=["key", "value"])]

    def __str__(self) -> str:
        return f"{self.key_id}={self.value}"


class RunInput(models.Model):
    """A dataset a run used (``log-inputs``); the digest ties it to a snapshot."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="inputs")
    name = models.CharField(max_length=500)
    digest = models.CharField(max_length=64)
    source_type = models.CharField(max_length=36)
    source = models.TextField()
    schema = models.TextField(blank=True)
    profile = models.TextField(blank=True)
    context = models.CharField(max_length=250, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "name", "digest", "context"], name="runinput_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.digest})"


class LoggedModelStatus(models.TextChoices):
    PENDING = "LOGGED_MODEL_PENDING", "Pending"
    READY = "LOGGED_MODEL_READY", "Ready"
    FAILED = "LOGGED_MODEL_UPLOAD_FAILED", "Upload failed"


class LoggedModel(models.Model):
    """A model logged by ``mlflow.<flavor>.log_model`` (MLflow 3)."""

    model_id = models.CharField(max_length=40, unique=True)
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="logged_models"
    )
    name = models.CharField(max_length=250)
    source_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="logged_models"
    )
    model_type = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=30, choices=LoggedModelStatus.choices, default=LoggedModelStatus.PENDING
    )
    status_message = models.TextField(blank=True)
    artifact_location = models.CharField(max_length=1000)
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    tags = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    lifecycle_stage = models.CharField(
        max_length=10, choices=Lifecycle.choices, default=Lifecycle.ACTIVE
    )
    creation_time = models.BigIntegerField()
    last_update_time = models.BigIntegerField()

    def __str__(self) -> str:
        return self.model_id


class RegisteredModel(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="registered_models")
    name = models.CharField(max_length=256)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    creation_time = models.BigIntegerField()
    last_update_time = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="registeredmodel_unique"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.PositiveIntegerField()
    source = models.CharField(max_length=1000)
    # Where the files are (an ``mlflow-artifacts:/`` URI of this project).
    storage_location = models.CharField(max_length=1000)
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )
    logged_model = models.ForeignKey(
        LoggedModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="versions"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    description = models.TextField(blank=True)
    run_link = models.CharField(max_length=500, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    current_stage = models.CharField(max_length=20, default="None")
    creation_time = models.BigIntegerField()
    last_update_time = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["registered_model", "version"], name="modelversion_unique"
            ),
        ]
        ordering = ["registered_model", "-version"]

    def __str__(self) -> str:
        return f"{self.registered_model_id} v{self.version}"


class ModelAlias(models.Model):
    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="aliases"
    )
    alias = models.CharField(max_length=256)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "alias"], name="alias_unique"),
        ]

    def __str__(self) -> str:
        return self.alias


from experiments.job_models import Job, JobKind, JobState  # noqa: E402, F401  (training jobs)
from experiments.sweep_models import Sweep, SweepKind  # noqa: E402, F401  (sweeps and AutoML)
