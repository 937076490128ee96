"""Real-time serving on Azure ML: managed online endpoints and deployments.

Mixed into :class:`cloud.azure.AzureProvider`. The bodies are built with
azure-ai-ml's own entities (``ManagedOnlineEndpoint``,
``ManagedOnlineDeployment``; the split is the endpoint's ``traffic`` and
``mirror_traffic``) and sent through the provider's ARM pipeline (retries,
error mapping), without the SDK's pollers: a call returns the state Azure
reports, and the caller polls ``*_status`` as for compute.

Azure ML issues the endpoint's keys itself (``auth_mode="key"``); the
``key_sha256`` of an ``EndpointSpec`` is for the local provider only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint
from azure.core.exceptions import ResourceNotFoundError

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

    def deployment_start(self, spec: DeploymentSpec) -> ResourceStatus:
        path = self._deployment_path(spec.endpoint, spec.name)
        body = _as_dict(self.build_deployment(spec)._to_rest_object(self.location))
        # What the SDK's orchestrator does before it sends: the model's ARM id.
        parts = spec.model_id.removeprefix("azureml:").split(":")
        if spec.model_id.startswith("azureml:") and len(parts) == 2:
            body["properties"]["model"] = (
                f"{self._workspace_path}/models/{parts[0]}/versions/{parts[1]}"
            )
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
