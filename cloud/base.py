"""The boundary to where things run: one interface, two providers.

The portal asks a provider for workspaces (notebook dev environments),
compute clusters and jobs. Every operation is idempotent by a deterministic
``name`` derived from the portal's id (``workspace_name(pk)``), so a retried
Celery task never creates anything twice. Nothing outside ``cloud/`` imports a
cloud SDK.

Calls never block on slow provider work. A call returns the state it left the
resource in; ``CREATING`` means "on its way to RUNNING" (also after a start),
and the caller polls ``*_status`` until the state settles. ``workspace_resize``
is convergent: each call advances one step (stop, change size, start) and
returns; call it again until it returns RUNNING (the local provider finishes in
one call, Azure ML takes several). Errors: ``TransientProviderError`` is worth a
retry with backoff, any other ``ProviderError`` is final.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class ResourceState(enum.StrEnum):
    """What a provider reports about one resource."""

    CREATING = "creating"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DELETING = "deleting"
    DELETED = "deleted"  # gone, or never existed
    FAILED = "failed"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class ProviderError(Exception):
    """A provider call failed for good (bad request, quota, not allowed)."""


class TransientProviderError(ProviderError):
    """A provider call failed in a way worth retrying (throttled, 5xx, timeout)."""


class ProviderConfigurationError(ProviderError):
    """The provider is not configured (missing settings or credentials)."""


@dataclass(frozen=True)
class SizeSpec:
    """A compute size as the provider needs it."""

    name: str
    vcpus: int
    memory_gb: float
    gpus: int = 0


@dataclass(frozen=True)
class WorkspaceSpec:
    name: str
    size: SizeSpec
    owner_username: str = ""
    owner_object_id: str = ""  # the Entra ID object id, for Azure "on behalf of"
    idle_shutdown_minutes: int = 60
    allowed_ips: tuple[str, ...] = ()
    # Folders (read-only data, e.g. dataset snapshots) to expose inside the workspace.
    data_paths: tuple[str, ...] = ()
    # Local provider: run even where no sandbox is available (platform admins only).
    allow_unsandboxed: bool = False


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    size: SizeSpec
    min_nodes: int = 0
    max_nodes: int = 1
    idle_seconds_before_scaledown: int = 600
    low_priority: bool = False


@dataclass(frozen=True)
class JobSpec:
    name: str
    command: str
    compute: str  # a cluster name
    code_dir: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    # Local provider: run even where no sandbox is available (platform admins only).
    allow_unsandboxed: bool = False


@dataclass(frozen=True)
class ResourceStatus:
    name: str
    state: ResourceState
    url: str = ""  # where the user opens it (a workspace's notebook)
    detail: str = ""
    # Seconds since the last user activity, when the provider can tell.
    idle_seconds: float | None = None


@dataclass(frozen=True)
class JobStatus:
    name: str
    state: JobState
    detail: str = ""


@runtime_checkable
class Provider(Protocol):
    """What the portal asks of a place to run things."""

    name: str

    # Workspaces (dev environments)
    def workspace_create(self, spec: WorkspaceSpec) -> ResourceStatus: ...
    def workspace_start(self, name: str) -> ResourceStatus: ...
    def workspace_stop(self, name: str) -> ResourceStatus: ...
    def workspace_resize(self, name: str, size: SizeSpec) -> ResourceStatus: ...
    def workspace_delete(self, name: str) -> ResourceStatus: ...
    def workspace_status(self, name: str) -> ResourceStatus: ...
    def workspace_set_allowed_ips(self, name: str, cidrs: tuple[str, ...]) -> None: ...

    # Compute clusters
    def cluster_create(self, spec: ClusterSpec) -> ResourceStatus: ...
    def cluster_scale(self, name: str, min_nodes: int, max_nodes: int) -> ResourceStatus: ...
    def cluster_delete(self, name: str) -> ResourceStatus: ...
    def cluster_status(self, name: str) -> ResourceStatus: ...

    def list_sizes(self) -> list[SizeSpec]: ...

    # Jobs (used by the experiments stage)
    def job_submit(self, spec: JobSpec) -> JobStatus: ...
    def job_status(self, name: str) -> JobStatus: ...
    def job_cancel(self, name: str) -> JobStatus: ...
    def job_logs(self, name: str, tail: int = 200) -> str: ...


def workspace_name(pk: int) -> str:
    """The provider-side name of workspace ``pk``: stable across retries."""
    return f"sg-ws-{pk}"


def cluster_name(pk: int) -> str:
    return f"sg-cl-{pk}"


def job_name(pk: int) -> str:
    return f"sg-job-{pk}"
