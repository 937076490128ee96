"""The gate's API under ``/api/projects/<slug>/``: a version's validation
(run one, read the latest report) and deployment requests (request, list, get).

Bad input answers 400 with the reason; a project whose charter is not signed
off 409 with ``charter_url``; outsiders 404, read-only members 403 on writes.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest
from charter.api import GateRefusalOutput, gate_refused
from charter.gates import CharterNotSignedOff
from deployments import gate
from deployments import gate_selectors as sel
from deployments.gate_models import DeploymentRequest, Rollout, Target, ValidationReport
from projects.permissions import get_project_for_user
from web.api import paginated, validation_detail


class ValidationReportOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="version.registered_model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    champion_version = serializers.IntegerField(
        source="champion.version", read_only=True, default=None
    )
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    state_label = serializers.CharField(source="get_state_display", read_only=True)

    class Meta:
        model = ValidationReport
        fields = [
            "id",
            "model",
            "version",
            "state",
            "state_label",
            "job",
            "split",
            "requested_by",
            "segment_columns",
            "risks",
            "charter_version",
            "question",
            "metric",
            "threshold",
            "direction",
            "value",
            "meets_threshold",
            "champion_version",
            "champion_value",
            "beats_champion",
            "segments",
            "segment_gap",
            "integration",
            "integration_ok",
            "approach",
            "parameters",
            "metrics",
            "snapshot_digest",
            "train_digest",
            "test_digest",
            "model_digest",
            "champion_digest",
            "code_digest",
            "rows",
            "error",
            "created_at",
            "finished_at",
        ]


class ValidationInput(serializers.Serializer):
    segments = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=gate.MAX_SEGMENT_COLUMNS,
        default=list,
        help_text="Columns of the split to measure the metric per value of.",
    )
    risks = serializers.CharField(max_length=5000, allow_blank=True, default="")


class DeploymentRequestOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="version.registered_model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    state_label = serializers.CharField(source="get_state_display", read_only=True)
    size = serializers.CharField(source="size.name", read_only=True, default=None)
    override_by = serializers.CharField(source="override_by.username", read_only=True, default=None)
    previous_champion_version = serializers.IntegerField(
        source="previous_champion.version", read_only=True, default=None
    )

    class Meta:
        model = DeploymentRequest
        fields = [
            "id",
            "model",
            "version",
            "report",
            "target",
            "rollout",
            "canary_percent",
            "baking_minutes",
            "size",
            "reason",
            "user_impact",
            "state",
            "state_label",
            "approval",
            "requested_by",
            "override_by",
            "override_justification",
            "override_at",
            "previous_champion_version",
            "created_at",
            "decided_at",
        ]


class DeploymentInput(serializers.Serializer):
    model = serializers.CharField(max_length=256)
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    target = serializers.ChoiceField(choices=Target.choices)
    rollout = serializers.ChoiceField(choices=Rollout.choices, default=Rollout.ALL_AT_ONCE)
    canary_percent = serializers.IntegerField(min_value=1, max_value=50, required=False)
    baking_minutes = serializers.IntegerField(min_value=5, max_value=7 * 24 * 60, required=False)
    reason = serializers.CharField(max_length=5000)
    user_impact = serializers.CharField(max_length=5000, allow_blank=True, default="")


def _call(fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except DjangoValidationError as exc:
        raise ValidationError(validation_detail(exc)) from exc


class ValidationApi(APIView):
    @extend_schema(
        responses=ValidationReportOutput,
        description="The version's latest validation report (running or finished).",
    )
    def get(self, request: AuthedApiRequest, slug: str, name: str, version: int) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        found = sel.model_version(project, name, version)
        report = sel.reports_of(found).first()
        if report is None:
            raise Http404("The version has no validation report.")
        return Response(ValidationReportOutput(report).data)

    @extend_schema(
        request=ValidationInput,
        responses={202: ValidationReportOutput, 409: GateRefusalOutput},
        description=(
            "Validate the version as a job on the project's compute: the charter's metric on "
            "the held-out part of its split against the threshold and the champion, per "
            "segment, and an integration check. The report is running until the job ends."
        ),
    )
    def post(self, request: AuthedApiRequest, slug: str, name: str, version: int) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        found = sel.model_version(project, name, version)
        data = ValidationInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            report = _call(
                gate.validation_run, actor=request.user, version=found, **data.validated_data
            )
        except CharterNotSignedOff as exc:
            return gate_refused(exc)
        return Response(ValidationReportOutput(report).data, status=status.HTTP_202_ACCEPTED)


class DeploymentListApi(APIView):
    @extend_schema(responses=DeploymentRequestOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        rows = sel.requests_of(project).select_related("size", "override_by", "previous_champion")
        return paginated(request, self, rows, DeploymentRequestOutput)

    @extend_schema(
        request=DeploymentInput,
        responses={201: DeploymentRequestOutput, 409: GateRefusalOutput},
        description=(
            "Request a deployment of a model version. With a passed validation it awaits the "
            "validator, then the business approver; otherwise it is blocked until a platform "
            "admin overrides it on the request's page."
        ),
    )
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        data = DeploymentInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        found = sel.model_version(project, values.pop("model"), values.pop("version"))
        try:
            created = _call(
                gate.deployment_request_create, actor=request.user, version=found, **values
            )
        except CharterNotSignedOff as exc:
            return gate_refused(exc)
        fresh = sel.request_get(project, created.pk)
        return Response(DeploymentRequestOutput(fresh).data, status=status.HTTP_201_CREATED)


class DeploymentDetailApi(APIView):
    @extend_schema(responses=DeploymentRequestOutput)
    def get(self, request: AuthedApiRequest, slug: str, deployment_id: int) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return Response(DeploymentRequestOutput(sel.request_get(project, deployment_id)).data)
