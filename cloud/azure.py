"""The Azure ML provider, through the ``azure-ai-ml`` SDK v2.

A workspace is a ``ComputeInstance``, a cluster an ``AmlCompute``, a job a
``command`` job (or a sweep or AutoML job, with environments built from a
job's requirements: ``cloud.azure_jobs``), all in one Azure ML workspace.

How it talks to Azure:

- One ``MLClient`` per provider, built on first use (or handed in). Its
  azure-core pipeline does **not** retry (``retry_total=0``) and every
  request has a connect and a read timeout, so one attempt is bounded and
  ``_call`` owns the retry schedule: 429, 408, 5xx and connection errors are
  retried with exponential backoff and jitter (at least the server's
  ``Retry-After``), then ``TransientProviderError``; other 4xx are final.
- No long-running-operation pollers: the SDK's ``begin_*`` methods start a
  polling thread each, which a Celery worker never reads and whose failures
  are lost. Instead the ARM requests (PUT, POST start/stop/resize, PATCH,
  DELETE, job cancel) go through the client's own ``send_request`` (same
  credential, transport and policies); the returned ``ResourceStatus``
  carries the operation URL (``Azure-AsyncOperation`` or ``Location``), which
  ``operation_status`` reads; ``*_status`` reads the resource itself, and a
  failed operation (``provisioningErrors``, ``lastOperation``) becomes
  ``FAILED`` with the service's message as the detail.
- The SDK's own entities (``ComputeInstance``, ``AmlCompute``, ``command``)
  build the request bodies; the SDK's job and size/usage operations are used
  as they are, reading the fields they really fill (enum ``.value``,
  camelCase ``vCPUs``/``memoryGB``/``currentValue``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from azure.ai.ml import MLClient, command
from azure.ai.ml.entities import (
    AmlCompute,
    AssignedUserConfiguration,
    ComputeInstance,
    ComputePowerAction,
    ComputeSchedules,
    ComputeStartStopSchedule,
    CronTrigger,
)
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest

from cloud.azure_jobs import ENVIRONMENT_IMAGE, AzureJobsMixin, command_with_inputs, data_input
from cloud.azure_serving import AzureServingMixin
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
    check_salt,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# REST api-versions of the requests sent directly. Compute resize exists only
# in preview versions (2023-08-01-preview onwards); one version for every
# compute request keeps the bodies consistent.
COMPUTE_API_VERSION = "2024-10-01-preview"
WORKSPACE_API_VERSION = "2024-10-01-preview"
JOB_API_VERSION = "2024-10-01-preview"

# Azure ML accepts an idle shutdown between 15 minutes and 3 days.
IDLE_MIN_MINUTES = 15
IDLE_MAX_MINUTES = 3 * 24 * 60
# Workspace IP rules: at most 200, public IPv4 only.
MAX_IP_RULES = 200
# Bytes read per ranged request when tailing a log, and at most in all.
LOG_WINDOW = 64 * 1024
LOG_MAX_BYTES = 4 * 1024 * 1024

# Every ComputeInstanceState of the REST API (test_every_instance_state_is_mapped
# checks this against the SDK's enum). None: decided by provisioningState.
INSTANCE_STATES: dict[str, ResourceState | None] = {
    "creating": ResourceState.CREATING,
    "starting": ResourceState.CREATING,
    "restarting": ResourceState.CREATING,
    "settingup": ResourceState.CREATING,
    "usersettingup": ResourceState.CREATING,
    # Resizing happens while stopped; the instance is on its way, not usable.
    "resizing": ResourceState.CREATING,
    "running": ResourceState.RUNNING,
    "jobrunning": ResourceState.RUNNING,
    "stopping": ResourceState.STOPPING,
    "stopped": ResourceState.STOPPED,
    "deleting": ResourceState.DELETING,
    "createfailed": ResourceState.FAILED,
    "setupfailed": ResourceState.FAILED,
    "usersetupfailed": ResourceState.FAILED,
    "unusable": ResourceState.FAILED,
    "unknown": None,
}
PROVISIONING_STATES: dict[str, ResourceState] = {
    "unknown": ResourceState.CREATING,
    "creating": ResourceState.CREATING,
    "updating": ResourceState.CREATING,
    "succeeded": ResourceState.RUNNING,
    "deleting": ResourceState.DELETING,
    "failed": ResourceState.FAILED,
    "canceled": ResourceState.FAILED,
}
# Every JobStatus of the REST API.
JOB_STATES: dict[str, JobState] = {
    "notstarted": JobState.QUEUED,
    "starting": JobState.QUEUED,
    "provisioning": JobState.QUEUED,
    "preparing": JobState.QUEUED,
    "queued": JobState.QUEUED,
    "unknown": JobState.QUEUED,
    "running": JobState.RUNNING,
    "finalizing": JobState.RUNNING,
    "cancelrequested": JobState.RUNNING,
    # NotResponding may return to any earlier state; Paused is resumable.
    "notresponding": JobState.RUNNING,
    "paused": JobState.RUNNING,
    "completed": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "canceled": JobState.CANCELED,
}
JOB_DONE = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)

# Compute names: letters, digits and '-', starting with a letter, every '-'
# followed later by a letter (the service refuses "cpu-cluster-1").
_COMPUTE_NAME = re.compile(r"[a-zA-Z](?:[a-zA-Z0-9]|-(?=[a-zA-Z0-9-]*[a-zA-Z]))*")
_JOB_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def check_compute_name(name: str, *, instance: bool) -> str:
    """Refuse a name Azure ML would refuse: 3-24 characters for an instance,
    2-16 for a cluster; letters, digits, '-' followed later by a letter."""
    low, high = (3, 24) if instance else (2, 16)
    if not (low <= len(name) <= high and _COMPUTE_NAME.fullmatch(name)):
        kind = "compute instance" if instance else "cluster"
        raise ProviderError(
            f"{name!r} is not a valid Azure ML {kind} name ({low}-{high} letters, digits "
            "and '-', starting with a letter, each '-' followed later by a letter); "
            "names come from cloud.base with the provider's name_salt (AZURE_NAME_SALT)"
        )
    return name


def check_job_name(name: str) -> str:
    if not _JOB_NAME.fullmatch(name):
        raise ProviderError(f"{name!r} is not a valid Azure ML job name")
    return name


@dataclass(frozen=True)
class OperationStatus:
    """What an Azure long-running operation's status URL says."""

    status: str  # InProgress, Succeeded, Failed, Canceled
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.status.lower() != "inprogress"

    @property
    def failed(self) -> bool:
        return self.status.lower() in ("failed", "canceled")


