"""API for charters: the draft, its versions, submitting for sign-off."""

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
from charter.gates import CharterNotSignedOff
from charter.models import CharterVersion
from charter.rules import METRIC_CHOICES, DeploymentMode, QuestionType
from charter.selectors import charter_current, charter_versions
from charter.services import charter_draft_save, charter_submit
from governance.api import ApprovalOutput
from projects.permissions import get_project_for_user
from web.api import paginated, validation_detail


class GateRefusalOutput(serializers.Serializer):
    """HTTP 409: the project's charter is not signed off yet (see ``charter.gates``)."""

    detail = serializers.CharField()
    code = serializers.CharField(default="charter_not_signed_off")
    charter_url = serializers.CharField(
        help_text="The project's charter page, where it is signed off."
    )


def gate_refused(exc: CharterNotSignedOff) -> Response:
    """The API's answer when a request needs a signed-off charter: 409 with the reason."""
    return Response(
        GateRefusalOutput(
            {"detail": str(exc), "code": "charter_not_signed_off", "charter_url": exc.charter_url}
        ).data,
        status=status.HTTP_409_CONFLICT,
    )


class CharterOutput(serializers.ModelSerializer):
    version = serializers.IntegerField(source="number")
    created_by: Any = serializers.SlugRelatedField(slug_field="username", read_only=True)
    submitted_by: Any = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by: Any = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = CharterVersion
        fields = [
            "version",
            "status",
            "business_problem",
            "objective",
            "question_type",
            "target_variable",
            "success_metric",
            "threshold",
            "direction",
            "scope",
            "out_of_scope",
            "data_sources",
            "deployment_mode",
            "stakeholders",
            "cost_ceiling",
            "created_by",
            "created_at",
            "updated_at",
            "submitted_by",
            "submitted_at",
            "decided_by",
            "decided_at",
        ]


class CharterInput(serializers.Serializer):
    business_problem = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    objective = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    question_type = serializers.ChoiceField(
        choices=QuestionType.choices, required=False, allow_blank=True
    )
    target_variable = serializers.CharField(required=False, allow_blank=True, max_length=200)
    success_metric = serializers.ChoiceField(
        choices=METRIC_CHOICES, required=False, allow_blank=True
    )
    threshold = serializers.FloatField(required=False, allow_null=True)
    scope = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    out_of_scope = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    data_sources = serializers.ListField(
        child=serializers.CharField(max_length=300), required=False, max_length=100
    )
    deployment_mode = serializers.ChoiceField(
        choices=DeploymentMode.choices, required=False, allow_blank=True
    )
    stakeholders = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    cost_ceiling = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        required=False,
        allow_null=True,  # type: ignore[arg-type]
    )


class CharterApi(APIView):
    """The current charter: the draft if there is one, else the latest version."""

    @extend_schema(responses=CharterOutput)
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        current = charter_current(project=project)
        if current is None:
            raise Http404("This project has no charter yet; PUT one.")
        return Response(CharterOutput(current).data)

    @extend_schema(request=CharterInput, responses=CharterOutput)
    def put(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        data = CharterInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            draft = charter_draft_save(
                actor=request.user,
                project=project,
                values=dict(data.validated_data),
            )
        except DjangoValidationError as exc:
            raise ValidationError(validation_detail(exc)) from exc
        return Response(CharterOutput(draft).data)


class CharterVersionListApi(APIView):
    @extend_schema(responses=CharterOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return paginated(request, self, charter_versions(project=project), CharterOutput)


class CharterVersionDetailApi(APIView):
    @extend_schema(responses=CharterOutput)
    def get(self, request: AuthedApiRequest, slug: str, number: int) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        version = charter_versions(project=project).filter(number=number).first()
        if version is None:
            raise Http404("No such charter version.")
        return Response(CharterOutput(version).data)


class CharterSubmitApi(APIView):
    @extend_schema(request=None, responses={201: ApprovalOutput})
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        try:
            approval = charter_submit(actor=request.user, project=project)
        except DjangoValidationError as exc:
            raise ValidationError(validation_detail(exc)) from exc
        return Response(
            ApprovalOutput(approval, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )
