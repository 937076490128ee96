"""Workspaces (notebooks and compute clusters) and their idle shutdowns."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from background.models import Leased
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


NO_INSTANCE_ALLOWLIST = (
    "Azure ML cannot limit one compute instance to IP addresses: only its owner, "
    "signed in with Microsoft Entra ID, can open it. Network rules apply to the whole "
    "Azure ML workspace and are set by a platform admin."
)


def instance_allowlist_supported(provider: str) -> bool:
    """Whether ``provider`` limits one workspace to an IP allowlist. Azure ML
    has no such rule per compute instance: only its assigned user signs in to
    it (``AzureProvider.supports_instance_allowlist``)."""
    return provider != "azure"


class Workspace(Leased):
    """A notebook workspace or a compute cluster requested for a project.

    The provider knows it as ``provider_name``, given once when the row is
    created (``workspace_name(pk, salt)`` / ``cluster_name(pk, salt)``).
    ``task_id`` is the Celery task that claimed the current transitional
    state; ``attempts`` counts deliveries that called the provider for it
    (anew for each operation). The lease (``background.models.Leased``) tells
    a lost operation from a slow one: see ``services.OPERATIONS_WORK``.
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
    # The provider-side name, kept rather than derived each time: a later change
    # of the install's name salt must not orphan what the provider holds.
    provider_name = models.CharField(max_length=64, blank=True)
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
    # The provider's handle on the long-running operation under way (Azure:
    # its Azure-AsyncOperation / Location URL), polled for a failure that the
    # resource's own state may not show; empty once the operation settles.
    operation_url = models.CharField(max_length=1000, blank=True)
    provisioned = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    state_changed_at = models.DateTimeField(default=timezone.now)

    class Meta(Leased.Meta):
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

    def ensure_provider_name(self) -> str:
        """Give the row its provider-side name unless it has one; return it.

        Azure names carry the install's salt (``AZURE_NAME_SALT``); local ones
        keep their historical form (``sg-ws-7``), so existing folders are found.
        Raises ``ProviderConfigurationError`` when the salt is not valid.
        """
        from cloud.base import ProviderConfigurationError, check_salt, cluster_name, workspace_name

        if self.provider_name:
            return self.provider_name
        make = cluster_name if self.kind == WorkspaceKind.CLUSTER else workspace_name
        try:
            # No salt means the unsalted local form, which Azure refuses: check first.
            salt = check_salt(settings.AZURE_NAME_SALT) if self.provider == "azure" else ""
            name = make(self.pk, salt)
        except ValueError as exc:
            raise ProviderConfigurationError(f"AZURE_NAME_SALT: {exc}") from exc
        # Conditional: two tasks naming one row at once agree on the first name.
        Workspace.objects.filter(pk=self.pk, provider_name="").update(provider_name=name)
        self.refresh_from_db(fields=["provider_name"])
        return self.provider_name

    @property
    def instance_allowlist_supported(self) -> bool:
        return instance_allowlist_supported(self.provider)

    @property
    def no_instance_allowlist(self) -> str:
        """Why the page offers no allowlist for it ("" where it does)."""
        return "" if self.instance_allowlist_supported else NO_INSTANCE_ALLOWLIST

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
