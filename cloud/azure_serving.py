"""Real-time serving on Azure ML: managed online endpoints and deployments.

Mixed into :class:`cloud.azure.AzureProvider`. The bodies are built with
azure-ai-ml's own entities (``ManagedOnlineEndpoint``,
``ManagedOnlineDeployment``; the split is the endpoint's ``traffic`` and
``mirror_traffic``) and sent through the provider's ARM pipeline (retries,
error mapping), without the SDK's pollers: a call returns the state Azure
reports, and the caller polls ``*_status`` as for compute.

Azure ML issues the endpoint's keys itself (``auth_mode="key"``); the
``key_sha256`` of an ``EndpointSpec`` is for the local provider only.

Before a deployment is sent, the model it names is registered in the
workspace unless it is there (``model_ensure``): the version's MLflow folder
(``DeploymentSpec.model_dir``) goes to the default datastore under
``stagegate/models/<content hash>/`` (the jobs' upload helper: files already
there are skipped), then an ``mlflow_model`` version pointing at that folder
is PUT. An existing version with other content is refused, never replaced.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import TYPE_CHECKING, Any

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model
from azure.core.exceptions import ResourceNotFoundError

from cloud.azure_jobs import file_sha256
from cloud.base import (
    DEPLOYMENT_NAMES,
    DeploymentSpec,
    EndpointSpec,
    ProviderError,
    ResourceState,
    ResourceStatus,
    check_traffic,
)

if TYPE_CHECKING:

    class _Base:
        @property
        def location(self) -> str: ...
        @property
        def _workspace_path(self) -> str: ...
        def _request(self, what: str, method: str, path: str, **kwargs: Any) -> Any: ...
        def _datastore(self) -> tuple[str, Any]: ...
        def _upload(self, container: Any, blob: str, data: Any, length: int) -> None: ...

else:
    _Base = object

ENDPOINT_API_VERSION = "2024-10-01-preview"
# provisioningState of online endpoints and deployments.
SERVING_STATES: dict[str, ResourceState] = {
    "creating": ResourceState.CREATING,
    "updating": ResourceState.CREATING,
    "scaling": ResourceState.CREATING,
    "succeeded": ResourceState.RUNNING,
    "deleting": ResourceState.DELETING,
    "failed": ResourceState.FAILED,
    "canceled": ResourceState.FAILED,
}


# Where a model version's files go on the workspace's default datastore:
# ``stagegate/models/<model_digest of the folder>/<path in the folder>``.
MODEL_PREFIX = "stagegate/models"
# Azure ML's model (asset) names: a letter or digit, then letters, digits, "-"
# and "_", at most 255 characters.
MODEL_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}")


def azure_model_name(name: str) -> str:
    """The portal's model name as an Azure ML model name: itself when Azure
    accepts it, else its other characters as ``-`` and ``-<8 hex of its
    sha256>`` at the end (so two names that differ only there stay apart)."""
    if MODEL_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    base = re.sub(r"[^a-zA-Z0-9_-]+", "-", name).lstrip("-_")[: 255 - 9]
    return f"{base}-{digest}" if base else f"model-{digest}"


def parse_model_id(model_id: str) -> tuple[str, str] | None:
    """``azureml:<name>:<version>`` as (name, version); None for another form."""
    if not model_id.startswith("azureml:"):
        return None
    name, sep, version = model_id.removeprefix("azureml:").rpartition(":")
    if not sep or not name or not version:
        return None
    return name, version


def model_files(folder: str) -> list[str]:
    """The files of a model folder, as sorted paths relative to it."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for filename in files:
            path = os.path.join(root, filename)
            if os.path.isfile(path) and not os.path.islink(path):
                out.append(os.path.relpath(path, folder).replace(os.sep, "/"))
    return sorted(out)


