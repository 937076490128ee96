"""The Azure ML provider, offline: the SDK's own entities, serialized by the SDK,
handed to a recording stand-in for ``MLClient``'s operation groups."""

from __future__ import annotations

import os
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import (
    AmlCompute,
    ComputeInstance,
    Usage,
    UsageName,
    VmSize,
    Workspace,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.identity import ClientSecretCredential

from cloud.azure import AzureProvider
from cloud.base import (
    ClusterSpec,
    JobSpec,
    JobState,
    ProviderConfigurationError,
    ProviderError,
    ResourceState,
    SizeSpec,
    TransientProviderError,
    WorkspaceSpec,
)

DS3 = SizeSpec("Standard_DS3_v2", 4, 14.0)
E4 = SizeSpec("Standard_E4s_v3", 4, 32.0)
TENANT = "11111111-1111-1111-1111-111111111111"
OBJECT_ID = "22222222-2222-2222-2222-222222222222"


class Poller:
    """What ``begin_*`` returns: the provider must not wait on it."""

    def __init__(self, what: str) -> None:
        self.what = what

    def done(self) -> bool:
        return False

    def status(self) -> str:
        return "InProgress"

    def result(self, timeout: float | None = None) -> Any:
        raise AssertionError(f"the provider blocked on {self.what}")


def http_error(status: int, retry_after: str | None = None) -> HttpResponseError:
    error = HttpResponseError(message=f"status {status}")
    error.status_code = status
    if retry_after is not None:
        error.response = SimpleNamespace(headers={"Retry-After": retry_after})  # type: ignore[assignment]
    return error


class Group:
    """One operation group (``compute``, ``jobs``, ``workspaces``) that records calls.

    ``failures[method]`` is a list of exceptions raised by the next calls of
    that method, before it behaves normally.
    """

    def __init__(self, name: str, calls: list[tuple[str, str, tuple[Any, ...]]]) -> None:
        self.name = name
        self.calls = calls
        self.items: dict[str, Any] = {}
        self.failures: dict[str, list[Exception]] = {}

    def _record(self, method: str, *args: Any) -> None:
        self.calls.append((self.name, method, args))
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    def get(self, name: str) -> Any:
        self._record("get", name)
        if name not in self.items:
            raise ResourceNotFoundError(message=f"{name} not found")
        return self.items[name]

    def begin_create_or_update(self, entity: Any) -> Poller:
        self._record("begin_create_or_update", entity)
        return Poller("create")

    def begin_update(self, entity: Any) -> Poller:
        self._record("begin_update", entity)
        return Poller("update")

    def begin_start(self, name: str) -> Poller:
        self._record("begin_start", name)
        return Poller("start")

    def begin_stop(self, name: str) -> Poller:
        self._record("begin_stop", name)
        return Poller("stop")

    def begin_delete(self, name: str) -> Poller:
        self._record("begin_delete", name)
        return Poller("delete")

    def list_usage(self) -> list[Usage]:
        self._record("list_usage")
        return [
            Usage(  # type: ignore[abstract]
                name=UsageName(
                    value="standardDSv2Family", localized_value="Standard DSv2 Family vCPUs"
                ),
                current_value=8,
                limit=24,
                unit="Count",
            )
        ]

    def list_sizes(self) -> list[VmSize]:
        self._record("list_sizes")
        return [
            VmSize(name="Standard_DS3_v2", v_cp_us=4, memory_gb=14.0, gpus=0),  # type: ignore[abstract]
            VmSize(name="Standard_NC6s_v3", v_cp_us=6, memory_gb=112.0, gpus=1),  # type: ignore[abstract]
        ]

    def create_or_update(self, job: Any) -> Any:
        self._record("create_or_update", job)
        return SimpleNamespace(name=job.name, status="Starting")

    def begin_cancel(self, name: str) -> Poller:
        self._record("begin_cancel", name)
        return Poller("cancel")

    def download(self, name: str, *, download_path: str) -> None:
        self._record("download", name)
        logs = Path(download_path) / "artifacts" / "user_logs"
        logs.mkdir(parents=True)
        (logs / "std_log.txt").write_text("".join(f"epoch {i}\n" for i in range(10)))


class RecordingMLClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.compute = Group("compute", self.calls)
        self.jobs = Group("jobs", self.calls)
        self.workspaces = Group("workspaces", self.calls)
        self.workspaces.items["ws"] = Workspace(name="ws", tags={"team": "ds"})

    def methods(self, group: str | None = None) -> list[str]:
        return [m for g, m, _ in self.calls if group is None or g == group]


@pytest.fixture
def ml() -> RecordingMLClient:
    return RecordingMLClient()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def provider(ml: RecordingMLClient, sleeps: list[float]) -> AzureProvider:
    return AzureProvider(
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="rg-stagegate",
        workspace="ws",
        tenant_id=TENANT,
        job_environment="azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        ml_client=ml,
        sleep=sleeps.append,
        rng=random.Random(7),
    )


def instance(name: str, state: str, size: str = "Standard_DS3_v2") -> ComputeInstance:
    return ComputeInstance(
        name=name,
        size=size,
        state=state,
        services=[
            {"displayName": "Jupyter", "endpointUri": "https://x.instances.azureml.ms/tree/"},
            {"displayName": "Jupyter Lab", "endpointUri": "https://x.instances.azureml.ms/lab"},
        ],
    )


# --- the REST shape of the entities ------------------------------------------


def test_compute_instance_rest_shape(provider: AzureProvider) -> None:
    spec = WorkspaceSpec(
        "sg-ws-7", DS3, owner_username="bob", owner_object_id=OBJECT_ID, idle_shutdown_minutes=30
    )
    entity = provider.build_compute_instance(spec)
    rest = entity._to_rest_object().as_dict()
    props = rest["properties"]
    assert props["computeType"] == "ComputeInstance"
    assert props["disableLocalAuth"] is True
    inner = props["properties"]
    assert inner["vmSize"] == "Standard_DS3_v2"
    assert inner["idleTimeBeforeShutdown"] == "PT30M"
    assert inner["sshSettings"] == {"sshPublicAccess": "Disabled"}
    assert inner["personalComputeInstanceSettings"] == {
        "assignedUser": {"objectId": OBJECT_ID, "tenantId": TENANT}
    }
    assert "schedules" not in inner
    assert rest["tags"] == {"stagegate": "workspace", "stagegate-owner": "bob"}
    as_yaml = entity._to_dict()
    assert as_yaml["type"] == "computeinstance"
    assert as_yaml["ssh_public_access_enabled"] is False
    assert as_yaml["idle_time_before_shutdown_minutes"] == 30


def test_idle_shutdown_is_clamped_to_what_azure_accepts(provider: AzureProvider) -> None:
    def idle(minutes: int) -> str | None:
        entity = provider.build_compute_instance(
            WorkspaceSpec("sg-ws-8", DS3, idle_shutdown_minutes=minutes)
        )
        inner = entity._to_rest_object().as_dict()["properties"]["properties"]
        assert "personalComputeInstanceSettings" not in inner
        return inner.get("idleTimeBeforeShutdown")

    assert idle(5) == "PT15M"
    assert idle(60 * 24 * 45) == "PT4320M"  # 3 days, not 45
    assert idle(0) is None


def test_stop_schedule_rest_shape(ml: RecordingMLClient) -> None:
    provider = AzureProvider(
        subscription_id="s",
        resource_group="rg",
        workspace="ws",
        stop_schedule_cron="0 22 * * *",
        schedule_time_zone="W. Europe Standard Time",
        ml_client=ml,
    )
    inner = provider.build_compute_instance(WorkspaceSpec("sg-ws-9", DS3))._to_rest_object()
    schedule = inner.as_dict()["properties"]["properties"]["schedules"]["computeStartStop"][0]
    assert schedule["action"] == "Stop"
    assert schedule["triggerType"] == "Cron"
    assert schedule["cron"]["expression"] == "0 22 * * *"
    assert schedule["cron"]["timeZone"] == "W. Europe Standard Time"


def test_on_behalf_of_needs_a_tenant(ml: RecordingMLClient) -> None:
    provider = AzureProvider(subscription_id="s", resource_group="rg", workspace="ws", ml_client=ml)
    with pytest.raises(ProviderConfigurationError):
        provider.build_compute_instance(WorkspaceSpec("sg-ws-1", DS3, owner_object_id=OBJECT_ID))


def test_cluster_rest_shape(provider: AzureProvider) -> None:
    spec = ClusterSpec("sg-cl-3", DS3, min_nodes=0, max_nodes=4, low_priority=True)
    rest = provider.build_cluster(spec)._to_rest_object().as_dict()["properties"]
    assert rest["computeType"] == "AmlCompute"
    inner = rest["properties"]
    assert inner["vmPriority"] == "LowPriority"
    assert inner["vmSize"] == "Standard_DS3_v2"
    assert inner["scaleSettings"] == {
        "minNodeCount": 0,
        "maxNodeCount": 4,
        "nodeIdleTimeBeforeScaleDown": "PT10M",
    }
    assert inner["remoteLoginPortPublicAccess"] == "Disabled"
    dedicated = provider.build_cluster(ClusterSpec("sg-cl-4", DS3, min_nodes=1, max_nodes=2))
    inner = dedicated._to_rest_object().as_dict()["properties"]["properties"]
    assert inner["vmPriority"] == "Dedicated"
    assert inner["scaleSettings"]["minNodeCount"] == 1
    assert dedicated._to_dict()["tier"] == "dedicated"
    with pytest.raises(ProviderError):
        provider.build_cluster(ClusterSpec("sg-cl-5", DS3, min_nodes=3, max_nodes=1))


def test_job_rest_shape(provider: AzureProvider, tmp_path: Path) -> None:
    spec = JobSpec(
        "sg-job-5",
        "python train.py --data ${{inputs.train}}",
        compute="sg-cl-3",
        environment={"ALPHA": "0.5"},
        inputs={"train": "azureml://datastores/snapshots/paths/ab12/"},
    )
    rest = provider.build_job(spec)._to_job()._to_rest_object().as_dict()
    assert rest["name"] == "sg-job-5"
    props = rest["properties"]
    assert props["jobType"] == "Command"
    assert props["computeId"] == "sg-cl-3"
    assert props["command"] == "python train.py --data ${{inputs.train}}"
    assert props["environmentVariables"] == {"ALPHA": "0.5"}
    assert props["inputs"]["train"] == {
        "uri": "azureml://datastores/snapshots/paths/ab12/",
        "jobInputType": "uri_folder",
    }
    assert props["environmentId"].startswith("azureml://registries/azureml/environments/sklearn")


# --- the calls ------------------------------------------------------------------


def test_workspace_create_sends_the_instance_once_and_does_not_wait(
    provider: AzureProvider, ml: RecordingMLClient
) -> None:
    spec = WorkspaceSpec("sg-ws-1", DS3, owner_object_id=OBJECT_ID, idle_shutdown_minutes=30)
    status = provider.workspace_create(spec)
    assert status.state == ResourceState.CREATING
    assert ml.methods() == ["get", "begin_create_or_update"]
    sent = ml.calls[1][2][0]
    assert isinstance(sent, ComputeInstance)
    assert sent.name == "sg-ws-1" and sent.size == "Standard_DS3_v2"

    # Retried task: the instance exists now, nothing is sent again.
    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Creating")
    assert provider.workspace_create(spec).state == ResourceState.CREATING
    assert ml.methods() == ["get", "begin_create_or_update", "get"]

    # Create on a stopped instance starts it (create means "exists and runs").
    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Stopped")
    assert provider.workspace_create(spec).state == ResourceState.CREATING
    assert ml.methods()[-2:] == ["get", "begin_start"]

    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Running")
    assert provider.workspace_create(spec).state == ResourceState.RUNNING
    assert ml.methods().count("begin_create_or_update") == 1
    running = provider.workspace_status("sg-ws-1")
    assert running.state == ResourceState.RUNNING
    assert running.url == "https://x.instances.azureml.ms/lab"
    assert running.idle_seconds is None  # Azure enforces idle shutdown itself
    assert provider.workspace_status("sg-ws-404").state == ResourceState.DELETED


@pytest.mark.parametrize(
    ("azure_state", "ours"),
    [
        ("Creating", ResourceState.CREATING),
        ("Starting", ResourceState.CREATING),
        ("SettingUp", ResourceState.CREATING),
        ("Running", ResourceState.RUNNING),
        ("JobRunning", ResourceState.RUNNING),
        ("Stopping", ResourceState.STOPPING),
        ("Stopped", ResourceState.STOPPED),
        ("Deleting", ResourceState.DELETING),
        ("CreateFailed", ResourceState.FAILED),
        ("Unusable", ResourceState.FAILED),
    ],
)
def test_instance_states(
    provider: AzureProvider, ml: RecordingMLClient, azure_state: str, ours: ResourceState
) -> None:
    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", azure_state)
    assert provider.workspace_status("sg-ws-1").state == ours


def test_start_stop_delete_are_idempotent(provider: AzureProvider, ml: RecordingMLClient) -> None:
    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Running")
    assert provider.workspace_start("sg-ws-1").state == ResourceState.RUNNING
    assert provider.workspace_stop("sg-ws-1").state == ResourceState.STOPPING
    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Stopped")
    assert provider.workspace_stop("sg-ws-1").state == ResourceState.STOPPED
    assert provider.workspace_start("sg-ws-1").state == ResourceState.CREATING
    assert [m for m in ml.methods() if m.startswith("begin")] == ["begin_stop", "begin_start"]
    assert ("compute", "begin_start", ("sg-ws-1",)) in ml.calls

    assert provider.workspace_delete("sg-ws-1").state == ResourceState.DELETING
    assert ("compute", "begin_delete", ("sg-ws-1",)) in ml.calls
    del ml.compute.items["sg-ws-1"]
    assert provider.workspace_delete("sg-ws-1").state == ResourceState.DELETED
    assert ml.methods().count("begin_delete") == 1
    with pytest.raises(ProviderError):
        provider.workspace_start("sg-ws-1")


def test_resize_is_stop_then_update_then_start(
    provider: AzureProvider, ml: RecordingMLClient
) -> None:
    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Running")
    step = provider.workspace_resize("sg-ws-1", E4)
    assert (step.state, ml.methods()[-1]) == (ResourceState.STOPPING, "begin_stop")

    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Stopping")
    assert provider.workspace_resize("sg-ws-1", E4).state == ResourceState.STOPPING
    assert ml.methods()[-1] == "get"

    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Stopped")
    assert provider.workspace_resize("sg-ws-1", E4).state == ResourceState.STOPPED
    assert ml.methods()[-1] == "begin_create_or_update"
    sent = ml.calls[-1][2][0]
    assert sent.name == "sg-ws-1"
    assert sent._to_rest_object().as_dict()["properties"]["properties"]["vmSize"] == (
        "Standard_E4s_v3"
    )

    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Stopped", size="Standard_E4s_v3")
    assert provider.workspace_resize("sg-ws-1", E4).state == ResourceState.CREATING
    assert ml.methods()[-1] == "begin_start"

    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Running", size="Standard_E4s_v3")
    assert provider.workspace_resize("sg-ws-1", E4).state == ResourceState.RUNNING
    assert ml.methods()[-1] == "get"


def test_allowlist_goes_into_the_workspace_network_acl(
    provider: AzureProvider, ml: RecordingMLClient
) -> None:
    provider.workspace_set_allowed_ips("sg-ws-1", ("203.0.113.7", "198.51.100.0/24"))
    provider.workspace_set_allowed_ips("sg-ws-2", ("192.0.2.1/32", "203.0.113.7/32"))
    updates = [args[0] for g, m, args in ml.calls if m == "begin_update"]
    assert len(updates) == 2
    sent = updates[-1]
    assert isinstance(sent, Workspace)
    assert sent.public_network_access == "Enabled"
    assert sent.network_acls is not None
    assert sent.network_acls._to_rest_object().as_dict() == {
        "defaultAction": "Deny",
        "ipRules": [
            {"value": "203.0.113.7"},
            {"value": "198.51.100.0/24"},
            {"value": "192.0.2.1"},
        ],
    }
    assert sent.tags == {
        "team": "ds",
        "stagegate-allowed-ips-sg-ws-1": "203.0.113.7,198.51.100.0/24",
        "stagegate-allowed-ips-sg-ws-2": "192.0.2.1,203.0.113.7",
    }

    # Clearing both lists opens the workspace again.
    provider.workspace_set_allowed_ips("sg-ws-1", ())
    provider.workspace_set_allowed_ips("sg-ws-2", ())
    sent = [args[0] for g, m, args in ml.calls if m == "begin_update"][-1]
    assert sent.network_acls is not None
    assert sent.network_acls._to_rest_object().as_dict() == {"defaultAction": "Allow"}
    assert sent.tags == {"team": "ds"}

    for bad in ("2001:db8::/32", "300.1.1.1", "not-an-ip"):
        with pytest.raises(ProviderError):
            provider.workspace_set_allowed_ips("sg-ws-1", (bad,))


def test_cluster_calls(provider: AzureProvider, ml: RecordingMLClient) -> None:
    spec = ClusterSpec("sg-cl-1", DS3, min_nodes=0, max_nodes=2, low_priority=True)
    assert provider.cluster_create(spec).state == ResourceState.CREATING
    sent = ml.calls[-1][2][0]
    assert isinstance(sent, AmlCompute) and sent.tier == "low_priority"

    ml.compute.items["sg-cl-1"] = AmlCompute(
        name="sg-cl-1", size="Standard_DS3_v2", max_instances=2, provisioning_state="Succeeded"
    )
    assert provider.cluster_create(spec).state == ResourceState.RUNNING
    assert ml.methods().count("begin_create_or_update") == 1
    assert provider.cluster_status("sg-cl-1").detail == "0..2 nodes of Standard_DS3_v2"

    provider.cluster_scale("sg-cl-1", 1, 8)
    assert ml.methods()[-1] == "begin_update"
    scaled = ml.calls[-1][2][0]._to_rest_object().as_dict()["properties"]["properties"]
    assert scaled["scaleSettings"]["minNodeCount"] == 1
    assert scaled["scaleSettings"]["maxNodeCount"] == 8

    assert provider.cluster_delete("sg-cl-1").state == ResourceState.DELETING
    assert ml.methods()[-1] == "begin_delete"
    assert provider.cluster_delete("sg-cl-404").state == ResourceState.DELETED
    assert provider.list_usage() == [
        {
            "name": "standardDSv2Family",
            "label": "Standard DSv2 Family vCPUs",
            "current": 8,
            "limit": 24,
            "unit": "Count",
        }
    ]
    assert provider.list_sizes() == [
        SizeSpec("Standard_DS3_v2", 4, 14.0, 0),
        SizeSpec("Standard_NC6s_v3", 6, 112.0, 1),
    ]


def test_job_calls(provider: AzureProvider, ml: RecordingMLClient) -> None:
    spec = JobSpec("sg-job-1", "python train.py", compute="sg-cl-1")
    assert provider.job_submit(spec).state == JobState.QUEUED
    assert ml.methods("jobs") == ["get", "create_or_update"]
    assert ml.calls[-1][2][0].name == "sg-job-1"

    ml.jobs.items["sg-job-1"] = SimpleNamespace(name="sg-job-1", status="Running")
    assert provider.job_submit(spec).state == JobState.RUNNING
    assert ml.methods("jobs").count("create_or_update") == 1
    assert provider.job_cancel("sg-job-1").state == JobState.CANCELED
    assert ml.methods("jobs")[-1] == "begin_cancel"

    ml.jobs.items["sg-job-1"] = SimpleNamespace(name="sg-job-1", status="Completed")
    assert provider.job_cancel("sg-job-1").state == JobState.SUCCEEDED
    assert ml.methods("jobs").count("begin_cancel") == 1
    assert provider.job_logs("sg-job-1", tail=3) == "epoch 7\nepoch 8\nepoch 9"
    with pytest.raises(ProviderError):
        provider.job_status("sg-job-404")


# --- retries --------------------------------------------------------------------


def test_throttling_and_server_errors_are_retried_with_backoff(
    provider: AzureProvider, ml: RecordingMLClient, sleeps: list[float]
) -> None:
    ml.compute.items["sg-ws-1"] = instance("sg-ws-1", "Stopped")
    ml.compute.failures["begin_start"] = [
        http_error(429),
        http_error(503),
        ServiceRequestError("reset"),
    ]
    assert provider.workspace_start("sg-ws-1").state == ResourceState.CREATING
    assert ml.methods().count("begin_start") == 4
    # Exponential (1, 2, 4 s caps) with half of each delay as jitter.
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        cap = 2.0**attempt
        assert cap / 2 <= delay <= cap
    assert sleeps[0] < sleeps[2]


def test_retry_after_is_honoured(
    provider: AzureProvider, ml: RecordingMLClient, sleeps: list[float]
) -> None:
    ml.compute.failures["get"] = [http_error(429, retry_after="7")]
    assert provider.workspace_status("sg-ws-1").state == ResourceState.DELETED
    assert sleeps == [7.0]


def test_after_the_last_try_the_error_is_transient(
    provider: AzureProvider, ml: RecordingMLClient, sleeps: list[float]
) -> None:
    ml.compute.failures["get"] = [http_error(503) for _ in range(10)]
    with pytest.raises(TransientProviderError, match="gave up after 5 tries"):
        provider.workspace_status("sg-ws-1")
    assert ml.methods().count("get") == 5
    assert len(sleeps) == 4
    assert all(d <= provider.max_delay for d in sleeps)


@pytest.mark.parametrize("status", [400, 403, 409])
def test_client_errors_are_not_retried(
    provider: AzureProvider, ml: RecordingMLClient, sleeps: list[float], status: int
) -> None:
    ml.compute.failures["begin_create_or_update"] = [http_error(status)]
    with pytest.raises(ProviderError) as raised:
        provider.workspace_create(WorkspaceSpec("sg-ws-1", DS3))
    assert not isinstance(raised.value, TransientProviderError)
    assert ml.methods().count("begin_create_or_update") == 1
    assert sleeps == []


# --- configuration and the live check --------------------------------------------


def test_the_client_is_built_lazily_with_a_service_principal() -> None:
    provider = AzureProvider(
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="rg",
        workspace="ws",
        tenant_id=TENANT,
        client_id="client",
        client_secret="not-a-real-secret",  # noqa: S106
    )
    assert provider._ml_client is None
    client = provider.ml_client
    assert isinstance(client, MLClient)
    assert isinstance(client._credential, ClientSecretCredential)
    assert provider.ml_client is client


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subscription_id": "", "resource_group": "rg", "workspace": "ws"},
        {"subscription_id": "s", "resource_group": "", "workspace": "ws"},
        {"subscription_id": "s", "resource_group": "rg", "workspace": ""},
        {"subscription_id": "s", "resource_group": "rg", "workspace": "ws", "client_id": "c"},
    ],
)
def test_the_provider_refuses_to_build_without_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ProviderConfigurationError):
        AzureProvider(**kwargs)


