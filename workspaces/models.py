"""Compute catalog, quotas, workspaces and their metered usage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

HOURS_PER_MONTH = Decimal(730)  # what cloud price lists use for "per month"


class ComputeSize(models.Model):
    """A size in the catalog, with its list price per hour at ``price_date``."""

    name = models.CharField(max_length=64)
    provider = models.CharField(
        max_length=20,
        default="azure",
        help_text="Whose list price this is. The local provider runs any size, capped by the machine.",
    )
    region = models.CharField(max_length=40, blank=True)
    vcpus = models.PositiveIntegerField()
    memory_gb = models.DecimalField(max_digits=7, decimal_places=1)
    gpus = models.PositiveIntegerField(default=0)
    gpu_type = models.CharField(max_length=60, blank=True)
    hourly_price = models.DecimalField(max_digits=10, decimal_places=4)
    currency = models.CharField(max_length=3, default="USD")
    price_date = models.DateField()
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["gpus", "hourly_price", "name"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="computesize_unique_name"),
            models.CheckConstraint(
                condition=models.Q(hourly_price__gte=0), name="computesize_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        gpu = f", {self.gpus}× {self.gpu_type or 'GPU'}" if self.gpus else ""
        return f"{self.name} ({self.vcpus} vCPU, {self.memory_gb} GB{gpu})"

    @property
    def monthly_price(self) -> Decimal:
        return (self.hourly_price * HOURS_PER_MONTH).quantize(Decimal("0.01"))


class Quota(models.Model):
    """Limits for one project or one user (exactly one of the two is set).

    ``monthly_budget`` of a project quota overrides the project's own budget
    when set; a user's applies to what that user spends across projects.
    Empty or zero means no budget.
    """

    project = models.OneToOneField(
        "projects.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="compute_quota",
    )
    max_vcpus = models.PositiveIntegerField()
    max_gpus = models.PositiveIntegerField()
    max_running = models.PositiveIntegerField()
    monthly_budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(project__isnull=False, user__isnull=True)
                    | models.Q(project__isnull=True, user__isnull=False)
                ),
                name="quota_one_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"quota of {self.project or self.user}"


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


class UsageInterval(models.Model):
    """One stretch of time a workspace ran, at the size and price of the time.

    A closed interval lies within one UTC day (closing splits it), so daily and
    monthly sums are plain aggregates of ``cost``.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="usage")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    size = models.ForeignKey(ComputeSize, on_delete=models.PROTECT, related_name="+")
    size_name = models.CharField(max_length=64)
    hourly_price = models.DecimalField(max_digits=10, decimal_places=4)
    nodes = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    day = models.DateField(db_index=True)
    cost = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["started_at"]
        constraints = [
            # At most one open interval per workspace.
            models.UniqueConstraint(
                fields=["workspace"],
                condition=models.Q(ended_at__isnull=True),
                name="usage_one_open_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.size_name} from {self.started_at:%Y-%m-%d %H:%M}"

    def cost_until(self, end: datetime) -> Decimal:
        seconds = Decimal(max(0.0, (end - self.started_at).total_seconds()))
        return self.hourly_price * self.nodes * seconds / Decimal(3600)


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


class BudgetAlert(models.Model):
    """A budget threshold crossed in a month, so that it is announced once."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    percent = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "month", "percent"], name="budgetalert_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.percent}% of the {self.month:%Y-%m} budget of project {self.project_id}"
