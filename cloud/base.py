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
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


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
    # The project's tracking server (<portal>/mlflow/<slug>) and a token scoped
    # to it. The provider makes the server reachable from the user's code and
    # sets MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN there; nothing else of
    # the portal is in reach.
    tracking_url: str = ""
    tracking_token: str = ""
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
class SweepSpec:
    """A hyperparameter search the provider runs itself (Azure ML's sweep job).

    The configuration is the portal's (``experiments.sweeps.sweep_config_clean``):
    ``space`` maps a parameter to ``{"type": "choice", "values": [...]}`` or
    ``{"type": "uniform" | "loguniform" | "int", "low": ..., "high": ...}``;
    ``sampler`` is grid, random or tpe; ``early_termination`` none, median or
    halving. Each trial runs ``trial_command`` with ``--params=<JSON object of
    the sampled values>`` appended, and must log ``metric`` where the provider
    reads it. A provider that cannot run a configuration refuses it
    (``ProviderError``) before anything is sent.
    """

    trial_command: str
    space: dict[str, dict[str, Any]]
    metric: str
    direction: str  # maximize or minimize
    sampler: str = "random"
    max_trials: int = 20
    parallel: int = 1
    early_termination: str = "none"
    time_budget_seconds: int = 0  # 0: no limit beyond the trials
    seed: int = 0


@dataclass(frozen=True)
class AutoMLSpec:
    """An AutoML search the provider runs itself (Azure ML's AutoML job).

    ``task`` classification or regression, ``target`` the charter's target
    column, ``metric`` the charter's metric by the portal's name, ``families``
    the portal's model families (``experiments.sweeps.AUTOML_FAMILIES``); the
    provider maps each to its own names or refuses it. The training data is
    the job's ``train`` input.
    """

    task: str
    target: str
    metric: str
    families: tuple[str, ...] = ()
    time_budget_seconds: int = 900
    max_trials: int = 0  # 0: as many as the time budget allows
    parallel: int = 1


@dataclass(frozen=True)
class JobSpec:
    name: str
    command: str
    compute: str  # a cluster name
    code_dir: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    # As for a workspace: the project's tracking server and a token scoped to it
    # (for a job, one that expires when the job ends).
    tracking_url: str = ""
    tracking_token: str = ""
    # Local provider: run even where no sandbox is available (platform admins only).
    allow_unsandboxed: bool = False
    # Python packages on top of the base environment (``name==version`` lines).
    requirements: tuple[str, ...] = ()
    # A search the provider runs natively instead of ``command`` (Azure ML);
    # a provider without one (local) runs ``command``, which searches itself.
    sweep: SweepSpec | None = None
    automl: AutoMLSpec | None = None


@dataclass(frozen=True)
class ResourceStatus:
    name: str
    state: ResourceState
    url: str = ""  # where the user opens it (a workspace's notebook)
    detail: str = ""
    # Seconds since the last user activity, when the provider can tell.
    idle_seconds: float | None = None
    # The long-running operation the call started, when the provider has one
    # (Azure: the Azure-AsyncOperation / Location URL); the caller may keep it
    # and ask the provider's ``operation_status(url)`` how it went.
    operation_url: str = ""


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
    def workspace_start(
        self, name: str, *, tracking_url: str = "", tracking_token: str = ""
    ) -> ResourceStatus: ...
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


# Provider-side names. Without a salt: the local provider's historical form
# (``sg-ws-7``), kept so existing local workspaces keep their folders. With the
# install's salt (the Azure provider's ``name_salt``): names Azure ML accepts
# (DNS-style, each '-' followed later by a letter; compute instances at most 24
# characters, clusters 16) and unique to this installation, since compute and
# endpoint names are unique per region and job names are permanent per workspace.
_SALT = re.compile(r"[a-z][a-z0-9]{2,5}")


def check_salt(salt: str) -> str:
    """A salt is 3-6 lowercase letters and digits, starting with a letter."""
    if not _SALT.fullmatch(salt):
        raise ValueError(
            f"{salt!r} is not a name salt: 3-6 lowercase letters and digits, starting with a letter"
        )
    return salt


def _salted(salt: str, kind: str, pk: int, max_length: int) -> str:
    name = f"sg-{check_salt(salt)}-{kind}{pk}"
    if pk < 0 or len(name) > max_length:
        raise ValueError(f"{name!r}: no valid name of at most {max_length} characters")
    return name