def model_digest(folder: str, files: list[str]) -> str:
    """The sha256 of a model folder: each file's relative path and content hash."""
    lines = "".join(f"{rel}\0{file_sha256(os.path.join(folder, rel))}\n" for rel in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def _as_dict(rest: Any) -> dict[str, Any]:
    return dict(rest.as_dict()) if hasattr(rest, "as_dict") else dict(rest)


class AzureServingMixin(_Base):
    """The serving half of the Azure provider."""

    @property
    def deployment_ready_timeout(self) -> float:
        """Managed online deployments take many minutes to become healthy."""
        from django.conf import settings

        return float(settings.AZURE_SERVING_READY_TIMEOUT)

    def _endpoint_path(self, name: str) -> str:
        return f"{self._workspace_path}/onlineEndpoints/{name}"

    def _deployment_path(self, endpoint: str, name: str) -> str:
        if name not in DEPLOYMENT_NAMES:
            raise ProviderError(f"Invalid deployment name {name!r}")
        return f"{self._endpoint_path(endpoint)}/deployments/{name}"

    def build_endpoint(
        self,
        spec: EndpointSpec,
        traffic: dict[str, int] | None = None,
        mirror: dict[str, int] | None = None,
    ) -> ManagedOnlineEndpoint:
        return ManagedOnlineEndpoint(
            name=spec.name,
            auth_mode="key",
            description=spec.description or None,
            traffic=traffic or None,
            mirror_traffic=mirror or None,
            tags={"stagegate": "serving"},
        )

    def build_deployment(self, spec: DeploymentSpec) -> ManagedOnlineDeployment:
        if not spec.model_id:
            raise ProviderError("An Azure ML deployment needs the registered model's id")
        return ManagedOnlineDeployment(
            name=spec.name,
            endpoint_name=spec.endpoint,
            model=spec.model_id,
            instance_type=spec.size.name,
            instance_count=spec.instance_count,
            tags={"stagegate": "serving"},
        )

    def _get(self, what: str, path: str) -> dict[str, Any] | None:
        try:
            response = self._request(what, "GET", path, api_version=ENDPOINT_API_VERSION)
        except ResourceNotFoundError:
            return None
        return dict(response.json())

    @staticmethod
    def _serving_status(name: str, body: dict[str, Any] | None) -> ResourceStatus:
        if body is None:
            return ResourceStatus(name, ResourceState.DELETED)
        props = body.get("properties") or {}
        raw = str(props.get("provisioningState") or "")
        return ResourceStatus(
            name,
            SERVING_STATES.get(raw.lower(), ResourceState.CREATING),
            url=str(props.get("scoringUri") or ""),
            detail=raw,
        )

    def endpoint_create(self, spec: EndpointSpec) -> ResourceStatus:
        existing = self._get(f"get endpoint {spec.name}", self._endpoint_path(spec.name))
        if existing is not None:
            return self._serving_status(spec.name, existing)
        body = _as_dict(self.build_endpoint(spec)._to_rest_online_endpoint(self.location))
        response = self._request(
            f"create endpoint {spec.name}",
            "PUT",
            self._endpoint_path(spec.name),
            api_version=ENDPOINT_API_VERSION,
            json=body,
        )
        return self._serving_status(spec.name, response.json() if response.content else None)

    def endpoint_status(self, name: str) -> ResourceStatus:
        return self._serving_status(
            name, self._get(f"get endpoint {name}", self._endpoint_path(name))
        )

    def endpoint_delete(self, name: str) -> ResourceStatus:
        try:
            self._request(
                f"delete endpoint {name}",
                "DELETE",
                self._endpoint_path(name),
                api_version=ENDPOINT_API_VERSION,
            )
        except ResourceNotFoundError:
            return ResourceStatus(name, ResourceState.DELETED)
        return ResourceStatus(name, ResourceState.DELETING)

    def endpoint_set_traffic(
        self, name: str, traffic: dict[str, int], mirror: dict[str, int] | None = None
    ) -> None:
        """PUT the endpoint with its new ``traffic`` and ``mirrorTraffic``."""
        try:
            check_traffic(traffic, mirror)
        except ValueError as exc:
            raise ProviderError(str(exc)) from exc
        existing = self._get(f"get endpoint {name}", self._endpoint_path(name))
        if existing is None:
            raise ProviderError(f"No endpoint {name!r}")
        entity = self.build_endpoint(EndpointSpec(name), traffic=traffic, mirror=mirror)
        body = _as_dict(entity._to_rest_online_endpoint(self.location))
        # Azure answers 400 to a mirror naming a deployment without traffic... and
        # to an empty mirror map the same as none: send {} to clear it.
        body["properties"]["traffic"] = dict(traffic)
        body["properties"]["mirrorTraffic"] = dict(mirror or {})
        if "identity" in existing:
            body["identity"] = existing["identity"]
        self._request(
            f"set traffic of endpoint {name}",
            "PUT",
            self._endpoint_path(name),
            api_version=ENDPOINT_API_VERSION,
            json=body,
        )

    def _model_path(self, name: str, version: str) -> str:
        return f"{self._workspace_path}/models/{name}/versions/{version}"

    def model_ensure(self, model_dir: str, name: str, version: str) -> str:
        """Register ``model_dir`` as model ``name`` ``version`` (an Azure name)
        unless the workspace has it with these files; its ARM id. The files go
        to the default datastore first (those already there are skipped)."""
        if not os.path.isfile(os.path.join(model_dir, "MLmodel")):
            raise ProviderError(f"The model folder {model_dir!r} has no MLmodel file")
        files = model_files(model_dir)
        folder = f"{MODEL_PREFIX}/{model_digest(model_dir, files)}"
        path = self._model_path(name, version)
        existing = self._get(f"get model {name}:{version}", path)
        if existing is not None:
            uri = str((existing.get("properties") or {}).get("modelUri") or "").rstrip("/")
            if not uri.endswith(f"/paths/{folder}"):
                raise ProviderError(
                    f"The Azure ML workspace has model {name} version {version} with other "
                    f"files ({uri or 'no path'}), not this version's: the portal does not "
                    "replace it; remove that model version in Azure ML to deploy this one"
                )
            return path
        datastore, container = self._datastore()
        for rel in files:
            local = os.path.join(model_dir, rel)
            with open(local, "rb") as f:
                self._upload(container, f"{folder}/{rel}", f, os.path.getsize(local))
        entity = Model(
            name=name,
            version=version,
            type=AssetTypes.MLFLOW_MODEL,
            path=f"azureml://datastores/{datastore}/paths/{folder}",
            description="Stagegate model version, registered for serving",
            tags={"stagegate": "model"},
        )
        self._request(
            f"create model {name}:{version}",
            "PUT",
            path,
            api_version=ENDPOINT_API_VERSION,
            json=_as_dict(entity._to_rest_object()),
        )
        return path

    def deployment_start(self, spec: DeploymentSpec) -> ResourceStatus:
        path = self._deployment_path(spec.endpoint, spec.name)
        body = _as_dict(self.build_deployment(spec)._to_rest_object(self.location))
        # What the SDK's orchestrator does before it sends: the model's ARM id,
        # registered first from the version's files when the spec has them.
        parsed = parse_model_id(spec.model_id)
        if parsed is not None:
            name, version = azure_model_name(parsed[0]), parsed[1]
            if spec.model_dir:
                body["properties"]["model"] = self.model_ensure(spec.model_dir, name, version)
            else:
                body["properties"]["model"] = self._model_path(name, version)
        response = self._request(
            f"create deployment {spec.endpoint}/{spec.name}",
            "PUT",
            path,
            api_version=ENDPOINT_API_VERSION,
            json=body,
        )
        return self._serving_status(spec.name, response.json() if response.content else None)

    def deployment_status(self, endpoint: str, name: str) -> ResourceStatus:
        path = self._deployment_path(endpoint, name)
        status = self._serving_status(name, self._get(f"get deployment {endpoint}/{name}", path))
        if status.state == ResourceState.DELETED:
            return ResourceStatus(name, ResourceState.STOPPED)
        return status

    def deployment_stop(self, endpoint: str, name: str) -> ResourceStatus:
        """Azure ML has no stopped deployment: stopping deletes it."""
        try:
            self._request(
                f"delete deployment {endpoint}/{name}",
                "DELETE",
                self._deployment_path(endpoint, name),
                api_version=ENDPOINT_API_VERSION,
            )
        except ResourceNotFoundError:
            return ResourceStatus(name, ResourceState.STOPPED)
        return ResourceStatus(name, ResourceState.STOPPING)