class AzureRequestError(ProviderError):
    """Azure refused a request for good (a 4xx other than 408 and 429)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AzureConflict(AzureRequestError):
    """409: another operation on the resource is under way."""


class AzureProvider(AzureServingMixin, AzureJobsMixin):
    """Workspaces, clusters and jobs in one Azure ML workspace."""

    name = "azure"
    # Azure ML cannot limit one compute instance to IP ranges: access to it
    # is by Entra ID sign-in of its assigned user.
    supports_instance_allowlist = False

    def __init__(
        self,
        *,
        subscription_id: str,
        resource_group: str,
        workspace: str,
        name_salt: str,
        tenant_id: str = "",
        client_id: str = "",
        client_secret: str = "",
        job_environment: str = "",
        environment_image: str = ENVIRONMENT_IMAGE,
        stop_schedule_cron: str = "",
        schedule_time_zone: str = "UTC",
        workspace_allowed_ips: Sequence[str] = (),
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        credential: Any = None,
        transport: Any = None,
        ml_client: MLClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        missing = [
            setting
            for setting, value in (
                ("AZURE_SUBSCRIPTION_ID", subscription_id),
                ("AZURE_RESOURCE_GROUP", resource_group),
                ("AZURE_ML_WORKSPACE", workspace),
                ("AZURE_NAME_SALT", name_salt),
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
        try:
            self.name_salt = check_salt(name_salt)
        except ValueError as exc:
            raise ProviderConfigurationError(f"AZURE_NAME_SALT: {exc}") from exc
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.tenant_id = tenant_id
        self._client_id = client_id
        self._client_secret = client_secret
        self.job_environment = job_environment
        self.environment_image = environment_image
        self.stop_schedule_cron = stop_schedule_cron
        self.schedule_time_zone = schedule_time_zone
        self.workspace_allowed_ips = tuple(validate_ip_rules(workspace_allowed_ips))
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._credential = credential
        self._transport = transport
        self._ml_client = ml_client
        self._location = ""
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    @classmethod
    def from_settings(cls) -> AzureProvider:
        from django.conf import settings

        return cls(
            subscription_id=settings.AZURE_SUBSCRIPTION_ID,
            resource_group=settings.AZURE_RESOURCE_GROUP,
            workspace=settings.AZURE_ML_WORKSPACE,
            name_salt=settings.AZURE_NAME_SALT,
            tenant_id=settings.AZURE_TENANT_ID,
            client_id=settings.AZURE_CLIENT_ID,
            client_secret=settings.AZURE_CLIENT_SECRET,
            job_environment=settings.AZURE_JOB_ENVIRONMENT,
            stop_schedule_cron=settings.AZURE_CI_STOP_CRON,
            schedule_time_zone=settings.AZURE_CI_SCHEDULE_TIME_ZONE,
            workspace_allowed_ips=settings.AZURE_WORKSPACE_ALLOWED_IPS,
            max_attempts=settings.AZURE_MAX_ATTEMPTS,
            connect_timeout=settings.AZURE_CONNECT_TIMEOUT,
            read_timeout=settings.AZURE_READ_TIMEOUT,
        )

    # --- the client ----------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``MLClient``: no SDK retries, bounded requests."""
        options: dict[str, Any] = {
            "retry_total": 0,
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "enable_telemetry": False,
            "show_progress": False,
        }
        if self._transport is not None:
            options["transport"] = self._transport
        return options

    @property
    def ml_client(self) -> MLClient:
        """The ``MLClient``, built on first use."""
        if self._ml_client is None:
            credential = self._credential
            if credential is None:
                from azure.identity import ClientSecretCredential, DefaultAzureCredential

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
                **self.client_options(),
            )
        return self._ml_client

    @property
    def _arm(self) -> Any:
        # The SDK's own ARM client for this workspace: its send_request runs
        # through the same pipeline (credential, transport, policies).
        return self.ml_client._service_client_10_2024_preview_tsp

    @property
    def _workspace_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )

    # --- calling Azure --------------------------------------------------------

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1``: exponential, half of it jitter."""
        delay = min(self.max_delay, self.base_delay * 2**attempt)
        delay = delay / 2 + self._rng.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Azure, retrying what is worth retrying; map errors to ours."""
        for attempt in range(self.max_attempts):
            try:
                return fn(*args, **kwargs)
            except ResourceNotFoundError:
                raise
            except HttpResponseError as exc:
                status = exc.status_code or 0
                if status == 409:
                    raise AzureConflict(f"{what}: 409 {_message(exc)}", status) from exc
                if status not in (408, 429) and status < 500:
                    raise AzureRequestError(f"{what}: {status} {_message(exc)}", status) from exc
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

    def _send(
        self,
        method: str,
        path: str,
        *,
        api_version: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """One ARM request through the client's pipeline; errors raised as azure-core's."""
        request = HttpRequest(
            method,
            path,
            params={"api-version": api_version, **(params or {})},
            headers=headers,
            json=json,
        )
        response = self._arm.send_request(request)
        if response.status_code == 404:
            raise ResourceNotFoundError(response=response)
        if response.status_code >= 400:
            raise HttpResponseError(response=response)
        return response

    def _request(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(what, self._send, method, path, **kwargs)

    @property
    def location(self) -> str:
        """The Azure region of the workspace (read once)."""
        if not self._location:
            body = self._request(
                f"get workspace {self.workspace}",
                "GET",
                self._workspace_path,
                api_version=WORKSPACE_API_VERSION,
            ).json()
            self._location = body["location"]
        return self._location

    def operation_status(self, url: str) -> OperationStatus:
        """Read a long-running operation's status URL (``ResourceStatus.operation_url``)."""
        parts = urlsplit(url)
        base = urlsplit(self._arm._config.base_url)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            raise ProviderError(f"Not an Azure Resource Manager URL: {url!r}")

        def read() -> Any:
            response = self._arm.send_request(HttpRequest("GET", url))
            # Throttled or a server error says nothing about the operation:
            # retried by _call, then TransientProviderError, never "Failed".
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise HttpResponseError(response=response)
            return response

        response = self._call("read operation status", read)
        if response.status_code == 202:  # a Location URL answers 202 while under way
            return OperationStatus("InProgress")
        if response.status_code >= 400:
            return OperationStatus("Failed", _response_message(response))
        try:
            body = response.json()
        except ValueError:
            body = {}
        status = str(body.get("status") or "Succeeded")
        error = body.get("error") or {}
        return OperationStatus(status, str(error.get("message") or error.get("code") or ""))

    # --- computes, as Azure answers about them ----------------------------------

    def _compute_path(self, name: str) -> str:
        return f"{self._workspace_path}/computes/{name}"

    def _get_compute(self, name: str) -> dict[str, Any] | None:
        """The compute's REST body, or None when it does not exist.

        Read raw: the SDK's entity keeps only the first provisioning error's
        code, and the portal shows the message.
        """
        try:
            response = self._request(
                f"get compute {name}",
                "GET",
                self._compute_path(name),
                api_version=COMPUTE_API_VERSION,
            )
        except ResourceNotFoundError:
            return None
        body: dict[str, Any] = response.json()
        return body

    def _compute_action(self, name: str, action: str, body: Any = None) -> str:
        """POST start/stop/resize; return the operation URL."""
        response = self._request(
            f"{action} {name}",
            "POST",
            f"{self._compute_path(name)}/{action}",
            api_version=COMPUTE_API_VERSION,
            json=body,
        )
        return _operation_url(response)

    # --- building the SDK's entities -------------------------------------------

    def build_compute_instance(self, spec: WorkspaceSpec) -> ComputeInstance:
        """The ``ComputeInstance`` for a workspace spec (not yet sent anywhere).

        The instance is personal: assigned to the owner's Entra ID object id,
        so only they can open Jupyter on it. ``spec.tracking_url`` and
        ``tracking_token`` are not applied: a compute instance has no field for
        environment variables, its setup scripts are fixed at creation and
        echoed back by the service (no place for a token that changes at each
        start), and its owner signs in as themselves.
        """
        check_compute_name(spec.name, instance=True)
        if not spec.owner_object_id:
            who = spec.owner_username or "the workspace's owner"
            raise ProviderError(
                f"The Entra ID object id of {who} is unknown: Azure ML assigns a compute "
                "instance to one user, so the portal needs it. Sign in once with Microsoft "
                "Entra ID, or ask a platform admin to set it on the user."
            )
        if not _GUID.fullmatch(spec.owner_object_id):
            raise ProviderError(f"{spec.owner_object_id!r} is not an Entra ID object id")
        if not self.tenant_id:
            raise ProviderConfigurationError(
                "Assigning a compute instance to a user needs AZURE_TENANT_ID"
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
            create_on_behalf_of=AssignedUserConfiguration(
                user_tenant_id=self.tenant_id, user_object_id=spec.owner_object_id
            ),
            schedules=schedules,
        )

    def build_cluster(self, spec: ClusterSpec) -> AmlCompute:
        """The ``AmlCompute`` for a cluster spec (not yet sent anywhere)."""
        check_compute_name(spec.name, instance=False)
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

    def build_job(self, spec: JobSpec, inputs: dict[str, str] | None = None) -> Any:
        """The job for a job spec (not yet sent anywhere): a ``command`` job,
        or a sweep or AutoML job when the spec carries one (``cloud.azure_jobs``).
        ``inputs``: the spec's inputs as uploaded (``upload_inputs``), when they are.

        A sweep's trials and an AutoML job log to the Azure ML workspace's own
        tracking (the sweep reads its objective there), so they get neither
        the portal's tracking server nor its run id."""
        check_job_name(spec.name)
        tags = {"stagegate": "job", "stagegate-spec": job_fingerprint(spec)}
        if inputs is not None:
            spec = replace(spec, inputs=inputs)
        if spec.sweep is not None and spec.automl is not None:
            raise ProviderError("A job is a sweep or an AutoML search, not both")
        if spec.automl is not None:
            return self.build_automl(spec, tags=tags)
        if spec.sweep is not None:
            own = {k: v for k, v in spec.environment.items() if not k.startswith("MLFLOW_")}
            return self.build_sweep(spec, environment_variables=own, tags=tags)
        return command(
            name=spec.name,
            display_name=spec.name,
            command=command_with_inputs(spec.command, tuple(spec.inputs)),
            code=spec.code_dir or None,
            environment=self.environment_id(spec),
            environment_variables=job_environment_variables(spec),
            compute=spec.compute,
            inputs={k: data_input(v) for k, v in spec.inputs.items()},
            tags=tags,
        )

    def _put_compute(self, entity: AmlCompute | ComputeInstance) -> str:
        entity.location = self.location
        body = entity._to_rest_object().as_dict()
        response = self._request(
            f"create compute {entity.name}",
            "PUT",
            self._compute_path(str(entity.name)),
            api_version=COMPUTE_API_VERSION,
            json=body,
        )
        return _operation_url(response)

    # --- workspaces ------------------------------------------------------------

    def _instance_status(self, name: str, body: dict[str, Any] | None) -> ResourceStatus:
        if body is None:
            return ResourceStatus(name, ResourceState.DELETED)
        outer = body.get("properties") or {}
        inner = outer.get("properties") or {}
        raw = str(inner.get("state") or "")
        provisioning = str(outer.get("provisioningState") or "")
        state = INSTANCE_STATES.get(raw.lower())
        if state is None:  # Unknown, absent or new: go by the provisioning state
            state = PROVISIONING_STATES.get(provisioning.lower(), ResourceState.CREATING)
            if state == ResourceState.RUNNING:
                state = ResourceState.FAILED  # provisioned, yet not in a usable state
        detail = f"Azure ML state {raw}" if raw else f"provisioning {provisioning}"
        failure = _failure(outer, inner)
        last = inner.get("lastOperation") or {}
        if failure and (
            state == ResourceState.FAILED or str(last.get("operationStatus", "")).endswith("Failed")
        ):
            state = ResourceState.FAILED
            detail = failure
        url = ""
        if state == ResourceState.RUNNING:
            for app in inner.get("applications") or []:
                if str(app.get("displayName", "")).lower() == "jupyter lab":
                    url = str(app.get("endpointUri", ""))
        # Idle time is Azure's own business (idle_time_before_shutdown): None.
        return ResourceStatus(name, state, url=url, detail=detail)

    def workspace_create(self, spec: WorkspaceSpec) -> ResourceStatus:
        """Begin creating the compute instance; when it exists, start it if stopped.

        Like the local provider: create means "exists and runs", and a second
        call creates nothing. ``spec.allowed_ips`` is not applied: see
        ``workspace_set_allowed_ips``.
        """
        instance = self.build_compute_instance(spec)
        existing = self._get_compute(spec.name)
        if existing is not None:
            assigned = (
                ((existing.get("properties") or {}).get("properties") or {})
                .get("personalComputeInstanceSettings", {})
                .get("assignedUser", {})
                .get("objectId", "")
            )
            if assigned and assigned.lower() != spec.owner_object_id.lower():
                raise ProviderError(
                    f"Compute instance {spec.name!r} exists and is assigned to another user"
                )
            status = self._instance_status(spec.name, existing)
            if status.state != ResourceState.STOPPED:
                return status
            return self._start(spec.name)
        url = self._put_compute(instance)
        return ResourceStatus(spec.name, ResourceState.CREATING, operation_url=url)

    def workspace_status(self, name: str) -> ResourceStatus:
        return self._instance_status(name, self._get_compute(name))

    def _start(self, name: str, detail: str = "starting") -> ResourceStatus:
        try:
            url = self._compute_action(name, "start")
        except AzureConflict as exc:  # another operation first: poll again
            return ResourceStatus(name, ResourceState.CREATING, detail=str(exc))
        return ResourceStatus(name, ResourceState.CREATING, detail=detail, operation_url=url)

    def _stop(self, name: str, detail: str = "stopping") -> ResourceStatus:
        try:
            url = self._compute_action(name, "stop")
        except AzureConflict as exc:
            return ResourceStatus(name, ResourceState.STOPPING, detail=str(exc))
        return ResourceStatus(name, ResourceState.STOPPING, detail=detail, operation_url=url)

    def workspace_start(
        self, name: str, *, tracking_url: str = "", tracking_token: str = ""
    ) -> ResourceStatus:
        """Start a stopped instance. The tracking server is not handed to a
        compute instance (see ``build_compute_instance``): the arguments are
        accepted for the protocol's sake."""
        check_compute_name(name, instance=True)
        status = self.workspace_status(name)
        if status.state == ResourceState.DELETED:
            raise ProviderError(f"No compute instance {name!r}")
        if status.state != ResourceState.STOPPED:
            return status
        return self._start(name)

    def workspace_stop(self, name: str) -> ResourceStatus:
        check_compute_name(name, instance=True)
        status = self.workspace_status(name)
        if status.state != ResourceState.RUNNING:
            return status
        return self._stop(name)

    def workspace_resize(self, name: str, size: SizeSpec) -> ResourceStatus:
        """Advance the resize one step: stop, then resize, then start.

        Azure resizes a stopped instance (``POST .../resize`` with
        ``targetVMSize``). Sizes compare case-insensitively: the service
        answers ``STANDARD_DS3_V2`` for ``Standard_DS3_v2``. Call again until
        this returns RUNNING; each call starts at most one operation.
        """
        check_compute_name(name, instance=True)
        body = self._get_compute(name)
        if body is None:
            raise ProviderError(f"No compute instance {name!r}")
        status = self._instance_status(name, body)
        current = str(((body.get("properties") or {}).get("properties") or {}).get("vmSize", ""))
        if status.state == ResourceState.FAILED:
            return status
        if current.lower() != size.name.lower():
            if status.state == ResourceState.RUNNING:
                return self._stop(name, detail="resize: stopping")
            if status.state != ResourceState.STOPPED:
                # Creating, starting, resizing or stopping: wait for it to settle.
                return ResourceStatus(name, status.state, detail=f"resize: {status.detail}")
            try:
                url = self._compute_action(name, "resize", {"targetVMSize": size.name})
            except AzureConflict as exc:
                return ResourceStatus(name, ResourceState.STOPPED, detail=str(exc))
            return ResourceStatus(
                name, ResourceState.STOPPED, detail="resize: resizing", operation_url=url
            )
        if status.state == ResourceState.STOPPED:
            return self._start(name, detail="resize: starting")
        return status

    def workspace_delete(self, name: str) -> ResourceStatus:
        check_compute_name(name, instance=True)
        return self._delete(name, self.workspace_status(name))

    def _delete(self, name: str, status: ResourceStatus) -> ResourceStatus:
        if status.state in (ResourceState.DELETED, ResourceState.DELETING):
            return status
        try:
            response = self._request(
                f"delete {name}",
                "DELETE",
                self._compute_path(name),
                api_version=COMPUTE_API_VERSION,
                params={"underlyingResourceAction": "Delete"},
            )
        except ResourceNotFoundError:
            return ResourceStatus(name, ResourceState.DELETED)
        except AzureConflict as exc:
            return ResourceStatus(name, ResourceState.DELETING, detail=str(exc))
        if response.status_code == 204:
            return ResourceStatus(name, ResourceState.DELETED)
        return ResourceStatus(name, ResourceState.DELETING, operation_url=_operation_url(response))

    def workspace_set_allowed_ips(self, name: str, cidrs: tuple[str, ...]) -> None:
        """Refuse a per-instance allowlist: Azure ML has none.

        Network rules exist for the whole Azure ML workspace only (an admin
        setting, ``workspace_network_apply``); a compute instance is reached
        through Entra ID sign-in of its assigned user. The addresses are
        still checked as Azure would, so a bad entry is reported as such.
        """
        validate_ip_rules(cidrs)
        if cidrs:
            raise ProviderError(
                "Azure ML cannot limit one compute instance to IP addresses: only its "
                "assigned user can sign in to it. Workspace-wide rules are an admin "
                "setting (AZURE_WORKSPACE_ALLOWED_IPS)."
            )

    def workspace_network_apply(self, cidrs: Sequence[str] | None = None) -> list[str]:
        """Set the Azure ML workspace's IP rules (admin only; default: the setting).

        Never changes ``publicNetworkAccess``: the rules need public access
        enabled, and (as Azure requires) a managed network or a private
        endpoint. An empty list means "allow from all networks". The update
        carries the workspace's ETag (``If-Match``); when someone changed the
        workspace meanwhile, it is read again and the update tried again.
        """
        rules = validate_ip_rules(self.workspace_allowed_ips if cidrs is None else cidrs)
        for _ in range(3):
            response = self._request(
                f"get workspace {self.workspace}",
                "GET",
                self._workspace_path,
                api_version=WORKSPACE_API_VERSION,
            )
            body = response.json()
            props = body.get("properties") or {}
            if str(props.get("publicNetworkAccess", "")).lower() != "enabled":
                raise ProviderError(
                    "The Azure ML workspace has public network access disabled: IP rules "
                    "would not apply. Change that in Azure, not from the portal."
                )
            isolation = str((props.get("managedNetwork") or {}).get("isolationMode", ""))
            private = props.get("privateEndpointConnections") or []
            if rules and isolation.lower() in ("", "disabled") and not private:
                raise ProviderError(
                    "Azure ML takes workspace IP rules only with a managed network or a "
                    "private endpoint; this workspace has neither."
                )
            etag = response.headers.get("ETag") or body.get("etag")
            if not etag:
                raise ProviderError("The workspace came without an ETag; not updating blindly")
            acls = {
                "defaultAction": "Deny" if rules else "Allow",
                "ipRules": [{"value": rule} for rule in rules],
            }
            try:
                self._request(
                    f"update network rules of {self.workspace}",
                    "PATCH",
                    self._workspace_path,
                    api_version=WORKSPACE_API_VERSION,
                    json={"properties": {"networkAcls": acls}},
                    headers={"If-Match": etag},
                )
            except AzureRequestError as exc:
                if exc.status == 412:  # changed since we read it
                    continue
                raise
            return rules
        raise TransientProviderError(
            "The workspace kept changing while its network rules were updated; try again"
        )

    # --- clusters ------------------------------------------------------------

    def _cluster_status(self, name: str, body: dict[str, Any] | None) -> ResourceStatus:
        if body is None:
            return ResourceStatus(name, ResourceState.DELETED)
        outer = body.get("properties") or {}
        inner = outer.get("properties") or {}
        provisioning = str(outer.get("provisioningState") or "")
        state = PROVISIONING_STATES.get(provisioning.lower(), ResourceState.CREATING)
        scale = inner.get("scaleSettings") or {}
        detail = (
            f"{scale.get('minNodeCount', 0)}..{scale.get('maxNodeCount', 0)} nodes of "
            f"{inner.get('vmSize', '')}, allocation {inner.get('allocationState', '')}"
        )
        failure = _failure(outer, inner)
        if state == ResourceState.FAILED and failure:
            detail = failure
        return ResourceStatus(name, state, detail=detail)

    def cluster_create(self, spec: ClusterSpec) -> ResourceStatus:
        cluster = self.build_cluster(spec)
        existing = self._get_compute(spec.name)
        if existing is not None:
            return self._cluster_status(spec.name, existing)
        url = self._put_compute(cluster)
        return ResourceStatus(spec.name, ResourceState.CREATING, operation_url=url)

    def cluster_scale(self, name: str, min_nodes: int, max_nodes: int) -> ResourceStatus:
        check_compute_name(name, instance=False)
        _check_nodes(min_nodes, max_nodes)
        body = self._get_compute(name)
        if body is None:
            raise ProviderError(f"No cluster {name!r}")
        scale = ((body.get("properties") or {}).get("properties") or {}).get("scaleSettings") or {}
        if (scale.get("minNodeCount"), scale.get("maxNodeCount")) == (min_nodes, max_nodes):
            return self._cluster_status(name, body)
        patch = {"minNodeCount": min_nodes, "maxNodeCount": max_nodes}
        if scale.get("nodeIdleTimeBeforeScaleDown"):
            patch["nodeIdleTimeBeforeScaleDown"] = scale["nodeIdleTimeBeforeScaleDown"]
        try:
            response = self._request(
                f"scale cluster {name}",
                "PATCH",
                self._compute_path(name),
                api_version=COMPUTE_API_VERSION,
                json={"properties": {"properties": {"scaleSettings": patch}}},
            )
        except AzureConflict as exc:
            return ResourceStatus(name, ResourceState.CREATING, detail=str(exc))
        return ResourceStatus(
            name,
            ResourceState.CREATING,
            detail=f"scaling to {min_nodes}..{max_nodes}",
            operation_url=_operation_url(response),
        )

    def cluster_delete(self, name: str) -> ResourceStatus:
        check_compute_name(name, instance=False)
        return self._delete(name, self.cluster_status(name))

    def cluster_status(self, name: str) -> ResourceStatus:
        return self._cluster_status(name, self._get_compute(name))

    def list_sizes(self) -> list[SizeSpec]:
        """The VM sizes of the workspace's region that compute instances can use."""
        sizes = self._call(
            "list sizes",
            lambda: list(self.ml_client.compute.list_sizes(location=self.location)),
        )
        out = []
        for s in sizes:
            # The SDK copies the REST body's camelCase keys onto the entity;
            # its snake_case attributes stay None.
            types = _field(s, "supportedComputeTypes", "supported_compute_types") or []
            if types and "computeinstance" not in {str(t).lower() for t in types}:
                continue
            out.append(
                SizeSpec(
                    str(s.name),
                    int(_field(s, "vCPUs", "v_cp_us") or 0),
                    float(_field(s, "memoryGB", "memory_gb") or 0),
                    int(_field(s, "gpus") or 0),
                )
            )
        return out

    def list_usage(self) -> list[dict[str, Any]]:
        """Core usage against the subscription's quotas in the workspace's region,
        subscription-wide and for this workspace (Azure only, not in the Protocol)."""
        usages = self._call(
            "list usage",
            lambda: list(self.ml_client.compute.list_usage(location=self.location)),
        )
        out = []
        for u in usages:
            resource_id = str(getattr(u, "id", "") or "")
            low = resource_id.lower()
            if "/computes/" in low:
                scope = "compute"
                continue  # per-cluster detail: the workspace line sums them
            if "/workspaces/" in low:
                if not low.startswith(self._workspace_path.lower()):
                    continue  # another workspace in the subscription
                scope = "workspace"
            else:
                scope = "subscription"
            name = _field(u, "name") or {}
            if not isinstance(name, dict):
                name = {"value": getattr(name, "value", ""), "localizedValue": ""}
            out.append(
                {
                    "name": str(name.get("value") or ""),
                    "label": str(name.get("localizedValue") or name.get("value") or ""),
                    "scope": scope,
                    "current": int(_field(u, "currentValue", "current_value") or 0),
                    "limit": int(_field(u, "limit") or 0),
                    "unit": str(_enum_value(_field(u, "unit")) or ""),
                }
            )
        return out

    # --- jobs ----------------------------------------------------------------

    def _get_job(self, name: str) -> Any | None:
        try:
            return self._call(f"get job {name}", self.ml_client.jobs.get, name)
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _job_status(name: str, job: Any) -> JobStatus:
        raw = str(_enum_value(job.status) or "")
        return JobStatus(name, JOB_STATES.get(raw.lower(), JobState.QUEUED), detail=raw)

    def job_submit(self, spec: JobSpec) -> JobStatus:
        """Submit the command job; nothing is sent when this job exists.

        Job names are permanent in a workspace (even after deletion): a job
        of that name made from another spec is refused, not taken for ours.
        """
        job = self.build_job(spec)
        existing = self._get_job(spec.name)
        if existing is not None:
            fingerprint = (existing.tags or {}).get("stagegate-spec")
            if fingerprint != job_fingerprint(spec):
                raise ProviderError(
                    f"Job name {spec.name!r} is already taken in the Azure ML workspace by "
                    "another job (job names are permanent)"
                )
            return self._job_status(spec.name, existing)
        if spec.requirements and spec.automl is None:
            self.environment_ensure(spec.requirements)
        uploaded = self.upload_inputs(spec)
        if uploaded != spec.inputs:
            job = self.build_job(spec, uploaded)
        submitted = self._call(f"submit job {spec.name}", self.ml_client.jobs.create_or_update, job)
        return self._job_status(spec.name, submitted)

    def job_status(self, name: str) -> JobStatus:
        job = self._get_job(name)
        if job is None:
            raise ProviderError(f"No job {name!r}")
        return self._job_status(name, job)

    def job_cancel(self, name: str) -> JobStatus:
        status = self.job_status(name)
        if status.state in JOB_DONE or status.detail.lower() == "cancelrequested":
            return status
        try:
            self._request(
                f"cancel job {name}",
                "POST",
                f"{self._workspace_path}/jobs/{name}/cancel",
                api_version=JOB_API_VERSION,
            )
        except AzureConflict:
            return self.job_status(name)
        return JobStatus(name, JobState.CANCELED, detail="cancel requested")

    def job_logs(self, name: str, tail: int = 200) -> str:
        """The last ``tail`` lines of the job's standard output, also while it runs.

        A sweep's or AutoML job's own run has no output: its log is the list of
        its trials and their states (``trials_summary``).

        The run history lists the job's log files with readable (SAS) URLs;
        ``user_logs/std_log*.txt`` (the first process's, for distributed
        jobs) is read from its end with HTTP range requests, growing the
        window until it holds ``tail`` lines or ``LOG_MAX_BYTES``.
        """
        if tail <= 0:
            return ""
        jobs = self.ml_client.jobs
        try:
            details = self._call(
                f"get run details of {name}", jobs._runs_operations.get_run_details, name
            )
        except ResourceNotFoundError as exc:
            raise ProviderError(f"No job {name!r}") from exc
        logs = {
            k: v
            for k, v in (details.log_files or {}).items()
            if re.fullmatch(r"user_logs/std_log[\w.-]*\.txt", k)
        }
        if not logs:
            # A sweep or AutoML job writes no output of its own: its trials do.
            return self.trials_summary(name, tail)
        url = logs[sorted(logs)[0]]
        return self._tail(jobs._requests_pipeline, url, tail)

    def _tail(self, pipeline: Any, url: str, lines: int) -> str:
        def ranged(start: int, end: int) -> Any:
            response = pipeline.get(url, headers={"Range": f"bytes={start}-{end}"})
            if response.status_code == 416:
                return response
            if response.status_code >= 400:
                raise HttpResponseError(response=response)
            return response

        first = self._call("read log", ranged, 0, 0)
        if first.status_code == 416:
            return ""  # empty so far
        size = _content_range_total(first)
        window = LOG_WINDOW
        while True:
            start = max(0, size - window)
            data = self._call("read log", ranged, start, size - 1).content
            text = data.decode("utf-8", errors="replace")
            got = text.splitlines()
            if start > 0:
                got = got[1:]  # the first line is cut
            if len(got) >= lines or start == 0 or window >= LOG_MAX_BYTES:
                return "\n".join(got[-lines:])
            window *= 4


def job_environment_variables(spec: JobSpec) -> dict[str, str]:
    """A job's environment: its own variables, and the project's tracking server.

    Azure ML compute reaches the portal over the network, so the URI is the
    portal's own. The SDK has no secret field for a command job, so the token
    travels as an environment variable of the job (readable by whoever may
    read the Azure ML workspace's job definitions): it is scoped to one
    project's tracking server and revoked when the job ends. It is never
    logged, nor part of ``job_fingerprint``.
    """
    env = dict(spec.environment)
    if spec.tracking_url:
        env["MLFLOW_TRACKING_URI"] = spec.tracking_url
        env["MLFLOW_TRACKING_TOKEN"] = spec.tracking_token
    return env


def job_fingerprint(spec: JobSpec) -> str:
    """A short hash of what makes a job this job (command, compute, inputs,
    code; requirements, sweep and AutoML settings when it has them)."""
    parts: list[Any] = [spec.command, spec.compute, spec.code_dir, *sorted(spec.inputs.items())]
    for extra in (spec.requirements, spec.sweep, spec.automl):
        if extra:
            parts.append(repr(extra))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def validate_ip_rules(cidrs: Sequence[str]) -> list[str]:
    """Addresses Azure ML takes as IP rules: public IPv4 addresses or ranges, at most 200."""
    valid: list[str] = []
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError as exc:
            raise ProviderError(f"Invalid address or CIDR {cidr!r}") from exc
        if network.version != 4:
            raise ProviderError(f"Azure ML network rules take IPv4 only, not {cidr!r}")
        if not network.is_global:
            raise ProviderError(
                f"{cidr!r} is a private or reserved range; Azure ML rules take public addresses"
            )
        value = str(network.network_address) if network.prefixlen == 32 else str(network)
        if value not in valid:
            valid.append(value)
    if len(valid) > MAX_IP_RULES:
        raise ProviderError(f"Azure ML takes at most {MAX_IP_RULES} IP rules, not {len(valid)}")
    return valid


def _failure(outer: dict[str, Any], inner: dict[str, Any]) -> str:
    """The service's words for why a compute failed, if it says."""
    messages = []
    for entry in (outer.get("provisioningErrors") or []) + (inner.get("errors") or []):
        error = entry.get("error") if isinstance(entry, dict) and "error" in entry else entry
        if isinstance(error, dict):
            text = error.get("message") or error.get("code")
            if text:
                messages.append(str(text))
    last = inner.get("lastOperation") or {}
    if str(last.get("operationStatus", "")).endswith("Failed"):
        messages.insert(0, f"{last.get('operationName', 'operation')} failed")
    return "; ".join(messages)[:480]


def _operation_url(response: Any) -> str:
    headers = response.headers
    return str(headers.get("Azure-AsyncOperation") or headers.get("Location") or "")


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = vars(obj).get(name) if hasattr(obj, "__dict__") else None
        if value is None:
            value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _enum_value(value: Any) -> Any:
    """``str(JobStatus.COMPLETED)`` is ``"JobStatus.COMPLETED"``: read ``.value``."""
    return getattr(value, "value", value)


def _content_range_total(response: Any) -> int:
    header = response.headers.get("Content-Range", "")
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", header.strip())
    if match:
        return int(match.group(1))
    if response.status_code == 200:  # the server ignored Range: it sent everything
        return len(response.content)
    raise ProviderError(f"Unexpected Content-Range {header!r} reading a log")


def _response_message(response: Any) -> str:
    try:
        error = response.json().get("error") or {}
        return str(error.get("message") or error.get("code") or response.status_code)
    except ValueError:
        return str(response.status_code)


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
