"""The Azure ML provider through a real ``azure.ai.ml.MLClient``.

The client is the SDK's own, with a fake credential; only its HTTP transport
is a test double (``tests/cloud/azure_transport.py``) answering like Azure
Resource Manager, the run history API and blob storage, from fixtures shaped
like the REST API's examples. The assertions are on the HTTP requests the
SDK and the provider send and on what the provider makes of the answers.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml._restclient.arm_ml_service.models import ComputeInstanceState
from azure.ai.ml._restclient.arm_ml_service.models import JobStatus as RestJobStatus
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline.policies import RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import ClientSecretCredential

from cloud.azure import (
    INSTANCE_STATES,
    JOB_STATES,
    LOG_WINDOW,
    AzureProvider,
    check_compute_name,
    validate_ip_rules,
)
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
    cluster_name,
    endpoint_name,
    job_name,
    workspace_name,
)
from tests.cloud.azure_transport import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    FakeAzureML,
)

SALT = "k7q"
DS3 = SizeSpec("Standard_DS3_v2", 4, 14.0)
E4 = SizeSpec("Standard_E4s_v3", 4, 32.0)
TENANT = "11111111-1111-1111-1111-111111111111"
OBJECT_ID = "22222222-2222-2222-2222-222222222222"
WS = workspace_name(1, SALT)
CL = cluster_name(1, SALT)
JOB = job_name(1, SALT)


class FakeCredential:
    """A ``TokenCredential`` that never leaves the machine."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo("fake-token", int(time.time()) + 3600)


@pytest.fixture
def azure() -> FakeAzureML:
    return FakeAzureML()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def provider(azure: FakeAzureML, sleeps: list[float]) -> AzureProvider:
    return AzureProvider(
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        workspace=WORKSPACE,
        name_salt=SALT,
        tenant_id=TENANT,
        job_environment="azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        credential=FakeCredential(),
        transport=azure,
        sleep=sleeps.append,
        rng=random.Random(7),
    )


def spec(name: str = WS, size: SizeSpec = DS3, **kwargs: Any) -> WorkspaceSpec:
    kwargs.setdefault("owner_username", "bob")
    kwargs.setdefault("owner_object_id", OBJECT_ID)
    return WorkspaceSpec(name, size, **kwargs)


