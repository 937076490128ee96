"""Requests whose address carries a NUL character are refused with a 400.

PostgreSQL stores no NUL in text, so a NUL in a path parameter or a query
parameter that reaches a lookup would end as a database error (a 500); no
page or endpoint has a use for one.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from web.errors import is_api, is_tracking, tracking_error
from web.parsers import text_problem


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        texts = [request.path_info]
        for key, values in request.GET.lists():
            texts.append(key)
            texts.extend(values)
        for text in texts:
            problem = text_problem(text)
            if problem:
                if is_tracking(request):
                    return tracking_error(
                        "INVALID_PARAMETER_VALUE", f"Bad address - {problem}", 400
                    )
                if is_api(request):
                    return JsonResponse({"detail": f"Bad address - {problem}"}, status=400)
                return HttpResponseBadRequest(problem)
        return self.get_response(request)
