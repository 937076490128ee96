"""Shared API parts: the error format and the health check."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Errors as JSON: ``{"detail": ...}`` or a message list per field."""
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes."
        )
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("The request cannot be read.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission to do this.")
    return drf_exception_handler(exc, context)


def form_errors(form: Any) -> dict[str, list[str]]:
    """A Django form's errors as ``{"field": ["message", ...]}``."""
    return {
        field: [e["message"] for e in errs] for field, errs in form.errors.get_json_data().items()
    }


def validation_detail(exc: Any) -> Any:
    """A Django ValidationError as the API's error body."""
    if hasattr(exc, "message_dict"):
        return exc.message_dict
    return {"detail": exc.messages}


def paginated(request: Request, view: APIView, items: Any, serializer: Any, **kw: Any) -> Response:
    """One page of ``items`` in the API's pagination envelope."""
    paginator = PageNumberPagination()
    page: Any = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True, **kw).data)