def test_the_client_is_the_sdks_own_over_the_injected_transport(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    assert isinstance(provider.ml_client, MLClient)
    provider.workspace_status(WS)
    (request,) = azure.requests
    assert request.headers["Authorization"] == "Bearer fake-token"
    assert request.method == "GET"
    assert request.path.endswith(f"/workspaces/{WORKSPACE}/computes/{WS}")


# --- names -------------------------------------------------------------------


def test_salted_names_are_valid_azure_names() -> None:
    for pk in (1, 7, 99_999, 10**9):
        assert check_compute_name(workspace_name(pk, SALT), instance=True)
    assert workspace_name(7, SALT) == "sg-k7q-ws7"
    assert len(workspace_name(10**11, "abcdef")) == 24
    with pytest.raises(ValueError):
        workspace_name(10**12, "abcdef")
    assert check_compute_name(cluster_name(9_999_999, "abcdef"), instance=False)
    assert job_name(7, SALT) == "sg-k7q-job7"
    assert endpoint_name(7, SALT) == "sg-k7q-ep7"
    with pytest.raises(ValueError):
        cluster_name(10**8, "abcdef")  # would pass 16 characters
    for bad in ("7ab", "ab", "a-b", "ABC", "abcdefg"):
        with pytest.raises(ValueError):
            workspace_name(1, bad)
    # Without a salt: the local provider's historical names, which Azure refuses.
    assert workspace_name(7) == "sg-ws-7"
    for name in ("sg-ws-7", "cpu-cluster-1", "a-", "ab", "x" * 25, "1abc"):
        with pytest.raises(ProviderError):
            check_compute_name(name, instance=True)


def test_the_provider_refuses_an_invalid_name_before_sending(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    with pytest.raises(ProviderError, match="not a valid Azure ML compute instance name"):
        provider.workspace_create(spec("sg-ws-7"))
    with pytest.raises(ProviderError, match="cluster name"):
        provider.cluster_create(ClusterSpec("sg-cl-7", DS3))
    assert azure.requests == []


def test_the_provider_needs_a_name_salt() -> None:
    with pytest.raises(ProviderConfigurationError, match="AZURE_NAME_SALT"):
        AzureProvider(subscription_id="s", resource_group="rg", workspace="ws", name_salt="")
    with pytest.raises(ProviderConfigurationError, match="AZURE_NAME_SALT"):
        AzureProvider(subscription_id="s", resource_group="rg", workspace="ws", name_salt="A-1")


# --- workspaces (compute instances) --------------------------------------------


def test_create_sends_one_put_assigned_to_the_owner_and_starts_no_poller(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    threads = threading.active_count()
    status = provider.workspace_create(spec(idle_shutdown_minutes=30))
    assert status.state == ResourceState.CREATING
    assert "computeOperationsStatus" in status.operation_url
    assert azure.summary() == [
        f"GET /computes/{WS}",
        "GET /",  # the workspace's region
        f"PUT /computes/{WS}",
    ]
    put = azure.calls("PUT")[0]
    assert put.api_version == "2024-10-01-preview"
    assert put.body["location"] == "westeurope"
    props = put.body["properties"]
    assert props["computeType"] == "ComputeInstance"
    assert props["disableLocalAuth"] is True
    inner = props["properties"]
    assert inner["vmSize"] == "Standard_DS3_v2"
    assert inner["idleTimeBeforeShutdown"] == "PT30M"
    assert inner["sshSettings"] == {"sshPublicAccess": "Disabled"}
    assert inner["computeInstanceAuthorizationType"] == "personal"
    assert inner["personalComputeInstanceSettings"] == {
        "assignedUser": {"objectId": OBJECT_ID, "tenantId": TENANT}
    }
    assert put.body["tags"] == {"stagegate": "workspace", "stagegate-owner": "bob"}
    assert threading.active_count() == threads  # no LRO poller thread

    # Retried task: the instance exists now (Creating), nothing is sent again.
    assert provider.workspace_create(spec()).state == ResourceState.CREATING
    assert len(azure.calls("PUT")) == 1

    # Create on a stopped instance starts it.
    azure.set_state(WS, "Stopped")
    started = provider.workspace_create(spec())
    assert started.state == ResourceState.CREATING
    assert azure.summary()[-1] == f"POST /computes/{WS}/start"
    assert started.operation_url.startswith("https://management.azure.com/")

    azure.set_state(
        WS,
        "Running",
        applications=[
            {
                "displayName": "Jupyter",
                "endpointUri": f"https://{WS}.westeurope.instances.azureml.ms/tree/",
            },
            {
                "displayName": "Jupyter Lab",
                "endpointUri": f"https://{WS}.westeurope.instances.azureml.ms/lab",
            },
        ],
    )
    running = provider.workspace_create(spec())
    assert running.state == ResourceState.RUNNING
    assert running.url == f"https://{WS}.westeurope.instances.azureml.ms/lab"
    assert running.idle_seconds is None  # Azure enforces idle shutdown itself


def test_without_the_owners_object_id_nothing_is_created(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    with pytest.raises(ProviderError, match="Entra ID object id of bob is unknown"):
        provider.workspace_create(spec(owner_object_id=""))
    with pytest.raises(ProviderError, match="not an Entra ID object id"):
        provider.workspace_create(spec(owner_object_id="bob@example.com"))
    assert azure.requests == []


def test_an_instance_assigned_to_someone_else_is_not_taken_over(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    azure.add_compute(WS, state="Stopped")
    other = "99999999-9999-9999-9999-999999999999"
    with pytest.raises(ProviderError, match="assigned to another user"):
        provider.workspace_create(spec(owner_object_id=other))
    assert azure.calls("POST") == []


EXPECTED_INSTANCE_STATES = {
    "Creating": ResourceState.CREATING,
    "Starting": ResourceState.CREATING,
    "Restarting": ResourceState.CREATING,
    "SettingUp": ResourceState.CREATING,
    "UserSettingUp": ResourceState.CREATING,
    "Resizing": ResourceState.CREATING,
    "Running": ResourceState.RUNNING,
    "JobRunning": ResourceState.RUNNING,
    "Stopping": ResourceState.STOPPING,
    "Stopped": ResourceState.STOPPED,
    "Deleting": ResourceState.DELETING,
    "CreateFailed": ResourceState.FAILED,
    "SetupFailed": ResourceState.FAILED,
    "UserSetupFailed": ResourceState.FAILED,
    "Unusable": ResourceState.FAILED,
    "Unknown": ResourceState.FAILED,  # with provisioning Succeeded: not usable
}


def test_every_instance_state_the_api_defines_is_mapped() -> None:
    assert {s.value for s in ComputeInstanceState} == set(EXPECTED_INSTANCE_STATES)
    assert {s.value.lower() for s in ComputeInstanceState} == set(INSTANCE_STATES)


@pytest.mark.parametrize(("azure_state", "ours"), sorted(EXPECTED_INSTANCE_STATES.items()))
def test_instance_states_from_real_responses(
    provider: AzureProvider, azure: FakeAzureML, azure_state: str, ours: ResourceState
) -> None:
    azure.add_compute(WS, state=azure_state)
    status = provider.workspace_status(WS)
    assert status.state == ours
    assert status.detail == f"Azure ML state {azure_state}"
    assert (status.url != "") == (ours == ResourceState.RUNNING)


def test_unknown_while_provisioning_is_still_creating(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    body = azure.add_compute(WS, state="Unknown")
    body["properties"]["provisioningState"] = "Creating"
    assert provider.workspace_status(WS).state == ResourceState.CREATING
    assert provider.workspace_status(workspace_name(404, SALT)).state == ResourceState.DELETED


def test_a_failed_provisioning_reports_the_services_message(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    body = azure.add_compute(WS, state="CreateFailed")
    body["properties"]["provisioningState"] = "Failed"
    body["properties"]["provisioningErrors"] = [
        {
            "error": {
                "code": "QuotaExceeded",
                "message": "Not enough quota for Standard DSv2 Family vCPUs in westeurope",
            }
        }
    ]
    status = provider.workspace_status(WS)
    assert status.state == ResourceState.FAILED
    assert "Not enough quota for Standard DSv2 Family vCPUs" in status.detail


def test_a_failed_start_is_failed_not_stopped(provider: AzureProvider, azure: FakeAzureML) -> None:
    azure.add_compute(
        WS,
        state="Stopped",
        lastOperation={
            "operationName": "Start",
            "operationTime": "2025-03-04T09:20:00.000Z",
            "operationStatus": "StartFailed",
            "operationTrigger": "User",
        },
        errors=[{"error": {"code": "AllocationFailed", "message": "No capacity for the size"}}],
    )
    status = provider.workspace_status(WS)
    assert status.state == ResourceState.FAILED
    assert status.detail == "Start failed; No capacity for the size"


def test_the_operation_url_tells_how_the_operation_went(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    url = provider.workspace_create(spec()).operation_url
    assert provider.operation_status(url).done is False
    op_id = re.search(r"computeOperationsStatus/([\w-]+)", url).group(1)  # type: ignore[union-attr]
    azure.operations[op_id] = {
        "status": "Failed",
        "error": {"code": "BadRequest", "message": "Subnet has no free addresses"},
    }
    result = provider.operation_status(url)
    assert result.failed and result.detail == "Subnet has no free addresses"
    with pytest.raises(ProviderError, match="Not an Azure Resource Manager URL"):
        provider.operation_status("https://attacker.example/op")


def test_a_throttled_operation_read_is_retried_not_taken_for_a_failure(
    provider: AzureProvider, azure: FakeAzureML, sleeps: list[float]
) -> None:
    url = provider.workspace_create(spec()).operation_url
    azure.fail("GET", "computeOperationsStatus", 429, headers={"Retry-After": "3"})
    azure.fail("GET", "computeOperationsStatus", 503)
    result = provider.operation_status(url)
    assert not result.done and not result.failed  # the third read answered: InProgress
    assert len(azure.calls("GET", "computeOperationsStatus")) == 3
    assert sleeps[0] >= 3
    azure.fail("GET", "computeOperationsStatus", 500, times=provider.max_attempts)
    with pytest.raises(TransientProviderError, match="read operation status"):
        provider.operation_status(url)


def test_start_and_stop_send_one_post_each_and_are_idempotent(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    azure.add_compute(WS, state="Running")
    assert provider.workspace_start(WS).state == ResourceState.RUNNING
    stopping = provider.workspace_stop(WS)
    assert stopping.state == ResourceState.STOPPING and stopping.operation_url
    assert provider.workspace_stop(WS).state == ResourceState.STOPPING  # fake now says Stopping
    azure.set_state(WS, "Stopped")
    assert provider.workspace_stop(WS).state == ResourceState.STOPPED
    assert provider.workspace_start(WS).state == ResourceState.CREATING
    assert [r.path.rsplit("/", 1)[-1] for r in azure.calls("POST")] == ["stop", "start"]
    assert all(r.api_version == "2024-10-01-preview" for r in azure.calls("POST"))


def test_a_409_on_start_or_stop_means_poll_again(
    provider: AzureProvider, azure: FakeAzureML, sleeps: list[float]
) -> None:
    azure.add_compute(WS, state="Stopped")
    azure.fail("POST", r"/start$", 409, code="Conflict")
    status = provider.workspace_start(WS)
    assert status.state == ResourceState.CREATING
    assert "409" in status.detail
    azure.set_state(WS, "Running")
    azure.fail("POST", r"/stop$", 409)
    assert provider.workspace_stop(WS).state == ResourceState.STOPPING
    assert sleeps == []  # not retried: the caller polls


def test_delete(provider: AzureProvider, azure: FakeAzureML) -> None:
    azure.add_compute(WS, state="Running")
    status = provider.workspace_delete(WS)
    assert status.state == ResourceState.DELETING and status.operation_url
    delete = azure.calls("DELETE")[0]
    assert delete.query["underlyingResourceAction"] == ["Delete"]
    assert provider.workspace_delete(WS).state == ResourceState.DELETING  # no second DELETE
    del azure.computes[WS]
    assert provider.workspace_delete(WS).state == ResourceState.DELETED
    assert len(azure.calls("DELETE")) == 1
    with pytest.raises(ProviderError):
        provider.workspace_start(WS)


def test_no_per_instance_state_lands_in_workspace_tags(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    for pk in range(1, 60):  # more than Azure's 50 tags per resource
        name = workspace_name(pk, SALT)
        provider.workspace_create(spec(name, allowed_ips=("20.61.0.7",)))
        azure.set_state(name, "Running")
        provider.workspace_stop(name)
        provider.workspace_delete(name)
    touched = [r for r in azure.requests if r.path.endswith(f"/workspaces/{WORKSPACE}")]
    assert {r.method for r in touched} == {"GET"}
    assert azure.workspace["tags"] == {"team": "data-science"}


# --- resize ------------------------------------------------------------------------


def test_a_right_sized_instance_is_left_alone_whatever_the_case(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    azure.add_compute(WS, state="Running", vmSize="STANDARD_DS3_V2")  # as Azure answers
    assert provider.workspace_resize(WS, DS3).state == ResourceState.RUNNING
    assert azure.calls("POST") == []


def test_resize_is_stop_then_the_resize_action_then_start(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    azure.add_compute(WS, state="Running", vmSize="STANDARD_DS3_V2")
    assert provider.workspace_resize(WS, E4).state == ResourceState.STOPPING
    assert azure.summary()[-1] == f"POST /computes/{WS}/stop"

    assert provider.workspace_resize(WS, E4).state == ResourceState.STOPPING  # still stopping
    assert len(azure.calls("POST")) == 1

    azure.set_state(WS, "Stopped")
    step = provider.workspace_resize(WS, E4)
    assert step.state == ResourceState.STOPPED
    resize = azure.calls("POST")[-1]
    assert resize.path.endswith(f"/computes/{WS}/resize")
    assert resize.body == {"targetVMSize": "Standard_E4s_v3"}
    assert resize.api_version == "2024-10-01-preview"
    assert "computeOperationsStatus" in step.operation_url  # from the Location header
    assert azure.calls("PUT") == []  # not a re-sent instance

    # The fake says Resizing now: wait, send nothing.
    assert provider.workspace_resize(WS, E4).state == ResourceState.CREATING
    assert len(azure.calls("POST")) == 2

    azure.set_state(WS, "Stopped", vmSize="STANDARD_E4S_V3")
    assert provider.workspace_resize(WS, E4).state == ResourceState.CREATING
    assert azure.summary()[-1] == f"POST /computes/{WS}/start"

    azure.set_state(WS, "Running", vmSize="STANDARD_E4S_V3")
    assert provider.workspace_resize(WS, E4).state == ResourceState.RUNNING
    assert len(azure.calls("POST")) == 3


def test_a_failed_resize_is_reported(provider: AzureProvider, azure: FakeAzureML) -> None:
    azure.add_compute(
        WS,
        state="Stopped",
        lastOperation={"operationName": "Resize", "operationStatus": "ResizeFailed"},
        errors=[
            {"error": {"code": "SkuNotAvailable", "message": "Standard_E4s_v3 is not available"}}
        ],
    )
    status = provider.workspace_resize(WS, E4)
    assert status.state == ResourceState.FAILED
    assert "Standard_E4s_v3 is not available" in status.detail
    assert azure.calls("POST") == []


# --- network ----------------------------------------------------------------------


def test_a_per_instance_allowlist_is_refused_not_faked(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    assert provider.supports_instance_allowlist is False
    with pytest.raises(ProviderError, match="cannot limit one compute instance"):
        provider.workspace_set_allowed_ips(WS, ("20.61.0.7",))
    provider.workspace_set_allowed_ips(WS, ())  # nothing to enforce
    with pytest.raises(ProviderError, match="private or reserved"):
        provider.workspace_set_allowed_ips(WS, ("10.1.2.3",))
    assert azure.requests == []


def test_ip_rules_are_validated_as_azure_does() -> None:
    assert validate_ip_rules(["20.61.0.7/32", "20.61.0.0/16", " 52.1.2.0/24", "20.61.0.7"]) == [
        "20.61.0.7",
        "20.61.0.0/16",
        "52.1.2.0/24",
    ]
    for bad in (
        "10.0.0.0/8",
        "172.16.4.0/24",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.0.1",
        "100.64.0.1",
        "2001:db8::/32",
        "2a01:111::1",
        "300.1.1.1",
        "not-an-ip",
    ):
        with pytest.raises(ProviderError):
            validate_ip_rules([bad])
    many = [f"20.{i // 250}.{i % 250}.1" for i in range(201)]
    with pytest.raises(ProviderError, match="at most 200"):
        validate_ip_rules(many)
    assert len(validate_ip_rules(many[:200])) == 200


def test_workspace_rules_need_a_managed_network_or_private_endpoint(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    with pytest.raises(ProviderError, match="managed network or a private endpoint"):
        provider.workspace_network_apply(["20.61.0.0/16"])
    azure.workspace["properties"]["publicNetworkAccess"] = "Disabled"
    azure.workspace["properties"]["managedNetwork"] = {"isolationMode": "AllowInternetOutbound"}
    with pytest.raises(ProviderError, match="public network access disabled"):
        provider.workspace_network_apply(["20.61.0.0/16"])
    assert azure.calls("PATCH") == []


def test_workspace_rules_are_patched_with_the_etag_and_leave_public_access_alone(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    azure.workspace["properties"]["managedNetwork"] = {"isolationMode": "AllowOnlyApprovedOutbound"}
    etag = azure.workspace_etag
    # Someone changed the workspace between our read and our write: 412, read again.
    azure.fail("PATCH", rf"/workspaces/{WORKSPACE}$", 412, code="PreconditionFailed")
    assert provider.workspace_network_apply(["20.61.0.0/16", "52.1.2.3"]) == [
        "20.61.0.0/16",
        "52.1.2.3",
    ]
    patches = azure.calls("PATCH")
    assert len(patches) == 2
    assert all(p.headers["If-Match"] == etag for p in patches)  # the fake's ETag did not change
    assert patches[-1].body == {
        "properties": {
            "networkAcls": {
                "defaultAction": "Deny",
                "ipRules": [{"value": "20.61.0.0/16"}, {"value": "52.1.2.3"}],
            }
        }
    }
    assert azure.workspace["properties"]["publicNetworkAccess"] == "Enabled"
    assert azure.workspace_etag != etag

    # Empty: allow from all networks again, still with the (new) ETag.
    assert provider.workspace_network_apply([]) == []
    assert azure.calls("PATCH")[-1].headers["If-Match"] != etag
    assert azure.workspace["properties"]["networkAcls"] == {"defaultAction": "Allow", "ipRules": []}


# --- clusters, sizes, usage ----------------------------------------------------------


def test_cluster_create_scale_delete(provider: AzureProvider, azure: FakeAzureML) -> None:
    status = provider.cluster_create(
        ClusterSpec(CL, DS3, min_nodes=0, max_nodes=2, low_priority=True)
    )
    assert status.state == ResourceState.CREATING
    inner = azure.calls("PUT")[0].body["properties"]["properties"]
    assert inner["vmPriority"] == "LowPriority"
    assert inner["scaleSettings"] == {
        "minNodeCount": 0,
        "maxNodeCount": 2,
        "nodeIdleTimeBeforeScaleDown": "PT10M",
    }
    assert inner["remoteLoginPortPublicAccess"] == "Disabled"

    azure.add_compute(CL, "aml_compute.json")
    assert provider.cluster_create(ClusterSpec(CL, DS3, max_nodes=2)).state == ResourceState.RUNNING
    assert len(azure.calls("PUT")) == 1
    assert provider.cluster_status(CL).detail == (
        "0..2 nodes of STANDARD_DS3_V2, allocation Steady"
    )
    scaled = provider.cluster_scale(CL, 1, 8)
    assert scaled.state == ResourceState.CREATING and scaled.operation_url
    assert azure.calls("PATCH")[0].body == {
        "properties": {
            "properties": {
                "scaleSettings": {
                    "minNodeCount": 1,
                    "maxNodeCount": 8,
                    "nodeIdleTimeBeforeScaleDown": "PT10M",
                }
            }
        }
    }
    assert provider.cluster_delete(CL).state == ResourceState.DELETING
    assert provider.cluster_delete(cluster_name(404, SALT)).state == ResourceState.DELETED
    with pytest.raises(ProviderError):
        provider.cluster_scale(CL, 3, 1)


def test_sizes_are_read_from_the_fields_azure_fills(provider: AzureProvider) -> None:
    assert provider.list_sizes() == [
        SizeSpec("Standard_DS3_v2", 4, 14.0, 0),
        SizeSpec("Standard_E4s_v3", 4, 32.0, 0),
        SizeSpec("Standard_NC6s_v3", 6, 112.0, 1),
    ]


def test_usage_is_read_from_the_fields_azure_fills(provider: AzureProvider) -> None:
    assert provider.list_usage() == [
        {
            "name": "Total Cluster Dedicated Regional vCPUs",
            "label": "Total Cluster Dedicated Regional vCPUs",
            "scope": "subscription",
            "current": 14,
            "limit": 24,
            "unit": "Count",
        },
        {
            "name": "Standard DSv2 Family Cluster Dedicated vCPUs",
            "label": "Standard DSv2 Family Cluster Dedicated vCPUs",
            "scope": "subscription",
            "current": 8,
            "limit": 24,
            "unit": "Count",
        },
        {
            "name": "Standard DSv2 Family Cluster Dedicated vCPUs",
            "label": "Standard DSv2 Family Cluster Dedicated vCPUs",
            "scope": "workspace",
            "current": 4,
            "limit": 24,
            "unit": "Count",
        },
        {
            "name": "Total Cluster LowPriority Regional vCPUs",
            "label": "Total Cluster LowPriority Regional vCPUs",
            "scope": "subscription",
            "current": 0,
            "limit": -1,
            "unit": "Count",
        },
    ]


# --- jobs ------------------------------------------------------------------------


def test_every_job_status_the_api_defines_is_mapped() -> None:
    assert {s.value.lower() for s in RestJobStatus} == set(JOB_STATES)


@pytest.mark.parametrize(
    ("azure_status", "ours"),
    [
        ("NotStarted", JobState.QUEUED),
        ("Queued", JobState.QUEUED),
        ("Preparing", JobState.QUEUED),
        ("Running", JobState.RUNNING),
        ("Finalizing", JobState.RUNNING),
        ("CancelRequested", JobState.RUNNING),
        ("Completed", JobState.SUCCEEDED),
        ("Failed", JobState.FAILED),
        ("Canceled", JobState.CANCELED),
    ],
)
def test_job_status_from_real_responses(
    provider: AzureProvider, azure: FakeAzureML, azure_status: str, ours: JobState
) -> None:
    azure.add_job(JOB, azure_status)
    status = provider.job_status(JOB)
    assert (status.state, status.detail) == (ours, azure_status)


def test_a_finished_job_is_not_canceled(provider: AzureProvider, azure: FakeAzureML) -> None:
    azure.add_job(JOB, "Completed")
    assert provider.job_cancel(JOB).state == JobState.SUCCEEDED
    azure.add_job(JOB, "Running")
    assert provider.job_cancel(JOB).state == JobState.CANCELED
    assert provider.job_cancel(JOB).detail == "CancelRequested"  # sent once
    assert len(azure.calls("POST", "/cancel")) == 1


def test_job_submit_sends_the_command_job_once(provider: AzureProvider, azure: FakeAzureML) -> None:
    job = JobSpec(
        JOB,
        "python train.py --data ${{inputs.train}}",
        compute=CL,
        environment={"ALPHA": "0.5"},
        inputs={"train": "azureml://datastores/snapshots/paths/ab12/"},
    )
    assert provider.job_submit(job).state == JobState.QUEUED
    (put,) = azure.calls("PUT", "/jobs/")
    props = put.body["properties"]
    assert props["jobType"] == "Command"
    # The template reads its data from SG_INPUT_<NAME>, as on the local provider:
    # Azure replaces ${{inputs.train}} in the command with the input's path.
    assert props["command"] == (
        "export SG_INPUT_TRAIN=${{inputs.train}}; python train.py --data ${{inputs.train}}"
    )
    assert props["computeId"].endswith(f"/computes/{CL}")
    assert props["environmentVariables"] == {"ALPHA": "0.5"}
    assert props["inputs"]["train"]["uri"] == "azureml://datastores/snapshots/paths/ab12/"
    assert props["environmentId"].startswith("azureml://registries/azureml/environments/sklearn")
    assert provider.job_submit(job).state == JobState.QUEUED  # a retried task
    assert len(azure.calls("PUT", "/jobs/")) == 1


def test_a_command_jobs_inputs_reach_its_process_as_sg_input_variables(
    provider: AzureProvider, azure: FakeAzureML, tmp_path: Path
) -> None:
    """A compound command's every part sees the paths Azure puts in for the inputs."""
    job = JobSpec(
        JOB,
        "cd . && python -c \"import os; print(os.environ['SG_INPUT_TRAIN'], "
        "os.environ['SG_INPUT_TEST'])\"",
        compute=CL,
        inputs={
            "train": "azureml://datastores/snapshots/paths/ab12/train.parquet",
            "test": "azureml://datastores/snapshots/paths/ab12/test.parquet",
        },
    )
    provider.job_submit(job)
    (put,) = azure.calls("PUT", "/jobs/")
    command = put.body["properties"]["command"]
    assert set(put.body["properties"]["inputs"]) == {"train", "test"}
    # What Azure does before running it: each binding becomes the input's mounted path.
    mounted = re.sub(r"\$\{\{inputs\.(\w+)\}\}", rf"{tmp_path}/\1.parquet", command)
    out = subprocess.run(
        ["/bin/bash", "-c", mounted.replace("python", sys.executable)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert out.stdout.split() == [f"{tmp_path}/train.parquet", f"{tmp_path}/test.parquet"]

    # Job names are permanent: another job under that name is not ours.
    other = JobSpec(JOB, "python other.py", compute=CL)
    with pytest.raises(ProviderError, match="already taken"):
        provider.job_submit(other)


def test_logs_are_tailed_with_ranged_reads_while_the_job_runs(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    azure.add_job(JOB, "Running")
    lines = [f"epoch {i} loss {1 / (i + 1):.6f}" for i in range(20_000)]  # ~ 500 KB
    azure.logs[JOB] = {
        "user_logs/std_log.txt": "\n".join(lines) + "\n",
        "system_logs/lifecycler/execution-wrapper.log": "not this one",
    }
    assert provider.job_logs(JOB, tail=3) == "\n".join(lines[-3:])
    blob_reads = [r for r in azure.requests if "blob.core.windows.net" in r.url]
    assert all("Authorization" not in r.headers for r in blob_reads)  # a SAS URL, no ARM token
    assert [r.headers["Range"] for r in blob_reads][:2] == [
        "bytes=0-0",
        f"bytes={len(azure.logs[JOB]['user_logs/std_log.txt']) - LOG_WINDOW}-"
        f"{len(azure.logs[JOB]['user_logs/std_log.txt']) - 1}",
    ]
    # More lines than one window holds: the window grows, still from the end.
    tail = provider.job_logs(JOB, tail=5000)
    assert tail.splitlines() == lines[-5000:]

    azure.logs[JOB]["user_logs/std_log.txt"] = ""
    assert provider.job_logs(JOB) == ""  # nothing written yet (416)
    with pytest.raises(ProviderError):
        provider.job_logs(job_name(404, SALT))


# --- retries and timeouts ---------------------------------------------------------------


def test_the_sdk_does_not_retry_and_requests_are_bounded() -> None:
    provider = AzureProvider(
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        workspace=WORKSPACE,
        name_salt=SALT,
        tenant_id=TENANT,
        client_id="client",
        client_secret="not-a-real-secret",  # noqa: S106
        connect_timeout=7,
        read_timeout=33,
    )
    assert provider._ml_client is None  # built on first use
    client = provider.ml_client
    assert isinstance(client._credential, ClientSecretCredential)
    pipeline = provider._arm._client._pipeline
    transport = pipeline._transport
    assert isinstance(transport, RequestsTransport)
    assert (transport.connection_config.timeout, transport.connection_config.read_timeout) == (
        7,
        33,
    )
    retries = [p for p in pipeline._impl_policies if isinstance(p, RetryPolicy)]
    assert retries and all(p.total_retries == 0 for p in retries)
    logs = client.jobs._requests_pipeline
    assert all(p.total_retries == 0 for p in logs._impl_policies if isinstance(p, RetryPolicy))
    assert provider.ml_client is client


def test_throttling_and_server_errors_are_retried_by_the_provider_alone(
    provider: AzureProvider, azure: FakeAzureML, sleeps: list[float]
) -> None:
    azure.add_compute(WS, state="Stopped")
    azure.fail("POST", r"/start$", 429)
    azure.fail("POST", r"/start$", 503)
    azure.fail("POST", r"/start$", 500)
    assert provider.workspace_start(WS).state == ResourceState.CREATING
    assert len(azure.calls("POST")) == 4  # one HTTP request per provider try
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        cap = 2.0**attempt
        assert cap / 2 <= delay <= cap


def test_retry_after_is_honoured(
    provider: AzureProvider, azure: FakeAzureML, sleeps: list[float]
) -> None:
    azure.fail("GET", r"/computes/", 429, headers={"Retry-After": "7"})
    assert provider.workspace_status(WS).state == ResourceState.DELETED
    assert sleeps == [7.0]


def test_after_the_last_try_the_error_is_transient(
    provider: AzureProvider, azure: FakeAzureML, sleeps: list[float]
) -> None:
    azure.fail("GET", r"/computes/", 503, times=10)
    with pytest.raises(TransientProviderError, match="gave up after 5 tries"):
        provider.workspace_status(WS)
    assert len(azure.requests) == 5
    assert len(sleeps) == 4 and all(d <= provider.max_delay for d in sleeps)


@pytest.mark.parametrize("status", [400, 403])
def test_client_errors_are_final(
    provider: AzureProvider, azure: FakeAzureML, sleeps: list[float], status: int
) -> None:
    azure.fail("PUT", r"/computes/", status)
    with pytest.raises(ProviderError) as raised:
        provider.workspace_create(spec())
    assert not isinstance(raised.value, TransientProviderError)
    assert f"{status}" in str(raised.value)
    assert len(azure.calls("PUT")) == 1 and sleeps == []


# --- entities the SDK builds -------------------------------------------------------------


def test_idle_shutdown_is_clamped_and_the_stop_schedule_sent(azure: FakeAzureML) -> None:
    provider = AzureProvider(
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        workspace=WORKSPACE,
        name_salt=SALT,
        tenant_id=TENANT,
        stop_schedule_cron="0 22 * * *",
        schedule_time_zone="W. Europe Standard Time",
        credential=FakeCredential(),
        transport=azure,
    )

    def idle(minutes: int) -> str | None:
        inner = provider.build_compute_instance(spec(idle_shutdown_minutes=minutes))
        props = inner._to_rest_object().as_dict()["properties"]["properties"]
        schedule = props["schedules"]["computeStartStop"][0]
        assert (schedule["action"], schedule["triggerType"]) == ("Stop", "Cron")
        assert schedule["cron"]["expression"] == "0 22 * * *"
        assert schedule["cron"]["timeZone"] == "W. Europe Standard Time"
        return props.get("idleTimeBeforeShutdown")

    assert idle(5) == "PT15M"
    assert idle(60 * 24 * 45) == "PT4320M"  # 3 days, not 45
    assert idle(0) is None


# --- configuration and the live check --------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subscription_id": "", "resource_group": "rg", "workspace": "ws", "name_salt": SALT},
        {"subscription_id": "s", "resource_group": "", "workspace": "ws", "name_salt": SALT},
        {"subscription_id": "s", "resource_group": "rg", "workspace": "", "name_salt": SALT},
        {
            "subscription_id": "s",
            "resource_group": "rg",
            "workspace": "ws",
            "name_salt": SALT,
            "client_id": "c",
        },
        {
            "subscription_id": "s",
            "resource_group": "rg",
            "workspace": "ws",
            "name_salt": SALT,
            "workspace_allowed_ips": ["10.0.0.0/8"],
        },
    ],
)
def test_the_provider_refuses_to_build_without_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ProviderError):
        AzureProvider(**kwargs)


def test_the_live_check_script_says_when_it_did_not_run(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    script = Path(__file__).resolve().parents[2] / "scripts" / "azure-live-check.py"
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "LIVE AZURE CHECKS DID NOT RUN" in done.stderr


# --- the tracking server -------------------------------------------------------


def test_a_job_gets_the_tracking_server_and_its_token_as_environment_variables(
    provider: AzureProvider, azure: FakeAzureML, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    job = JobSpec(
        JOB,
        "python train.py",
        compute=CL,
        environment={"ALPHA": "0.5"},
        tracking_url="https://portal.example/mlflow/churn",
        tracking_token="sgt_secret-of-the-job",
    )
    assert provider.job_submit(job).state == JobState.QUEUED
    (put,) = azure.calls("PUT", "/jobs/")
    assert put.body["properties"]["environmentVariables"] == {
        "ALPHA": "0.5",
        "MLFLOW_TRACKING_URI": "https://portal.example/mlflow/churn",
        "MLFLOW_TRACKING_TOKEN": "sgt_secret-of-the-job",
    }
    # Not in the tag that recognises the job again, and never logged.
    assert "sgt_secret" not in str(put.body["properties"]["tags"])
    assert "sgt_secret" not in caplog.text
    # A retried task with a new token finds the same job.
    again = JobSpec(**{**job.__dict__, "tracking_token": "sgt_another"})
    assert provider.job_submit(again).state == JobState.QUEUED
    assert len(azure.calls("PUT", "/jobs/")) == 1


def test_a_compute_instance_is_not_given_the_token(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    instance = provider.build_compute_instance(
        spec(tracking_url="https://portal.example/mlflow/churn", tracking_token="sgt_secret")
    )
    assert "sgt_secret" not in str(instance._to_rest_object().as_dict())
