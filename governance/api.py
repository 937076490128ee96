from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from governance.forms import AuditFilterForm
from governance.models import AuditEvent
from governance.selectors import audit_events_filtered, user_may_see_audit
from portal.api import form_errors


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
        request: Request = self.request
        if not user_may_see_audit(user=request.user):
            raise Http404
        form = AuditFilterForm(request.query_params or None)
        if form.is_bound and not form.is_valid():
            raise ValidationError(form_errors(form))
        return audit_events_filtered(
            user=request.user, **(form.cleaned_data if form.is_bound else {})
        )
