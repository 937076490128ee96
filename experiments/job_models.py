"""Training jobs: code, inputs, a command and limits, run on the project's compute.

A job logs into one run of the project's tracking; its state moves through
``experiments.jobs`` (each change a service call and an audit event), and the
slow parts are tasks on the ``training`` queue that hold the row's lease
(``background.models.Leased``).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from background.models import Leased
from projects.models import Project


class JobKind(models.TextChoices):
    TEMPLATE = "template", "Built-in template"
    REPOSITORY = "repository", "Git repository"
    ARCHIVE = "archive", "Uploaded archive"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    WAITING_FOR_COMPUTE = "waiting_for_compute", "Waiting for compute"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Job(Leased):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    run = models.ForeignKey(
        "experiments.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=JobKind.choices, default=JobKind.TEMPLATE)
    template = models.CharField(max_length=60, blank=True)
    # The sha256 of the job's code as a canonical archive (experiments.job_code);
    # blank for a repository job until the worker has fetched it.
    code_digest = models.CharField(max_length=64, blank=True)
    repository_url = models.CharField(max_length=500, blank=True)
    repository_ref = models.CharField(max_length=255, blank=True)
    repository_commit = models.CharField(max_length=40, blank=True)
    command = models.TextField()
    requirements = models.JSONField(default=list, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    snapshot = models.ForeignKey(
        "datasets.Snapshot", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    split = models.ForeignKey(
        "datasets.Split", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    size = models.ForeignKey("compute.ComputeSize", on_delete=models.PROTECT, related_name="+")
    wall_clock_max_seconds = models.PositiveIntegerField(default=3600)
    provider = models.CharField(max_length=20)
    provider_name = models.CharField(max_length=255, blank=True)
    # Whether the provider holds the job (submitted once; a redelivered task
    # polls instead of submitting again).
    submitted = models.BooleanField(default=False)
    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.QUEUED)
    state_reason = models.CharField(max_length=500, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    task_id = models.CharField(max_length=255, blank=True)
    approval = models.ForeignKey(
        "governance.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    quota_exceeded = models.JSONField(default=list, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    log_tail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0))

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "state"], name="job_project_state")]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.name})"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def wall_clock_max_minutes(self) -> int:
        return self.wall_clock_max_seconds // 60

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())
