"""Serving on Azure ML offline: the SDK's own entities and ARM pipeline, with
the recording stand-in for Azure Resource Manager (``azure_transport.py``)."""

from __future__ import annotations

import random
import re

import pytest

from cloud.azure import AzureProvider
from cloud.base import (
    DeploymentSpec,
    EndpointSpec,
    ProviderError,
    ResourceState,
    ServingProvider,
    SizeSpec,
    TransientProviderError,
    endpoint_name,
)
from tests.cloud.azure_transport import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    WS_PATH,
    FakeAzureML,
    Fault,
)
from tests.cloud.test_azure import SALT, TENANT, FakeCredential

EP = endpoint_name(1, SALT)
DS3 = SizeSpec("Standard_DS3_v2", 4, 14.0)


@pytest.fixture
def azure() -> FakeAzureML:
    return FakeAzureML()


@pytest.fixture
def provider(azure: FakeAzureML) -> AzureProvider:
    return AzureProvider(
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        workspace=WORKSPACE,
        name_salt=SALT,
        tenant_id=TENANT,
        credential=FakeCredential(),
        transport=azure,
        sleep=lambda seconds: None,
        rng=random.Random(7),
    )


def blue(name: str = "blue", version: int = 3) -> DeploymentSpec:
    return DeploymentSpec(EP, name, DS3, model_id=f"azureml:churn-model:{version}")


def test_the_azure_provider_serves(provider: AzureProvider) -> None:
    assert isinstance(provider, ServingProvider)


def test_endpoint_and_deployments_are_made_once_with_the_sdks_entities(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    status = provider.endpoint_create(EndpointSpec(EP, key_sha256="ab" * 32))
    assert status.state == ResourceState.CREATING
    assert status.url == f"https://{EP}.westeurope.inference.ml.azure.com/score"
    (put,) = azure.calls("PUT", f"/onlineEndpoints/{EP}")
    assert put.body["properties"]["authMode"] == "Key"
    assert put.body["identity"] == {"type": "SystemAssigned"}
    assert "ab" * 32 not in str(put.body)  # Azure issues its own keys
    provider.endpoint_create(EndpointSpec(EP))  # a retried task
    assert len(azure.calls("PUT", f"/onlineEndpoints/{EP}")) == 1

    azure.online[EP]["properties"]["provisioningState"] = "Succeeded"
    assert provider.endpoint_status(EP).state == ResourceState.RUNNING

    assert provider.deployment_start(blue()).state == ResourceState.CREATING
    (dep,) = azure.calls("PUT", "/deployments/blue")
    props = dep.body["properties"]
    assert props["endpointComputeType"] == "Managed"
    assert props["instanceType"] == "Standard_DS3_v2"
    assert props["model"] == f"{WS_PATH}/models/churn-model/versions/3"
    assert dep.body["sku"] == {"name": "Default", "capacity": 1}
    assert provider.deployment_status(EP, "blue").state == ResourceState.CREATING
    azure.online[f"{EP}/blue"]["properties"]["provisioningState"] = "Succeeded"
    assert provider.deployment_status(EP, "blue").state == ResourceState.RUNNING
    azure.online[f"{EP}/blue"]["properties"]["provisioningState"] = "Failed"
    assert provider.deployment_status(EP, "blue").state == ResourceState.FAILED


def test_traffic_and_mirror_reach_the_endpoint(provider: AzureProvider, azure: FakeAzureML) -> None:
    provider.endpoint_create(EndpointSpec(EP))
    provider.endpoint_set_traffic(EP, {"blue": 90, "green": 10}, mirror={"green": 20})
    put = azure.calls("PUT", f"/onlineEndpoints/{EP}")[-1]
    assert put.body["properties"]["traffic"] == {"blue": 90, "green": 10}
    assert put.body["properties"]["mirrorTraffic"] == {"green": 20}
    # The rollback: everything back, no mirror left.
    provider.endpoint_set_traffic(EP, {"blue": 100, "green": 0})
    put = azure.calls("PUT", f"/onlineEndpoints/{EP}")[-1]
    assert put.body["properties"]["traffic"] == {"blue": 100, "green": 0}
    assert put.body["properties"]["mirrorTraffic"] == {}
    with pytest.raises(ProviderError, match="add up to 100"):
        provider.endpoint_set_traffic(EP, {"blue": 60})
    with pytest.raises(ProviderError, match="No endpoint"):
        provider.endpoint_set_traffic(endpoint_name(2, SALT), {"blue": 100})


def test_stop_deletes_the_deployment_and_errors_are_mapped(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    provider.endpoint_create(EndpointSpec(EP))
    provider.deployment_start(blue())
    assert provider.deployment_stop(EP, "blue").state == ResourceState.STOPPING
    assert azure.calls("DELETE", "/deployments/blue")
    del azure.online[f"{EP}/blue"]
    assert provider.deployment_status(EP, "blue").state == ResourceState.STOPPED
    assert provider.deployment_stop(EP, "blue").state == ResourceState.STOPPED
    with pytest.raises(ProviderError, match="Invalid deployment"):
        provider.deployment_status(EP, "../x")
    with pytest.raises(ProviderError, match="model's id"):
        provider.deployment_start(DeploymentSpec(EP, "green", DS3))
    azure.faults.append(Fault("PUT", re.compile(r"/deployments/green"), status=503, times=10))
    with pytest.raises(TransientProviderError):
        provider.deployment_start(blue("green", 4))
    assert provider.endpoint_delete(EP).state == ResourceState.DELETING
    del azure.online[EP]
    assert provider.endpoint_status(EP).state == ResourceState.DELETED
