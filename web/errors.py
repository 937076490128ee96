"""Error pages: JSON under /api/, MLflow's error shape under /mlflow/ (the
tracking servers: ``{"error_code": ..., "message": ...}``, what the mlflow
client reads), Django's own pages everywhere else.

DRF answers errors raised inside an API view itself (web.api.exception_handler);
these handlers answer the rest: an unknown /api/ path, a request refused by
middleware, or a crash outside DRF's handling.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def is_tracking(request: HttpRequest) -> bool:
    return request.path_info.startswith("/mlflow/")


def tracking_error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error_code": code, "message": message}, status=status)


def request_too_large(request: HttpRequest) -> HttpResponse:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE: a 413 that says so, in JSON
    under /api/ and in the portal's layout elsewhere."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    if is_tracking(request):
        return tracking_error(
            "RESOURCE_LIMIT_EXCEEDED", f"The request body is larger than {limit:,} bytes.", 413
        )
    if is_api(request):
        return JsonResponse(
            {"detail": f"The request body is larger than {limit:,} bytes."}, status=413
        )
    back = request.path
    if not url_has_allowed_host_and_scheme(back, allowed_hosts=None):
        back = "/"
    context = {"limit": limit, "limit_mb": round(limit / 1_000_000, 1), "back": back}
    return render(request, "errors/request_too_large.html", context, status=413)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return request_too_large(request)
    if is_tracking(request):
        return tracking_error("BAD_REQUEST", "Bad request.", 400)
    if is_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_tracking(request):
        return tracking_error("PERMISSION_DENIED", "You do not have permission to do this.", 403)
    if is_api(request):
        return JsonResponse({"detail": "You do not have permission to do this."}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_tracking(request):
        return tracking_error("ENDPOINT_NOT_FOUND", "No such endpoint.", 404)
    if is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if is_tracking(request):
        return tracking_error("INTERNAL_ERROR", "Server error.", 500)
    if is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
