"""Real-time serving: endpoints, their deployments (blue/green) and traffic.

An ``Endpoint`` serves one registered model of a project at one address; its
key is kept as sha256 only (shown once, when issued). Behind it are at most
two ``Deployment`` rows, ``blue`` and ``green``, each one model version in a
scoring process (local) or a managed online deployment (Azure ML). The split
(``traffic``) and the mirrored share (``mirror``) are percentages per
deployment name; ``previous`` names the deployment that had all the traffic
before the latest rollout, where a rollback sends it back.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from background.models import Leased
from compute.models import ComputeSize

__all__ = [
    "Deployment",
    "DeploymentHealth",
    "DeploymentState",
    "Endpoint",
    "EndpointState",
    "RolloutState",
]


class EndpointState(models.TextChoices):
    CREATING = "creating", "Being created"
    RUNNING = "running", "Running"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


class RolloutState(models.TextChoices):
    NONE = "none", "No rollout"
    STARTING = "starting", "Starting the new deployment"
    BAKING = "baking", "Canary baking"
    PROMOTED = "promoted", "Promoted"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed to start"


class Endpoint(models.Model):
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="endpoints"
    )
    registered_model = models.ForeignKey(
        "experiments.RegisteredModel", on_delete=models.PROTECT, related_name="endpoints"
    )
    name = models.SlugField(max_length=60)
    provider = models.CharField(max_length=20)
    provider_name = models.CharField(max_length=64, blank=True)
    state = models.CharField(
        max_length=20, choices=EndpointState.choices, default=EndpointState.CREATING
    )
    scoring_url = models.CharField(max_length=500, blank=True)
    # sha256 (hex) of the key; the key itself is shown once when issued.
    key_sha256 = models.CharField(max_length=64)
    key_prefix = models.CharField(max_length=12, blank=True)
    key_issued_at = models.DateTimeField(null=True, blank=True)
    traffic = models.JSONField(default=dict, blank=True)
    mirror = models.JSONField(default=dict, blank=True)
    previous = models.CharField(max_length=10, blank=True)
    rollout = models.CharField(
        max_length=20, choices=RolloutState.choices, default=RolloutState.NONE
    )
    canary_percent = models.PositiveSmallIntegerField(default=0)
    bake_minutes = models.PositiveIntegerField(default=30)
    bake_until = models.DateTimeField(null=True, blank=True)
    sample_rate = models.FloatField(default=0.1)
    # Columns never written to the sampled request log.
    sensitive_columns = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="endpoint_unique_name"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def live(self) -> str:
        """The deployment with the largest share of traffic ("" for none)."""
        shares = {k: v for k, v in self.traffic.items() if v > 0}
        return max(shares, key=lambda k: shares[k]) if shares else ""


class DeploymentState(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class DeploymentHealth(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    HEALTHY = "healthy", "Healthy"
    FAILING = "failing", "Failing"


# States in which a deployment holds compute (counted against the quotas).
HOLDING_STATES = frozenset(
    {
        DeploymentState.PENDING,
        DeploymentState.STARTING,
        DeploymentState.RUNNING,
        DeploymentState.STOPPING,
    }
)


class Deployment(Leased):
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=10)  # blue or green
    model_version = models.ForeignKey(
        "experiments.ModelVersion", on_delete=models.PROTECT, related_name="deployments"
    )
    size = models.ForeignKey(ComputeSize, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(
        max_length=20, choices=DeploymentState.choices, default=DeploymentState.PENDING
    )
    health = models.CharField(
        max_length=20, choices=DeploymentHealth.choices, default=DeploymentHealth.UNKNOWN
    )
    health_failures = models.PositiveIntegerField(default=0)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When the provider was first asked to start it: the ready timeout counts
    # from here, across the tasks that watch it become healthy.
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "name"], name="deployment_unique_name"),
        ]
        ordering = ["endpoint", "name"]

    def __str__(self) -> str:
        return f"{self.endpoint_id}/{self.name}"
