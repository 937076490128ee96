"""Workspaces (notebooks and compute clusters) and their idle shutdowns."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from compute.models import ComputeSize


class WorkspaceKind(models.TextChoices):
    NOTEBOOK = "notebook", "Notebook workspace"
    CLUSTER = "cluster", "Compute cluster"


class WorkspaceState(models.TextChoices):
    REQUESTED = "requested", "Requested"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved", "Approved"
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    RESIZING = "resizing", "Resizing"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


# States in which a workspace holds (or is about to hold) compute: they count
# against the quotas.
ACTIVE_STATES = frozenset(
    {
        WorkspaceState.APPROVED,
        WorkspaceState.PROVISIONING,
        WorkspaceState.RUNNING,
        WorkspaceState.STOPPING,
        WorkspaceState.RESIZING,
    }
)
# States a Celery task (or an admin) is working on; the page polls while in one of them.
BUSY_STATES = frozenset(
    {
        WorkspaceState.REQUESTED,
        WorkspaceState.PENDING_APPROVAL,
        WorkspaceState.APPROVED,
        WorkspaceState.PROVISIONING,
        WorkspaceState.STOPPING,
        WorkspaceState.RESIZING,
        WorkspaceState.DELETING,
    }
)


class Workspace(models.Model):
    """A notebook workspace or a compute cluster requested for a project.

    The provider knows it as ``workspace_name(pk)`` / ``cluster_name(pk)``.
    ``task_id`` is the Celery task that claimed the current transitional
    state; ``attempts`` counts deliveries that called the provider for it.
    """

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="workspaces"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="workspaces"
    )
    name = models.CharField(max_length=60)
    kind = models.CharField(
        max_length=10, choices=WorkspaceKind.choices, default=WorkspaceKind.NOTEBOOK
    )
    provider = models.CharField(max_length=20)
    size = models.ForeignKey(ComputeSize, on_delete=models.PROTECT, related_name="+")
    requested_size = models.ForeignKey(
        ComputeSize, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(
        max_length=20,
        choices=WorkspaceState.choices,
        default=WorkspaceState.REQUESTED,
        db_index=True,
    )
    # Why it failed, stopped or was rejected, in words the user reads.
    state_reason = models.CharField(max_length=500, blank=True)
    idle_shutdown_seconds = models.PositiveIntegerField(default=3600)
    allowed_ips = models.JSONField(default=list, blank=True)
    min_nodes = models.PositiveIntegerField(default=0)
    max_nodes = models.PositiveIntegerField(default=1)
    url = models.CharField(max_length=500, blank=True)  # holds the notebook token: owner only
    approval = models.ForeignKey(
        "governance.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # What the request exceeded when an admin had to decide it.
    quota_exceeded = models.JSONField(default=list, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    # When a task last claimed it (every run, polls included): a heartbeat, so
    # an operation whose task was lost can be told from a slow one.
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    provisioned = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    state_changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "state"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_nodes__lte=models.F("max_nodes")),
                name="workspace_nodes_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_state_display()})"

    @property
    def provider_name(self) -> str:
        from cloud.base import cluster_name, workspace_name

        if self.kind == WorkspaceKind.CLUSTER:
            return cluster_name(self.pk)
        return workspace_name(self.pk)

    @property
    def idle_shutdown_minutes(self) -> int:
        return -(-self.idle_shutdown_seconds // 60)

    @property
    def nodes(self) -> int:
        """Machines billed while running: one for a notebook, the floor for a cluster."""
        return 1 if self.kind == WorkspaceKind.NOTEBOOK else self.min_nodes

    @property
    def quota_nodes(self) -> int:
        """Machines it may hold at most, for the quota."""
        return 1 if self.kind == WorkspaceKind.NOTEBOOK else self.max_nodes

    @property
    def is_busy(self) -> bool:
        return self.state in BUSY_STATES


class IdleShutdown(models.Model):
    """An idle workspace the portal stopped: what it would have cost to keep it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    hourly_price = models.DecimalField(max_digits=10, decimal_places=4)
    idle_seconds = models.PositiveIntegerField()
    stopped_at = models.DateTimeField(default=timezone.now)
    # When the workspace ran again; until then the avoided cost keeps growing.
    resumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-stopped_at"]

    def __str__(self) -> str:
        return f"idle shutdown of workspace {self.workspace_id} at {self.stopped_at:%Y-%m-%d %H:%M}"
