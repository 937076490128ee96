"""Serving on Azure ML offline: the SDK's own entities and ARM pipeline, with
the recording stand-in for Azure Resource Manager (``azure_transport.py``)."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any

import pytest

from cloud.azure import AzureProvider
from cloud.azure_serving import MODEL_NAME, azure_model_name
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
    DATASTORE,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    WS_PATH,
    FakeAzureML,
    Fault,
)
from tests.cloud.test_azure import SALT, TENANT, FakeCredential
from tests.cloud.test_azure_jobs import datastore  # noqa: F401 (the Azurite fixture)

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


# --- the model registered from the version's files (Azurite) ----------------------------


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """An MLflow model folder as the serving task fetches it."""
    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: x\n")
    (folder / "model.pkl").write_bytes(random.Random(3).randbytes(70_000))
    (folder / "conda.yaml").write_text("dependencies:\n- python=3.11\n")
    (folder / "requirements.txt").write_text("scikit-learn==1.5.2\n")
    (folder / "code" / "helper.py").write_text("X = 1\n")
    return folder


def folder_of(model_dir: Path) -> tuple[str, dict[str, bytes]]:
    files = {
        p.relative_to(model_dir).as_posix(): p.read_bytes()
        for p in sorted(model_dir.rglob("*"))
        if p.is_file()
    }
    listing = "".join(f"{k}\0{hashlib.sha256(v).hexdigest()}\n" for k, v in sorted(files.items()))
    return f"stagegate/models/{hashlib.sha256(listing.encode()).hexdigest()}", files


def served(model_dir: Path, name: str = "blue", model: str = "churn-model:3") -> DeploymentSpec:
    return DeploymentSpec(EP, name, DS3, model_dir=str(model_dir), model_id=f"azureml:{model}")


def test_the_versions_files_are_registered_as_a_model_once(
    provider: AzureProvider,
    azure: FakeAzureML,
    datastore: Any,  # noqa: F811
    model_dir: Path,
) -> None:
    folder, files = folder_of(model_dir)
    provider.endpoint_create(EndpointSpec(EP))
    start = len(azure.requests)
    provider.deployment_start(served(model_dir))

    # The files land on the default datastore byte for byte, under their content hash.
    assert {b.name for b in datastore.list_blobs()} == {f"{folder}/{rel}" for rel in files}
    for rel, data in files.items():
        assert datastore.download_blob(f"{folder}/{rel}").readall() == data
    (model,) = azure.calls("PUT", f"{WS_PATH}/models/")
    assert model.path == f"{WS_PATH}/models/churn-model/versions/3"
    assert model.body["properties"]["modelType"] == "mlflow_model"
    assert (
        model.body["properties"]["modelUri"] == f"azureml://datastores/{DATASTORE}/paths/{folder}"
    )
    (dep,) = azure.calls("PUT", "/deployments/blue")
    assert dep.body["properties"]["model"] == f"{WS_PATH}/models/churn-model/versions/3"
    # In order: is it there, the files, the model, then the deployment.
    steps = [s for s in azure.summary()[start:] if "/datastores" not in s]
    assert steps[0] == "GET /models/churn-model/versions/3"
    assert steps[-2:] == [
        "PUT /models/churn-model/versions/3",
        f"PUT /onlineEndpoints/{EP}/deployments/blue",
    ]

    # Another deployment of the same version uploads nothing and registers nothing.
    blob_puts = len(azure.calls("PUT", "blob.core.windows.net"))
    provider.deployment_start(served(model_dir, "green"))
    assert len(azure.calls("PUT", "blob.core.windows.net")) == blob_puts
    assert len(azure.calls("PUT", f"{WS_PATH}/models/")) == 1
    (green,) = azure.calls("PUT", "/deployments/green")
    assert green.body["properties"]["model"] == dep.body["properties"]["model"]

    # A registration that fails is retried by the task: the files are not sent again.
    azure.fail("PUT", r"/models/churn-model/versions/4$", 503, times=10)
    with pytest.raises(TransientProviderError):
        provider.deployment_start(served(model_dir, model="churn-model:4"))
    assert "churn-model:4" not in azure.models and not azure.calls("PUT", "/deployments/blue")[1:]
    azure.faults.clear()
    provider.deployment_start(served(model_dir, model="churn-model:4"))
    assert len(azure.calls("PUT", "blob.core.windows.net")) == blob_puts
    assert azure.models["churn-model:4"]["properties"]["modelUri"].endswith(folder)


def test_a_version_with_other_files_is_refused_and_names_are_mapped(
    provider: AzureProvider,
    azure: FakeAzureML,
    datastore: Any,  # noqa: F811
    model_dir: Path,
) -> None:
    provider.endpoint_create(EndpointSpec(EP))
    other = "azureml://datastores/workspaceblobstore/paths/LocalUpload/abc/model"
    azure.models["churn-model:3"] = {"properties": {"modelType": "mlflow_model", "modelUri": other}}
    with pytest.raises(ProviderError, match="churn-model version 3 with other files"):
        provider.deployment_start(served(model_dir))
    assert not azure.calls("PUT", f"{WS_PATH}/models/") and not azure.calls("PUT", "/deployments/")
    assert not list(datastore.list_blobs())
    assert azure.models["churn-model:3"]["properties"]["modelUri"] == other

    (model_dir / "MLmodel").unlink()
    with pytest.raises(ProviderError, match="no MLmodel file"):
        provider.deployment_start(served(model_dir, model="churn-model:5"))
    (model_dir / "MLmodel").write_text("flavors: {}\n")

    # A portal name Azure does not accept is registered under a mapped one.
    provider.deployment_start(served(model_dir, model="Churn model/v2:6"))
    mapped = azure_model_name("Churn model/v2")
    assert re.fullmatch(r"Churn-model-v2-[0-9a-f]{8}", mapped)
    (dep,) = azure.calls("PUT", "/deployments/blue")
    assert dep.body["properties"]["model"] == f"{WS_PATH}/models/{mapped}/versions/6"
    assert f"{mapped}:6" in azure.models
    assert azure_model_name("churn_model-2") == "churn_model-2"
    assert azure_model_name("Churn model/v2") != azure_model_name("Churn model v2")
    for name in ("é" * 300, "_x", "a.b", "x" * 256):
        assert MODEL_NAME.fullmatch(azure_model_name(name)), name
