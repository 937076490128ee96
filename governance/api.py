from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest, request_user
from audit.models import AuditEvent
from governance.approvals import kind_for
from governance.forms import AuditApiFilterForm
from governance.models import ApprovalRequest, ApprovalState
from governance.selectors import (
    approval_for_user,
    approvals_visible_to,
    audit_events_filtered,
    user_may_see_audit,
)
from governance.services import (
    ApprovalConflict,
    approval_decide,
    approval_may_decide,
    approval_withdraw,
)
from web.api import form_errors, validation_detail
from web.http import client_ip


class AuditEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_username")
    project: Any = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "sequence",
            "created_at",
            "actor",
            "action",
            "project",
            "object_type",
            "object_id",
            "ip_address",
            "payload",
            "previous_hash",
            "hash",
        ]


@extend_schema(
    parameters=[
        OpenApiParameter("project", str),
        OpenApiParameter("actor", str),
        OpenApiParameter("action", str, description="Prefix, e.g. 'auth.'"),
        OpenApiParameter("since", str),
        OpenApiParameter("until", str),
    ]
)
class AuditEventListApi(generics.ListAPIView):
    """The audit trail: everything for admins, their projects for leads."""

    serializer_class = AuditEventOutput

    def get_queryset(self):  # type: ignore[no-untyped-def]
        request = self.request
        user = request_user(request)
        if not user_may_see_audit(user=user):
            raise Http404
        form = AuditApiFilterForm(request.query_params or None)
        if form.is_bound and not form.is_valid():
            raise ValidationError(form_errors(form))
        filters = dict(form.cleaned_data) if form.is_bound else {}
        return audit_events_filtered(user=user, action_prefix=filters.pop("action", ""), **filters)


class ApprovalOutput(serializers.ModelSerializer):
    project: Any = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by: Any = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by: Any = serializers.SlugRelatedField(slug_field="username", read_only=True)
    may_decide = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "kind",
            "project",
            "summary",
            "subject_type",
            "subject_id",
            "state",
            "required_role",
            "requires_staff",
            "requested_by",
            "created_at",
            "decided_by",
            "decided_at",
            "comment",
            "may_decide",
        ]

    def get_may_decide(self, obj: ApprovalRequest) -> bool:
        if hasattr(obj, "may_decide"):
            return bool(obj.may_decide)
        request = self.context.get("request")
        if request is None:
            return False
        may, _ = approval_may_decide(user=request.user, request=obj)
        return may and obj.state == ApprovalState.PENDING


class ApprovalDetailOutput(ApprovalOutput):
    subject = serializers.SerializerMethodField()

    class Meta(ApprovalOutput.Meta):
        fields = [*ApprovalOutput.Meta.fields, "subject"]

    def get_subject(self, obj: ApprovalRequest) -> dict[str, Any]:
        return kind_for(obj.kind).describe(request=obj)


class DecisionInput(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class ApprovalListApi(generics.ListAPIView):
    """Approval requests in your projects. ``?state=pending`` for open ones."""

    serializer_class = ApprovalOutput

    @extend_schema(parameters=[OpenApiParameter("state", str, enum=ApprovalState.values)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        state = self.request.query_params.get("state", "")
        if state and state not in ApprovalState.values:
            raise ValidationError({"state": [f"One of: {', '.join(ApprovalState.values)}."]})
        return approvals_visible_to(user=request_user(self.request), state=state)


class ApprovalDetailApi(APIView):
    @extend_schema(responses=ApprovalDetailOutput)
    def get(self, request: AuthedApiRequest, approval_id: int) -> Response:
        approval = approval_for_user(user=request.user, approval_id=approval_id)
        return Response(ApprovalDetailOutput(approval, context={"request": request}).data)


class _DecisionApi(APIView):
    approve = True

    @extend_schema(request=DecisionInput, responses=ApprovalOutput)
    def post(self, request: AuthedApiRequest, approval_id: int) -> Response:
        approval_for_user(user=request.user, approval_id=approval_id)
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            decided = approval_decide(
                actor=request.user,
                approval_id=approval_id,
                approve=self.approve,
                comment=data.validated_data["comment"],
                ip_address=client_ip(request),
            )
        except DjangoValidationError as exc:
            raise ValidationError(validation_detail(exc)) from exc
        except ApprovalConflict as exc:
            return Response(
                {"detail": str(exc), "state": exc.state}, status=status.HTTP_409_CONFLICT
            )
        return Response(ApprovalOutput(decided, context={"request": request}).data)


class ApprovalApproveApi(_DecisionApi):
    approve = True


class ApprovalRejectApi(_DecisionApi):
    approve = False


class ApprovalWithdrawApi(APIView):
    @extend_schema(request=None, responses=ApprovalOutput)
    def post(self, request: AuthedApiRequest, approval_id: int) -> Response:
        approval_for_user(user=request.user, approval_id=approval_id)
        try:
            withdrawn = approval_withdraw(actor=request.user, approval_id=approval_id)
        except ApprovalConflict as exc:
            return Response(
                {"detail": str(exc), "state": exc.state}, status=status.HTTP_409_CONFLICT
            )
        return Response(ApprovalOutput(withdrawn, context={"request": request}).data)
