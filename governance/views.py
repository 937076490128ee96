from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from governance.exports import csv_lines, json_chunks
from governance.forms import AuditFilterForm
from governance.selectors import audit_events_filtered, user_may_see_audit


@login_required
def audit_list(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    if not user_may_see_audit(user=request.user):
        raise Http404("No audit trail for you here.")
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    events = audit_events_filtered(user=request.user, **filters)
    export = request.GET.get("export")
    if form.is_bound and not form.is_valid():
        events = events.none()
    if export in ("csv", "json"):
        stamp = "audit"
        if export == "csv":
            response = StreamingHttpResponse(csv_lines(events.iterator()), content_type="text/csv")
        else:
            response = StreamingHttpResponse(
                json_chunks(events.iterator()), content_type="application/json"
            )
        response["Content-Disposition"] = f'attachment; filename="{stamp}.{export}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "governance/audit_list.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )
