"""The workspaces API: catalog, workspaces and their actions, quotas, costs.

Bad input answers 400, an action that does not fit the workspace's state 409
with the state; neither changes anything.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest
from accounts.models import User
from charter.api import GateRefusalOutput, gate_refused
from charter.gates import CharterNotSignedOff
from compute import selectors as compute_selectors
from compute import services as compute_services
from compute.models import ComputeSize, Quota
from projects.models import Project
from projects.permissions import get_project_for_user
from web.api import paginated, validation_detail
from workspaces import selectors, services
from workspaces.models import Workspace, WorkspaceKind
from workspaces.permissions import cost_scope, get_workspace_for_user


def _call(fn: Any, **kwargs: Any) -> Any:
    """Run a service; its ValidationError becomes 400 (409 is handled by the caller)."""
    try:
        return fn(**kwargs)
    except DjangoValidationError as exc:
        raise ValidationError(validation_detail(exc)) from exc


def _conflict(exc: services.WorkspaceConflict) -> Response:
    return Response({"detail": str(exc), "state": exc.state}, status=status.HTTP_409_CONFLICT)


# --- catalog -------------------------------------------------------------------


class ComputeSizeOutput(serializers.ModelSerializer):
    monthly_price = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)

    class Meta:
        model = ComputeSize
        fields = [
            "id",
            "name",
            "provider",
            "region",
            "vcpus",
            "memory_gb",
            "gpus",
            "gpu_type",
            "hourly_price",
            "monthly_price",
            "currency",
            "price_date",
            "enabled",
        ]


class ComputeSizeInput(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z0-9_.-]{1,64}$")
    provider = serializers.ChoiceField(choices=["azure", "local"], default="azure")
    region = serializers.CharField(max_length=40, allow_blank=True, default="")
    vcpus = serializers.IntegerField(min_value=1, max_value=1024)
    memory_gb = serializers.DecimalField(
        max_digits=7, decimal_places=1, min_value=Decimal("0.5"), max_value=Decimal(65536)
    )
    gpus = serializers.IntegerField(min_value=0, max_value=64, default=0)
    gpu_type = serializers.CharField(max_length=60, allow_blank=True, default="")
    hourly_price = serializers.DecimalField(
        max_digits=10, decimal_places=4, min_value=Decimal(0), max_value=Decimal(10000)
    )
    currency = serializers.RegexField(r"^[A-Z]{3}$", default="USD")
    price_date = serializers.DateField()
    enabled = serializers.BooleanField(default=True)


class ComputeSizeListApi(APIView):
    """The compute catalog. Everyone reads the enabled sizes; admins all and edit."""

    @extend_schema(responses=ComputeSizeOutput(many=True))
    def get(self, request: AuthedApiRequest) -> Response:
        sizes = (
            ComputeSize.objects.all()
            if request.user.is_staff
            else compute_selectors.sizes_offered()
        )
        return paginated(request, self, sizes, ComputeSizeOutput)

    @extend_schema(request=ComputeSizeInput, responses={201: ComputeSizeOutput})
    def post(self, request: AuthedApiRequest) -> Response:
        if not request.user.is_staff:
            raise PermissionDenied("Only platform admins edit the compute catalog.")
        data = ComputeSizeInput(data=request.data)
        data.is_valid(raise_exception=True)
        size = _call(compute_services.compute_size_save, actor=request.user, **data.validated_data)
        return Response(ComputeSizeOutput(size).data, status=status.HTTP_201_CREATED)


class ComputeSizeDetailApi(APIView):
    @extend_schema(responses=ComputeSizeOutput)
    def get(self, request: AuthedApiRequest, size_id: int) -> Response:
        sizes = (
            ComputeSize.objects.all()
            if request.user.is_staff
            else compute_selectors.sizes_offered()
        )
        return Response(ComputeSizeOutput(get_object_or_404(sizes, pk=size_id)).data)

    @extend_schema(request=ComputeSizeInput, responses=ComputeSizeOutput)
    def patch(self, request: AuthedApiRequest, size_id: int) -> Response:
        if not request.user.is_staff:
            raise PermissionDenied("Only platform admins edit the compute catalog.")
        size = get_object_or_404(ComputeSize, pk=size_id)
        data = ComputeSizeInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        size = _call(
            compute_services.compute_size_save, actor=request.user, size=size, **data.validated_data
        )
        return Response(ComputeSizeOutput(size).data)


# --- workspaces ------------------------------------------------------------------


class WorkspaceOutput(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug")
    owner = serializers.CharField(source="owner.username")
    size = serializers.CharField(source="size.name")
    requested_size = serializers.CharField(source="requested_size.name", default=None)
    hourly_price = serializers.DecimalField(
        source="size.hourly_price", max_digits=10, decimal_places=4
    )
    idle_shutdown_minutes = serializers.IntegerField()
    approval = serializers.IntegerField(source="approval_id", allow_null=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = [
            "id",
            "name",
            "kind",
            "state",
            "state_reason",
            "project",
            "owner",
            "size",
            "requested_size",
            "hourly_price",
            "idle_shutdown_minutes",
            "allowed_ips",
            "min_nodes",
            "max_nodes",
            "quota_exceeded",
            "approval",
            "url",
            "created_at",
            "state_changed_at",
        ]

    def get_url(self, obj: Workspace) -> str | None:
        """Where the owner opens it (it carries the notebook's token): the owner only."""
        request = self.context.get("request")
        if request is None or request.user.pk != obj.owner_id or not obj.url:
            return None
        return obj.url


class WorkspaceDetailOutput(WorkspaceOutput):
    cost_so_far = serializers.SerializerMethodField()

    class Meta(WorkspaceOutput.Meta):
        fields = [*WorkspaceOutput.Meta.fields, "cost_so_far"]

    def get_cost_so_far(self, obj: Workspace) -> str:
        return str(selectors.workspace_cost(workspace=obj))


class WorkspaceCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=60)
    kind = serializers.ChoiceField(choices=WorkspaceKind.choices, default=WorkspaceKind.NOTEBOOK)
    size = serializers.CharField(max_length=64)
    idle_shutdown_minutes = serializers.IntegerField(
        min_value=services.IDLE_MINUTES_RANGE[0],
        max_value=services.IDLE_MINUTES_RANGE[1],
        default=60,
    )
    allowed_ips = serializers.ListField(
        child=serializers.CharField(max_length=50), max_length=services.MAX_CIDRS, default=list
    )
    min_nodes = serializers.IntegerField(min_value=0, max_value=services.MAX_NODES, default=0)
    max_nodes = serializers.IntegerField(min_value=1, max_value=services.MAX_NODES, default=1)


