from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest
from accounts.models import User
from projects.models import Membership, Project, Role
from projects.permissions import LEAD_ONLY, get_project_for_user
from projects.selectors import project_members, projects_for_user
from projects.services import membership_add, membership_remove, project_create, project_update
from web.api import paginated, validation_detail


class ProjectOutput(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["name", "slug", "description", "stage", "monthly_budget", "created_at"]


class ProjectCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(
        max_length=80,
        required=False,
        default="",
        allow_blank=True,
        help_text="Lower case and unique regardless of case; made from the name if omitted.",
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")
    monthly_budget = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal(0), required=False, default=Decimal(0)
    )


class ProjectUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    monthly_budget = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal(0), required=False
    )


class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role", "added_at"]


class MemberInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class ProjectListApi(APIView):
    @extend_schema(responses=ProjectOutput(many=True))
    def get(self, request: AuthedApiRequest) -> Response:
        return paginated(request, self, projects_for_user(user=request.user), ProjectOutput)

    @extend_schema(request=ProjectCreateInput, responses={201: ProjectOutput})
    def post(self, request: AuthedApiRequest) -> Response:
        data = ProjectCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            project = project_create(actor=request.user, **data.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(validation_detail(exc)) from exc
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectOutput)
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return Response(ProjectOutput(project).data)

    @extend_schema(request=ProjectUpdateInput, responses=ProjectOutput)
    def patch(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, roles=LEAD_ONLY)
        data = ProjectUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        project_update(actor=request.user, project=project, **data.validated_data)
        return Response(ProjectOutput(project).data)


class MemberListApi(APIView):
    @extend_schema(responses=MemberOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return paginated(request, self, project_members(project=project), MemberOutput)

    @extend_schema(request=MemberInput, responses={201: MemberOutput})
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, roles=LEAD_ONLY)
        data = MemberInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = User.objects.filter(username=data.validated_data["username"]).first()
        if user is None:
            raise ValidationError({"username": ["No such user."]})
        try:
            membership = membership_add(
                actor=request.user,
                project=project,
                user=user,
                role=data.validated_data["role"],
            )
        except DjangoValidationError as exc:
            raise ValidationError(validation_detail(exc)) from exc
        return Response(MemberOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: AuthedApiRequest, slug: str, username: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, roles=LEAD_ONLY)
        user = get_object_or_404(User, username=username)
        try:
            membership_remove(actor=request.user, project=project, user=user)
        except DjangoValidationError as exc:
            raise ValidationError(validation_detail(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)