def workspace_name(pk: int, salt: str = "") -> str:
    """The provider-side name of workspace ``pk``: stable across retries."""
    if not salt:
        return f"sg-ws-{pk}"
    return _salted(salt, "ws", pk, 24)


def cluster_name(pk: int, salt: str = "") -> str:
    if not salt:
        return f"sg-cl-{pk}"
    name = f"{check_salt(salt)}-cl{pk}"
    if pk < 0 or len(name) > 16:
        raise ValueError(f"{name!r}: no valid cluster name of at most 16 characters")
    return name


def job_name(pk: int, salt: str = "") -> str:
    if not salt:
        return f"sg-job-{pk}"
    return _salted(salt, "job", pk, 255)


def job_cluster_name(pk: int, salt: str = "") -> str:
    """The compute made for job ``pk`` and removed after it. Without a salt the
    job's own name (the local provider's historical form); with one a cluster
    name Azure ML accepts (at most 16 characters), apart from the clusters of
    workspaces (``cluster_name``) so that a job never takes or removes one."""
    if not salt:
        return job_name(pk)
    name = f"{check_salt(salt)}-jc{pk}"
    if pk < 0 or len(name) > 16:
        raise ValueError(f"{name!r}: no valid cluster name of at most 16 characters")
    return name


def endpoint_name(pk: int, salt: str = "") -> str:
    """A serving endpoint's name (Azure: 3-32 characters, unique per region)."""
    if not salt:
        return f"sg-ep-{pk}"
    return _salted(salt, "ep", pk, 32)


# --- real-time serving ------------------------------------------------------


@dataclass(frozen=True)
class EndpointSpec:
    """A scoring endpoint: one address, a key, and the deployments behind it.

    ``key_sha256`` is the sha256 (hex) of the endpoint's key: the provider
    compares a caller's key against it and never holds the key itself (the
    local provider; Azure ML issues its own keys and ignores it).
    """

    name: str
    key_sha256: str = ""
    description: str = ""


@dataclass(frozen=True)
class DeploymentSpec:
    """One model version behind an endpoint (``blue`` or ``green``).

    ``model_dir``: the MLflow model folder on this machine (local provider),
    read-only to the scoring process. ``model_id``: the registered model's id
    where the provider has a registry of its own (Azure ML,
    ``azureml:<name>:<version>``). Sampled inputs and predictions are logged at
    ``sample_rate`` (0 to 1) without the ``sensitive_columns``.
    """

    endpoint: str
    name: str
    size: SizeSpec
    model_dir: str = ""
    model_id: str = ""
    instance_count: int = 1
    sample_rate: float = 0.0
    sensitive_columns: tuple[str, ...] = ()
    # Local provider: run even where no sandbox is available (platform admins only).
    allow_unsandboxed: bool = False


@runtime_checkable
class ServingProvider(Protocol):
    """Real-time serving: endpoints, their deployments and the traffic split.

    ``endpoint_set_traffic`` takes percentages per deployment name (summing to
    100, or empty for none) and the share of requests also copied to a shadow
    deployment (``mirror``: at most one name, whose answers callers never see);
    it takes effect at once for new requests.
    """

    def endpoint_create(self, spec: EndpointSpec) -> ResourceStatus: ...
    def endpoint_delete(self, name: str) -> ResourceStatus: ...
    def endpoint_status(self, name: str) -> ResourceStatus: ...
    def endpoint_set_traffic(
        self, name: str, traffic: dict[str, int], mirror: dict[str, int] | None = None
    ) -> None: ...
    def deployment_start(self, spec: DeploymentSpec) -> ResourceStatus: ...
    def deployment_stop(self, endpoint: str, name: str) -> ResourceStatus: ...
    def deployment_status(self, endpoint: str, name: str) -> ResourceStatus: ...


DEPLOYMENT_NAMES = ("blue", "green")


def check_traffic(traffic: dict[str, int], mirror: dict[str, int] | None = None) -> None:
    """Raise ValueError unless the split is whole percentages summing to 100
    (or empty), and the mirror is one deployment with 0-100%."""
    for name, share in {**traffic, **(mirror or {})}.items():
        if not isinstance(share, int) or isinstance(share, bool) or not 0 <= share <= 100:
            raise ValueError(f"{name}: a share is a whole percentage from 0 to 100")
    if traffic and sum(traffic.values()) != 100:
        raise ValueError("The traffic shares must add up to 100%")
    if mirror and len(mirror) > 1:
        raise ValueError("At most one deployment receives mirrored traffic")