class ResizeInput(serializers.Serializer):
    size = serializers.CharField(max_length=64)


class AllowedIpsInput(serializers.Serializer):
    allowed_ips = serializers.ListField(
        child=serializers.CharField(max_length=50), max_length=services.MAX_CIDRS
    )


def _size_named(name: str) -> ComputeSize:
    size = compute_selectors.sizes_offered().filter(name=name).first()
    if size is None:
        raise ValidationError({"size": [f"Unknown size {name!r}; see /api/compute-sizes/."]})
    return size


class WorkspaceListApi(APIView):
    @extend_schema(responses=WorkspaceOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return paginated(
            request,
            self,
            selectors.workspaces_for_project(project=project),
            WorkspaceOutput,
            context={"request": request},
        )

    @extend_schema(
        request=WorkspaceCreateInput,
        responses={201: WorkspaceDetailOutput, 409: GateRefusalOutput},
        description=(
            "Request a notebook workspace or a compute cluster. A project whose charter is "
            "not signed off yet is answered 409 with the reason and `charter_url`."
        ),
    )
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        data = WorkspaceCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["size"] = _size_named(values["size"])
        try:
            workspace = _call(
                services.workspace_request, actor=request.user, project=project, **values
            )
        except services.WorkspaceConflict as exc:
            return _conflict(exc)
        except CharterNotSignedOff as exc:
            return gate_refused(exc)
        return Response(
            WorkspaceDetailOutput(workspace, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class _WorkspaceApi(APIView):
    def _detail(self, request: AuthedApiRequest, workspace: Workspace) -> Response:
        workspace.refresh_from_db()
        return Response(WorkspaceDetailOutput(workspace, context={"request": request}).data)


class WorkspaceDetailApi(_WorkspaceApi):
    @extend_schema(responses=WorkspaceDetailOutput)
    def get(self, request: AuthedApiRequest, slug: str, workspace_id: int) -> Response:
        workspace, _ = get_workspace_for_user(request.user, slug, workspace_id)
        return Response(WorkspaceDetailOutput(workspace, context={"request": request}).data)

    @extend_schema(responses={202: WorkspaceDetailOutput})
    def delete(self, request: AuthedApiRequest, slug: str, workspace_id: int) -> Response:
        workspace, _ = get_workspace_for_user(request.user, slug, workspace_id)
        try:
            _call(services.workspace_delete, actor=request.user, workspace=workspace)
        except services.WorkspaceConflict as exc:
            return _conflict(exc)
        response = self._detail(request, workspace)
        response.status_code = status.HTTP_202_ACCEPTED
        return response


class WorkspaceStartApi(_WorkspaceApi):
    @extend_schema(request=None, responses={202: WorkspaceDetailOutput})
    def post(self, request: AuthedApiRequest, slug: str, workspace_id: int) -> Response:
        workspace, _ = get_workspace_for_user(request.user, slug, workspace_id)
        try:
            _call(services.workspace_start, actor=request.user, workspace=workspace)
        except services.WorkspaceConflict as exc:
            return _conflict(exc)
        response = self._detail(request, workspace)
        response.status_code = status.HTTP_202_ACCEPTED
        return response


class WorkspaceStopApi(_WorkspaceApi):
    @extend_schema(request=None, responses={202: WorkspaceDetailOutput})
    def post(self, request: AuthedApiRequest, slug: str, workspace_id: int) -> Response:
        workspace, _ = get_workspace_for_user(request.user, slug, workspace_id)
        try:
            _call(services.workspace_stop, actor=request.user, workspace=workspace)
        except services.WorkspaceConflict as exc:
            return _conflict(exc)
        response = self._detail(request, workspace)
        response.status_code = status.HTTP_202_ACCEPTED
        return response


class WorkspaceResizeApi(_WorkspaceApi):
    @extend_schema(request=ResizeInput, responses={202: WorkspaceDetailOutput})
    def post(self, request: AuthedApiRequest, slug: str, workspace_id: int) -> Response:
        workspace, _ = get_workspace_for_user(request.user, slug, workspace_id)
        data = ResizeInput(data=request.data)
        data.is_valid(raise_exception=True)
        size = _size_named(data.validated_data["size"])
        try:
            _call(services.workspace_resize, actor=request.user, workspace=workspace, size=size)
        except services.WorkspaceConflict as exc:
            return _conflict(exc)
        response = self._detail(request, workspace)
        response.status_code = status.HTTP_202_ACCEPTED
        return response


class WorkspaceAllowedIpsApi(_WorkspaceApi):
    @extend_schema(request=AllowedIpsInput, responses=WorkspaceDetailOutput)
    def put(self, request: AuthedApiRequest, slug: str, workspace_id: int) -> Response:
        workspace, _ = get_workspace_for_user(request.user, slug, workspace_id)
        data = AllowedIpsInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            _call(
                services.workspace_allowed_ips_set,
                actor=request.user,
                workspace=workspace,
                cidrs=data.validated_data["allowed_ips"],
            )
        except services.WorkspaceConflict as exc:
            return _conflict(exc)
        return self._detail(request, workspace)


# --- quotas ----------------------------------------------------------------------


class QuotaOutput(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug", default=None)
    user = serializers.CharField(source="user.username", default=None)

    class Meta:
        model = Quota
        fields = [
            "project",
            "user",
            "max_vcpus",
            "max_gpus",
            "max_running",
            "monthly_budget",
            "updated_at",
        ]


class QuotaInput(serializers.Serializer):
    max_vcpus = serializers.IntegerField(
        min_value=0, max_value=compute_services.QUOTA_LIMITS["max_vcpus"]
    )
    max_gpus = serializers.IntegerField(
        min_value=0, max_value=compute_services.QUOTA_LIMITS["max_gpus"]
    )
    max_running = serializers.IntegerField(
        min_value=0, max_value=compute_services.QUOTA_LIMITS["max_running"]
    )
    monthly_budget = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=Decimal(10**9),
        allow_null=True,
        required=False,
        default=None,
    )


def _require_staff(request: AuthedApiRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins see and change quotas.")


class QuotaListApi(APIView):
    @extend_schema(responses=QuotaOutput(many=True))
    def get(self, request: AuthedApiRequest) -> Response:
        _require_staff(request)
        return paginated(request, self, compute_selectors.quotas_listed(), QuotaOutput)


class _QuotaApi(APIView):
    def _subject(self, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _quota(self, subject: dict[str, Any]) -> Quota:
        quota = Quota.objects.filter(**subject).select_related("project", "user").first()
        if quota is None:
            # Not stored until first used or changed: show the defaults.
            key = "project" if "project" in subject else "user"
            quota = Quota(**subject, **settings.WORKSPACES_DEFAULT_QUOTAS[key])
        return quota

    @extend_schema(responses=QuotaOutput)
    def get(self, request: AuthedApiRequest, **kwargs: Any) -> Response:
        _require_staff(request)
        return Response(QuotaOutput(self._quota(self._subject(**kwargs))).data)

    @extend_schema(request=QuotaInput, responses=QuotaOutput)
    def put(self, request: AuthedApiRequest, **kwargs: Any) -> Response:
        _require_staff(request)
        subject = self._subject(**kwargs)
        data = QuotaInput(data=request.data)
        data.is_valid(raise_exception=True)
        quota = _call(
            compute_services.quota_set, actor=request.user, **subject, **data.validated_data
        )
        return Response(QuotaOutput(quota).data)


class ProjectQuotaApi(_QuotaApi):
    def _subject(self, **kwargs: Any) -> dict[str, Any]:
        return {"project": get_object_or_404(Project, slug=kwargs["slug"])}


class UserQuotaApi(_QuotaApi):
    def _subject(self, **kwargs: Any) -> dict[str, Any]:
        return {"user": get_object_or_404(User, username=kwargs["username"])}


# --- costs ------------------------------------------------------------------------


class CostItem(serializers.Serializer):
    name = serializers.CharField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=2)


class CostsOutput(serializers.Serializer):
    month = serializers.CharField()
    currency = serializers.CharField()
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    idle_avoided = serializers.DecimalField(max_digits=14, decimal_places=2)
    budget = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    forecast = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    by_project = CostItem(many=True)
    by_user = CostItem(many=True)
    by_size = CostItem(many=True)
    by_workspace = CostItem(many=True, source="by_resource")
    by_day = CostItem(many=True)


class CostsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("project", str, description="A project's slug"),
            OpenApiParameter("month", str, description="YYYY-MM, this month by default"),
        ],
        responses=CostsOutput,
    )
    def get(self, request: AuthedApiRequest) -> Response:
        try:
            month = compute_selectors.parse_month(request.query_params.get("month"))
        except ValueError as exc:
            raise ValidationError({"month": ["A month as YYYY-MM."]}) from exc
        projects, project = cost_scope(request.user, request.query_params.get("project", ""))
        data = selectors.costs_for_month(month=month, projects=projects)
        budget = forecast = None
        if project is not None and month == timezone.now().date().replace(day=1):
            status_ = compute_selectors.budget_status(project=project)
            budget, forecast = status_.budget, status_.forecast
        elif project is not None:
            budget = compute_selectors.project_budget(project=project)
        return Response(
            CostsOutput({**data, "currency": "USD", "budget": budget, "forecast": forecast}).data
        )
