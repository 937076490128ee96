"""The Azure ML provider, through the ``azure-ai-ml`` SDK v2.

A workspace is a ``ComputeInstance``, a cluster an ``AmlCompute``, a job a
``command`` job, all in one Azure ML workspace. Long-running operations are
started and never waited on: the call returns the state it left the resource
in and the caller polls ``*_status``. Every SDK call goes through ``_call``,
which retries throttling (429) and server errors (5xx, connection failures)
with exponential backoff and jitter and raises ``TransientProviderError``
after the last try; any other 4xx becomes a ``ProviderError``.

The ``MLClient`` is built on first use (``azure-identity``: a service
principal when a client id and secret are configured, the default credential
chain otherwise). Tests hand in a stand-in with the same ``compute``, ``jobs``
and ``workspaces`` operation groups.
"""

from __future__ import annotations

import glob
import ipaddress
import logging
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from azure.ai.ml import Input, MLClient, command
from azure.ai.ml.entities import (
    AmlCompute,
    AssignedUserConfiguration,
    ComputeInstance,
    ComputePowerAction,
    ComputeSchedules,
    ComputeStartStopSchedule,
    CronTrigger,
    IPRule,
    NetworkAcls,
)
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from cloud.base import (
    ClusterSpec,
    JobSpec,
    JobState,
    JobStatus,
    ProviderConfigurationError,
    ProviderError,
    ResourceState,
    ResourceStatus,
    SizeSpec,
    TransientProviderError,
    WorkspaceSpec,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Azure ML accepts an idle shutdown between 15 minutes and 3 days.
IDLE_MIN_MINUTES = 15
IDLE_MAX_MINUTES = 3 * 24 * 60
# Workspace tag holding one compute instance's allowlist (tag values: 256 chars).
ALLOWLIST_TAG_PREFIX = "stagegate-allowed-ips-"
TAG_VALUE_MAX = 256

INSTANCE_STATES = {
    "running": ResourceState.RUNNING,
    "jobrunning": ResourceState.RUNNING,
    "creating": ResourceState.CREATING,
    "starting": ResourceState.CREATING,
    "restarting": ResourceState.CREATING,
    "settingup": ResourceState.CREATING,
    "usersettingup": ResourceState.CREATING,
    "stopping": ResourceState.STOPPING,
    "stopped": ResourceState.STOPPED,
    "deleting": ResourceState.DELETING,
    "createfailed": ResourceState.FAILED,
    "setupfailed": ResourceState.FAILED,
    "usersetupfailed": ResourceState.FAILED,
    "unusable": ResourceState.FAILED,
}
PROVISIONING_STATES = {
    "creating": ResourceState.CREATING,
    "updating": ResourceState.CREATING,
    "succeeded": ResourceState.RUNNING,
    "deleting": ResourceState.DELETING,
    "failed": ResourceState.FAILED,
    "canceled": ResourceState.FAILED,
}
JOB_STATES = {
    "notstarted": JobState.QUEUED,
    "queued": JobState.QUEUED,
    "starting": JobState.QUEUED,
    "provisioning": JobState.QUEUED,
    "preparing": JobState.QUEUED,
    "running": JobState.RUNNING,
    "finalizing": JobState.RUNNING,
    "cancelrequested": JobState.RUNNING,
    "completed": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "notresponding": JobState.FAILED,
    "paused": JobState.RUNNING,
    "canceled": JobState.CANCELED,
}


class AzureProvider:
    """Workspaces, clusters and jobs in one Azure ML workspace."""

    name = "azure"

    def __init__(
        self,
        *,
        subscription_id: str,
        resource_group: str,
        workspace: str,
        tenant_id: str = "",
        client_id: str = "",
        client_secret: str = "",
        job_environment: str = "",
        stop_schedule_cron: str = "",
        schedule_time_zone: str = "UTC",
        base_allowed_ips: Sequence[str] = (),
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        ml_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        missing = [
            setting
            for setting, value in (
                ("AZURE_SUBSCRIPTION_ID", subscription_id),
                ("AZURE_RESOURCE_GROUP", resource_group),
                ("AZURE_ML_WORKSPACE", workspace),
            )
            if not value
        ]
        if missing:
            raise ProviderConfigurationError(
                "The azure provider needs " + ", ".join(missing) + " (see docs/cloud.md)"
            )
        if bool(client_id) != bool(client_secret):
            raise ProviderConfigurationError(
                "Set both AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or neither"
            )
        if client_id and not tenant_id:
            raise ProviderConfigurationError("AZURE_CLIENT_ID needs AZURE_TENANT_ID")
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.tenant_id = tenant_id
        self._client_id = client_id
        self._client_secret = client_secret
        self.job_environment = job_environment
        self.stop_schedule_cron = stop_schedule_cron
        self.schedule_time_zone = schedule_time_zone
        self.base_allowed_ips = _validate_ipv4_cidrs(base_allowed_ips)
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._ml_client = ml_client
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    @classmethod
    def from_settings(cls) -> AzureProvider:
        from django.conf import settings

        return cls(
            subscription_id=settings.AZURE_SUBSCRIPTION_ID,
            resource_group=settings.AZURE_RESOURCE_GROUP,
            workspace=settings.AZURE_ML_WORKSPACE,
            tenant_id=settings.AZURE_TENANT_ID,
            client_id=settings.AZURE_CLIENT_ID,
            client_secret=settings.AZURE_CLIENT_SECRET,
            job_environment=settings.AZURE_JOB_ENVIRONMENT,
            stop_schedule_cron=settings.AZURE_CI_STOP_CRON,
            schedule_time_zone=settings.AZURE_CI_SCHEDULE_TIME_ZONE,
            base_allowed_ips=settings.AZURE_BASE_ALLOWED_IPS,
            max_attempts=settings.AZURE_MAX_ATTEMPTS,
        )

    @property
    def ml_client(self) -> Any:
        """The ``MLClient``, built on first use."""
        if self._ml_client is None:
            from azure.identity import ClientSecretCredential, DefaultAzureCredential

            credential: Any
            if self._client_id:
                credential = ClientSecretCredential(
                    self.tenant_id, self._client_id, self._client_secret
                )
            else:
                credential = DefaultAzureCredential()
            self._ml_client = MLClient(
                credential,
                subscription_id=self.subscription_id,
                resource_group_name=self.resource_group,
                workspace_name=self.workspace,
            )
        return self._ml_client

    # --- calling the SDK ---------------------------------------------------

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1``: exponential, half of it jitter."""
        delay = min(self.max_delay, self.base_delay * 2**attempt)
        delay = delay / 2 + self._rng.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the SDK, retrying what is worth retrying; map errors to ours."""
        for attempt in range(self.max_attempts):
            try:
                return fn(*args, **kwargs)
            except ResourceNotFoundError:
                raise
            except HttpResponseError as exc:
                status = exc.status_code or 0
                if status != 429 and status < 500:
                    raise ProviderError(f"{what}: {status} {_message(exc)}") from exc
                error: AzureError = exc
                retry_after = _retry_after(exc)
            except (ServiceRequestError, ServiceResponseError) as exc:
                error, retry_after = exc, None
            except AzureError as exc:
                raise ProviderError(f"{what}: {_message(exc)}") from exc
            if attempt + 1 == self.max_attempts:
                raise TransientProviderError(
                    f"{what}: gave up after {self.max_attempts} tries: {_message(error)}"
                ) from error
            delay = self.backoff(attempt, retry_after)
            logger.warning("%s failed (%s); retrying in %.1f s", what, _message(error), delay)
            self._sleep(delay)
        raise AssertionError("not reached")

    def _get_compute(self, name: str) -> Any | None:
        try:
            return self._call(f"get compute {name}", self.ml_client.compute.get, name)
        except ResourceNotFoundError:
            return None

    # --- building the SDK's entities -----------------------------------------

    def build_compute_instance(self, spec: WorkspaceSpec) -> ComputeInstance:
        """The ``ComputeInstance`` for a workspace spec (not yet sent anywhere)."""
        on_behalf_of = None
        if spec.owner_object_id:
            if not self.tenant_id:
                raise ProviderConfigurationError(
                    "Creating an instance on behalf of a user needs AZURE_TENANT_ID"
                )
            on_behalf_of = AssignedUserConfiguration(
                user_tenant_id=self.tenant_id, user_object_id=spec.owner_object_id
            )
        idle = None
        if spec.idle_shutdown_minutes > 0:
            idle = max(IDLE_MIN_MINUTES, min(spec.idle_shutdown_minutes, IDLE_MAX_MINUTES))
        schedules = None
        if self.stop_schedule_cron:
            schedules = ComputeSchedules(
                compute_start_stop=[
                    ComputeStartStopSchedule(
                        trigger=CronTrigger(
                            expression=self.stop_schedule_cron, time_zone=self.schedule_time_zone
                        ),
                        action=ComputePowerAction.STOP,
                    )
                ]
            )
        tags = {"stagegate": "workspace"}
        if spec.owner_username:
            tags["stagegate-owner"] = spec.owner_username
        return ComputeInstance(
            name=spec.name,
            size=spec.size.name,
            description=f"Stagegate workspace {spec.name}",
            tags=tags,
            idle_time_before_shutdown_minutes=idle,
            ssh_public_access_enabled=False,
            create_on_behalf_of=on_behalf_of,
            schedules=schedules,
        )

    def build_cluster(self, spec: ClusterSpec) -> AmlCompute:
        """The ``AmlCompute`` for a cluster spec (not yet sent anywhere)."""
        _check_nodes(spec.min_nodes, spec.max_nodes)
        return AmlCompute(
            name=spec.name,
            size=spec.size.name,
            description=f"Stagegate cluster {spec.name}",
            tags={"stagegate": "cluster"},
            min_instances=spec.min_nodes,
            max_instances=spec.max_nodes,
            idle_time_before_scale_down=spec.idle_seconds_before_scaledown,
            tier="low_priority" if spec.low_priority else "dedicated",
            ssh_public_access_enabled=False,
        )

    def build_job(self, spec: JobSpec) -> Any:
        """The ``command`` job for a job spec (not yet sent anywhere)."""
        if not self.job_environment:
            raise ProviderConfigurationError("Set AZURE_JOB_ENVIRONMENT to submit jobs")
        return command(
            name=spec.name,
            display_name=spec.name,
            command=spec.command,
            code=spec.code_dir or None,
            environment=self.job_environment,
            environment_variables=dict(spec.environment),
            compute=spec.compute,
            inputs={k: Input(type="uri_folder", path=v) for k, v in spec.inputs.items()},
            tags={"stagegate": "job"},
        )

    # --- workspaces --------------------------------------------------------

    def _instance_status(self, name: str, instance: Any | None) -> ResourceStatus:
        if instance is None:
            return ResourceStatus(name, ResourceState.DELETED)
        raw = (getattr(instance, "state", None) or "").lower()
        state = INSTANCE_STATES.get(raw)
        if state is None:
            provisioning = (getattr(instance, "provisioning_state", None) or "").lower()
            state = PROVISIONING_STATES.get(provisioning, ResourceState.CREATING)
        url = ""
        for service in getattr(instance, "services", None) or []:
            if "lab" in str(service.get("displayName", "")).lower():
                url = service.get("endpointUri", "")
        detail = f"Azure ML state {instance.state}" if getattr(instance, "state", None) else ""
        # Idle time is Azure's own business (idle_time_before_shutdown): None.
        return ResourceStatus(
            name, state, url=url if state == ResourceState.RUNNING else "", detail=detail
        )

    def workspace_create(self, spec: WorkspaceSpec) -> ResourceStatus:
        """Begin creating the compute instance; when it exists, start it if stopped.

        Like the local provider: create means "exists and runs", and a second
        call creates nothing.
        """
        existing = self._get_compute(spec.name)
        if existing is not None:
            status = self._instance_status(spec.name, existing)
            if status.state != ResourceState.STOPPED:
                return status
            self._call(f"start {spec.name}", self.ml_client.compute.begin_start, spec.name)
            return ResourceStatus(spec.name, ResourceState.CREATING, detail="starting")
        instance = self.build_compute_instance(spec)
        self._call(
            f"create compute instance {spec.name}",
            self.ml_client.compute.begin_create_or_update,
            instance,
        )
        if spec.allowed_ips:
            self.workspace_set_allowed_ips(spec.name, spec.allowed_ips)
        return ResourceStatus(spec.name, ResourceState.CREATING)

    def workspace_status(self, name: str) -> ResourceStatus:
        return self._instance_status(name, self._get_compute(name))

    def workspace_start(self, name: str) -> ResourceStatus:
        status = self.workspace_status(name)
        if status.state == ResourceState.DELETED:
            raise ProviderError(f"No compute instance {name!r}")
        if status.state != ResourceState.STOPPED:
            return status
        self._call(f"start {name}", self.ml_client.compute.begin_start, name)
        return ResourceStatus(name, ResourceState.CREATING, detail="starting")

    def workspace_stop(self, name: str) -> ResourceStatus:
        status = self.workspace_status(name)
        if status.state in (ResourceState.DELETED, ResourceState.STOPPED, ResourceState.STOPPING):
            return status
        self._call(f"stop {name}", self.ml_client.compute.begin_stop, name)
        return ResourceStatus(name, ResourceState.STOPPING)

    def workspace_resize(self, name: str, size: SizeSpec) -> ResourceStatus:
        """Advance the resize one step: stop, then change the size, then start.

        The SDK has no resize operation. A stopped instance is sent again with
        the new size through ``begin_create_or_update``. Call again until this
        returns RUNNING; each call starts at most one long-running operation.
        """
        instance = self._get_compute(name)
        if instance is None:
            raise ProviderError(f"No compute instance {name!r}")
        status = self._instance_status(name, instance)
        if instance.size != size.name:
            if status.state == ResourceState.RUNNING:
                self._call(f"stop {name}", self.ml_client.compute.begin_stop, name)
                return ResourceStatus(name, ResourceState.STOPPING, detail="resize: stopping")
            if status.state != ResourceState.STOPPED:
                # Creating, starting or stopping: wait for it to settle.
                return ResourceStatus(name, status.state, detail="resize: waiting")
            instance.size = size.name
            self._call(f"resize {name}", self.ml_client.compute.begin_create_or_update, instance)
            return ResourceStatus(name, ResourceState.STOPPED, detail="resize: size changing")
        if status.state == ResourceState.STOPPED:
            self._call(f"start {name}", self.ml_client.compute.begin_start, name)
            return ResourceStatus(name, ResourceState.CREATING, detail="resize: starting")
        return status

    def workspace_delete(self, name: str) -> ResourceStatus:
        status = self.workspace_status(name)
        if status.state in (ResourceState.DELETED, ResourceState.DELETING):
            return status
        try:
            self._call(f"delete {name}", self.ml_client.compute.begin_delete, name)
        except ResourceNotFoundError:
            return ResourceStatus(name, ResourceState.DELETED)
        self._update_allowlist(name, ())
        return ResourceStatus(name, ResourceState.DELETING)

    def workspace_set_allowed_ips(self, name: str, cidrs: tuple[str, ...]) -> None:
        """Allow ``cidrs`` to reach the workspace, through the Azure ML workspace's network ACL.

        The ACL guards the whole Azure ML workspace, not one instance: it
        holds the union of every instance's list (kept in workspace tags) and
        ``AZURE_BASE_ALLOWED_IPS``; with no address at all it allows everyone.
        """
        self._update_allowlist(name, tuple(_validate_ipv4_cidrs(cidrs)))

    def _update_allowlist(self, name: str, cidrs: tuple[str, ...]) -> None:
        ml = self.ml_client
        ws = self._call(f"get workspace {self.workspace}", ml.workspaces.get, self.workspace)
        tags = dict(ws.tags or {})
        key = ALLOWLIST_TAG_PREFIX + name
        value = ",".join(cidrs)
        if len(value) > TAG_VALUE_MAX:
            raise ProviderError(
                f"Too many addresses for {name}: at most {TAG_VALUE_MAX} characters"
            )
        if value:
            tags[key] = value
        else:
            if key not in tags:
                return
            del tags[key]
        union: list[str] = list(self.base_allowed_ips)
        for tag, listed in sorted(tags.items()):
            if tag.startswith(ALLOWLIST_TAG_PREFIX) and listed:
                union.extend(c for c in listed.split(",") if c not in union)
        ws.tags = tags
        ws.public_network_access = "Enabled"
        ws.network_acls = NetworkAcls(
            default_action="Deny" if union else "Allow",
            ip_rules=[IPRule(value=c) for c in union],
        )
        self._call(f"update workspace {self.workspace}", ml.workspaces.begin_update, ws)

    # --- clusters ----------------------------------------------------------

    def _cluster_status(self, name: str, cluster: Any | None) -> ResourceStatus:
        if cluster is None:
            return ResourceStatus(name, ResourceState.DELETED)
        raw = (getattr(cluster, "provisioning_state", None) or "").lower()
        state = PROVISIONING_STATES.get(raw, ResourceState.CREATING)
        return ResourceStatus(
            name,
            state,
            detail=f"{cluster.min_instances}..{cluster.max_instances} nodes of {cluster.size}",
        )

    def cluster_create(self, spec: ClusterSpec) -> ResourceStatus:
        existing = self._get_compute(spec.name)
        if existing is not None:
            return self._cluster_status(spec.name, existing)
        cluster = self.build_cluster(spec)
        self._call(
            f"create cluster {spec.name}", self.ml_client.compute.begin_create_or_update, cluster
        )
        return ResourceStatus(spec.name, ResourceState.CREATING)

    def cluster_scale(self, name: str, min_nodes: int, max_nodes: int) -> ResourceStatus:
        _check_nodes(min_nodes, max_nodes)
        cluster = self._get_compute(name)
        if cluster is None:
            raise ProviderError(f"No cluster {name!r}")
        if (cluster.min_instances, cluster.max_instances) == (min_nodes, max_nodes):
            return self._cluster_status(name, cluster)
        cluster.min_instances = min_nodes
        cluster.max_instances = max_nodes
        self._call(f"scale cluster {name}", self.ml_client.compute.begin_update, cluster)
        return ResourceStatus(
            name, ResourceState.CREATING, detail=f"scaling to {min_nodes}..{max_nodes}"
        )

    def cluster_delete(self, name: str) -> ResourceStatus:
        status = self.cluster_status(name)
        if status.state in (ResourceState.DELETED, ResourceState.DELETING):
            return status
        try:
            self._call(f"delete cluster {name}", self.ml_client.compute.begin_delete, name)
        except ResourceNotFoundError:
            return ResourceStatus(name, ResourceState.DELETED)
        return ResourceStatus(name, ResourceState.DELETING)

    def cluster_status(self, name: str) -> ResourceStatus:
        return self._cluster_status(name, self._get_compute(name))

    def list_sizes(self) -> list[SizeSpec]:
        sizes = self._call("list sizes", lambda: list(self.ml_client.compute.list_sizes()))
        return [
            SizeSpec(s.name, int(s.v_cp_us or 0), float(s.memory_gb or 0), int(s.gpus or 0))
            for s in sizes
        ]

    def list_usage(self) -> list[dict[str, Any]]:
        """Core and instance usage against the subscription's quotas in the
        workspace's region (not part of the Provider interface: Azure only)."""
        usages = self._call("list usage", lambda: list(self.ml_client.compute.list_usage()))
        return [
            {
                "name": getattr(u.name, "value", None) or "",
                "label": getattr(u.name, "localized_value", None) or "",
                "current": u.current_value,
                "limit": u.limit,
                "unit": str(u.unit or ""),
            }
            for u in usages
        ]

    # --- jobs --------------------------------------------------------------

    def _get_job(self, name: str) -> Any | None:
        try:
            return self._call(f"get job {name}", self.ml_client.jobs.get, name)
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _job_status(name: str, job: Any) -> JobStatus:
        raw = str(job.status or "")
        return JobStatus(name, JOB_STATES.get(raw.lower(), JobState.QUEUED), detail=raw)

    def job_submit(self, spec: JobSpec) -> JobStatus:
        """Submit the command job; nothing is sent when a job of that name exists."""
        existing = self._get_job(spec.name)
        if existing is not None:
            return self._job_status(spec.name, existing)
        job = self.build_job(spec)
        submitted = self._call(f"submit job {spec.name}", self.ml_client.jobs.create_or_update, job)
        return self._job_status(spec.name, submitted)

    def job_status(self, name: str) -> JobStatus:
        job = self._get_job(name)
        if job is None:
            raise ProviderError(f"No job {name!r}")
        return self._job_status(name, job)

    def job_cancel(self, name: str) -> JobStatus:
        status = self.job_status(name)
        if status.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED):
            return status
        self._call(f"cancel job {name}", self.ml_client.jobs.begin_cancel, name)
        return JobStatus(name, JobState.CANCELED, detail="cancel requested")

    def job_logs(self, name: str, tail: int = 200) -> str:
        """The tail of the job's standard output, downloaded from its run history."""
        with tempfile.TemporaryDirectory(prefix="sg-job-logs-") as tmp:
            self._call(
                f"download logs of {name}", self.ml_client.jobs.download, name, download_path=tmp
            )
            files = sorted(glob.glob(f"{tmp}/**/user_logs/std_log*.txt", recursive=True))
            text = "".join(Path(f).read_text(errors="replace") for f in files)
        return "\n".join(text.splitlines()[-tail:]) if tail > 0 else ""


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc).splitlines()[0][:300]


def _retry_after(exc: HttpResponseError) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None


def _check_nodes(min_nodes: int, max_nodes: int) -> None:
    if min_nodes < 0 or max_nodes < 1 or min_nodes > max_nodes:
        raise ProviderError(f"Invalid node counts: min {min_nodes}, max {max_nodes}")


def _validate_ipv4_cidrs(cidrs: Sequence[str]) -> list[str]:
    """Azure ML's IP rules take IPv4 addresses and ranges only."""
    valid = []
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError as exc:
            raise ProviderError(f"Invalid address or CIDR {cidr!r}") from exc
        if network.version != 4:
            raise ProviderError(f"Azure ML network rules take IPv4 only, not {cidr!r}")
        valid.append(str(network.network_address) if network.prefixlen == 32 else str(network))
    return valid