LIVE_SETTINGS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_ML_WORKSPACE")


def test_live_azure(capsys: pytest.CaptureFixture[str]) -> None:
    """Against a real Azure ML workspace where one is configured; otherwise
    checks that the provider refuses to build, and says so."""
    missing = [name for name in LIVE_SETTINGS if not os.environ.get(name)]
    if missing:
        with pytest.raises(ProviderConfigurationError, match="AZURE_"):
            AzureProvider(
                subscription_id=os.environ.get("AZURE_SUBSCRIPTION_ID", ""),
                resource_group=os.environ.get("AZURE_RESOURCE_GROUP", ""),
                workspace=os.environ.get("AZURE_ML_WORKSPACE", ""),
            )
        with capsys.disabled():
            print(
                f"\nlive Azure ML checks need credentials: set {', '.join(missing)} "
                "(and AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET or a "
                "default azure-identity login); only the offline checks ran."
            )
        return
    provider = AzureProvider(
        subscription_id=os.environ["AZURE_SUBSCRIPTION_ID"],
        resource_group=os.environ["AZURE_RESOURCE_GROUP"],
        workspace=os.environ["AZURE_ML_WORKSPACE"],
        tenant_id=os.environ.get("AZURE_TENANT_ID", ""),
        client_id=os.environ.get("AZURE_CLIENT_ID", ""),
        client_secret=os.environ.get("AZURE_CLIENT_SECRET", ""),
    )
    sizes = provider.list_sizes()
    assert sizes and all(s.vcpus > 0 for s in sizes)
    assert provider.workspace_status("sg-ws-does-not-exist").state == ResourceState.DELETED
