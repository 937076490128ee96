"""The serving API: ``/api/projects/{slug}/endpoints/`` (list, get, traffic,
rollback, promote, key).

Outsiders get 404, read-only members 403 on writes, and only the project's
lead and ML engineers change traffic, roll back or issue keys. A request that
does not fit the endpoint's state answers 409 with the reason; bad input 400.
The key is answered once, by ``POST .../key/``; it is kept as sha256 only.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest
from cloud.base import ProviderError, check_traffic
from deployments import serving
from deployments.serving_models import Deployment, Endpoint
from deployments.serving_selectors import endpoints_of, get_endpoint_for_user
from projects.permissions import get_project_for_user
from web.api import paginated


class DeploymentOutput(serializers.ModelSerializer):
    model_name = serializers.CharField(source="model_version.registered_model.name")
    model_version = serializers.IntegerField(source="model_version.version")
    size = serializers.CharField(source="size.name")

    class Meta:
        model = Deployment
        fields = [
            "name",
            "model_name",
            "model_version",
            "size",
            "state",
            "health",
            "health_checked_at",
            "detail",
            "started_at",
        ]


class EndpointOutput(serializers.ModelSerializer):
    model_name = serializers.CharField(source="registered_model.name")
    deployments = DeploymentOutput(many=True)
    live = serializers.CharField()

    class Meta:
        model = Endpoint
        fields = [
            "name",
            "model_name",
            "provider",
            "state",
            "scoring_url",
            "key_prefix",
            "key_issued_at",
            "traffic",
            "mirror",
            "live",
            "previous",
            "rollout",
            "canary_percent",
            "bake_until",
            "deployments",
            "created_at",
        ]


class TrafficInput(serializers.Serializer):
    traffic = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=100), allow_empty=False
    )
    mirror = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=100), required=False, default=dict
    )

    def validate_traffic(self, value: dict[str, int]) -> dict[str, int]:
        return _names(value)

    def validate_mirror(self, value: dict[str, int]) -> dict[str, int]:
        return _names(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            check_traffic(attrs["traffic"], attrs.get("mirror"))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return attrs


def _names(value: dict[str, int]) -> dict[str, int]:
    unknown = sorted(set(value) - set(serving.DEPLOYMENT_NAMES))
    if unknown:
        raise serializers.ValidationError(
            f"Deployments are named {' or '.join(serving.DEPLOYMENT_NAMES)} (not {', '.join(unknown)})."
        )
    return value


class RollbackInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class KeyOutput(serializers.Serializer):
    key = serializers.CharField(help_text="Shown once: keep it. Send it as Authorization: Bearer.")
    scoring_url = serializers.CharField()


class RefusedOutput(serializers.Serializer):
    detail = serializers.CharField()


def _refused(exc: Exception) -> Response:
    """409 for a request that does not fit the endpoint's state; 503 when the
    provider could not carry it out (nothing changed)."""
    if isinstance(exc, ProviderError):
        return Response(
            {"detail": f"The serving provider could not do it; nothing changed: {exc}"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


def _answer(endpoint: Endpoint) -> Response:
    endpoint = endpoints_of(endpoint.project).get(pk=endpoint.pk)
    return Response(EndpointOutput(endpoint).data)


class EndpointListApi(APIView):
    """The project's real-time endpoints."""

    @extend_schema(responses=EndpointOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return paginated(request, self, endpoints_of(project), EndpointOutput)


class EndpointDetailApi(APIView):
    @extend_schema(responses=EndpointOutput)
    def get(self, request: AuthedApiRequest, slug: str, name: str) -> Response:
        endpoint, _ = get_endpoint_for_user(request.user, slug, name)
        return Response(EndpointOutput(endpoint).data)


class EndpointTrafficApi(APIView):
    """Set the split between the running deployments, and the mirrored share."""

    @extend_schema(
        request=TrafficInput,
        responses={200: EndpointOutput, 409: RefusedOutput, 503: RefusedOutput},
    )
    def post(self, request: AuthedApiRequest, slug: str, name: str) -> Response:
        endpoint, _ = get_endpoint_for_user(request.user, slug, name, write=True)
        data = TrafficInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            endpoint = serving.endpoint_set_traffic(
                actor=request.user, endpoint=endpoint, **data.validated_data
            )
        except (serving.ServingRefused, ProviderError) as exc:
            return _refused(exc)
        return _answer(endpoint)


class EndpointRollbackApi(APIView):
    """The andon cord: all traffic back to the previous deployment, at once."""

    @extend_schema(
        request=RollbackInput,
        responses={200: EndpointOutput, 409: RefusedOutput, 503: RefusedOutput},
    )
    def post(self, request: AuthedApiRequest, slug: str, name: str) -> Response:
        endpoint, _ = get_endpoint_for_user(request.user, slug, name, write=True)
        data = RollbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            endpoint = serving.endpoint_rollback(
                actor=request.user, endpoint=endpoint, reason=data.validated_data["reason"]
            )
        except (serving.ServingRefused, ProviderError) as exc:
            return _refused(exc)
        return _answer(endpoint)


class EndpointPromoteApi(APIView):
    """End a canary now: the new deployment takes all the traffic."""

    @extend_schema(
        request=None, responses={200: EndpointOutput, 409: RefusedOutput, 503: RefusedOutput}
    )
    def post(self, request: AuthedApiRequest, slug: str, name: str) -> Response:
        endpoint, _ = get_endpoint_for_user(request.user, slug, name, write=True)
        try:
            endpoint = serving.endpoint_promote(actor=request.user, endpoint=endpoint)
        except (serving.ServingRefused, ProviderError) as exc:
            return _refused(exc)
        return _answer(endpoint)


class DeploymentStopApi(APIView):
    """Stop a deployment that answers no calls, to free its compute (202: the
    provider stops it in the background; the deployment's state says when)."""

    @extend_schema(
        request=None, responses={202: EndpointOutput, 409: RefusedOutput, 404: RefusedOutput}
    )
    def post(self, request: AuthedApiRequest, slug: str, name: str, deployment: str) -> Response:
        endpoint, _ = get_endpoint_for_user(request.user, slug, name, write=True)
        dep = endpoint.deployments.filter(name=deployment).first()
        if dep is None:
            return Response(
                {"detail": f"This endpoint has no deployment named {deployment}."},
                status=status.HTTP_404_NOT_FOUND,
            )
        try:
            serving.deployment_stop(actor=request.user, deployment=dep)
        except serving.ServingRefused as exc:
            return _refused(exc)
        response = _answer(endpoint)
        response.status_code = status.HTTP_202_ACCEPTED
        return response


class EndpointKeyApi(APIView):
    """Issue a new key for callers (the old one stops working); answered once."""

    @extend_schema(request=None, responses={201: KeyOutput, 503: RefusedOutput})
    def post(self, request: AuthedApiRequest, slug: str, name: str) -> Response:
        endpoint, _ = get_endpoint_for_user(request.user, slug, name, write=True)
        try:
            key = serving.endpoint_key_issue(actor=request.user, endpoint=endpoint)
        except ProviderError as exc:
            return _refused(exc)
        payload: dict[str, Any] = {"key": key, "scoring_url": endpoint.scoring_url}
        return Response(KeyOutput(payload).data, status=status.HTTP_201_CREATED)
