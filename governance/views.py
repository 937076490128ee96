from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.http import AuthedRequest
from audit.exports import csv_lines, json_chunks
from governance.approvals import kind_for
from governance.audit_links import links_for
from governance.forms import ApprovalSearchForm, AuditFilterForm, DecisionForm, action_in_words
from governance.models import ApprovalRequest, ApprovalState
from governance.selectors import (
    approval_for_user,
    approvals_searched,
    audit_events_filtered,
    audit_filter_choices,
    pending_approvals_for_user,
    requests_made_by,
    user_may_see_audit,
)
from governance.services import (
    ApprovalConflict,
    approval_decide,
    approval_may_decide,
    approval_withdraw,
)
from projects.models import Role
from web.http import client_ip

AUDIT_PAGE_SIZE = 50


def _payload_rows(payload: Any) -> list[tuple[str, str]]:
    if not isinstance(payload, dict):
        return [("", str(payload))] if payload else []
    return [
        (str(key).replace("_", " ").capitalize(), "—" if value in (None, "") else str(value))
        for key, value in payload.items()
    ]


@login_required
def audit_list(request: AuthedRequest) -> HttpResponse | StreamingHttpResponse:
    if not user_may_see_audit(user=request.user):
        raise Http404("No audit trail for you here.")
    params = request.GET.copy()
    params.pop("page", None)
    export = params.pop("export", [""])[-1]
    form = AuditFilterForm(params or None, **audit_filter_choices(user=request.user))
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    events = audit_events_filtered(user=request.user, **filters)
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
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    links_for(page.object_list)
    for event in page.object_list:
        event.action_words = action_in_words(event.action)  # type: ignore[attr-defined]
        event.details = _payload_rows(event.payload)  # type: ignore[attr-defined]
    return render(
        request,
        "governance/audit_list.html",
        {"form": form, "page": page, "query": params.urlencode()},
    )


# --- Approvals ----------------------------------------------------------------

INBOX_TEMPLATE = "governance/approval_inbox.html"
INBOX_PAGE_SIZE = 25


@login_required
def approval_inbox(request: AuthedRequest) -> HttpResponse:
    """What waits for the current user's decision, across projects, and the
    user's own requests: both searchable, the second sortable, both in pages."""
    form = ApprovalSearchForm(request.GET or None)
    wanted = form.cleaned_data if form.is_valid() else {}
    query, sort = wanted.get("q", ""), wanted.get("sort") or "newest"
    pending = approvals_searched(pending_approvals_for_user(user=request.user), query=query)
    mine = approvals_searched(requests_made_by(user=request.user), query=query, sort=sort)
    params = request.GET.copy()
    params.pop("page", None)
    params.pop("pending_page", None)
    return render(
        request,
        INBOX_TEMPLATE,
        {
            "form": form,
            "pending": Paginator(pending, INBOX_PAGE_SIZE).get_page(
                request.GET.get("pending_page")
            ),
            "mine": Paginator(mine, INBOX_PAGE_SIZE).get_page(request.GET.get("page")),
            "query": params.urlencode(),
            "sort": sort,
        },
    )


def _subject_rows(approval: ApprovalRequest, subject: dict[str, Any]) -> list[tuple[str, str]]:
    return kind_for(approval.kind).rows(subject)


def _safe_page(page: Any) -> str:
    """A subject's own page, when its kind names one inside the portal."""
    if isinstance(page, str) and page.startswith("/") and not page.startswith("//"):
        return page
    return ""


def _decider(approval: ApprovalRequest) -> str:
    if approval.requires_staff:
        return "A platform admin"
    if approval.required_role in Role.values:
        return f"A {Role(approval.required_role).label.lower()} of the project"
    return approval.required_role or "—"


def _approval_page(
    request: AuthedRequest,
    approval: ApprovalRequest,
    *,
    error: str = "",
    comment: str = "",
    status: int = 200,
) -> HttpResponse:
    kind = kind_for(approval.kind)
    subject = kind.describe(request=approval)
    may_decide = bool(getattr(approval, "may_decide", False))
    why_not = ""
    if approval.state == ApprovalState.PENDING and not may_decide:
        _, why_not = approval_may_decide(user=request.user, request=approval)
    return render(
        request,
        "governance/approval_detail.html",
        {
            "approval": approval,
            "subject": subject,
            "subject_rows": _subject_rows(approval, subject),
            "subject_page": _safe_page(subject.get("page")),
            "kind_label": kind.label or approval.kind.capitalize(),
            "may_decide": may_decide,
            "why_not": why_not,
            "decider": _decider(approval),
            "is_requester": approval.requested_by_id == request.user.pk,
            "error": error,
            "comment": comment,
        },
        status=status,
    )


@login_required
def approval_detail(request: AuthedRequest, approval_id: int) -> HttpResponse:
    approval = approval_for_user(user=request.user, approval_id=approval_id)
    return _approval_page(request, approval)


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@login_required
@require_POST
def approval_decide_view(request: AuthedRequest, approval_id: int) -> HttpResponse:
    """Approve or reject. From the inbox with htmx, the answer is the request's
    row in its new state (or with the reason it was refused); without htmx, a
    redirect back, or the detail page with the reason."""
    approval_for_user(user=request.user, approval_id=approval_id)
    form = DecisionForm(request.POST)
    comment = request.POST.get("comment", "")
    error, status = "", 200
    if not form.is_valid():
        error, status = (
            "Choose to approve or to reject, with a comment of at most 5000 characters.",
            400,
        )
    else:
        approve = form.cleaned_data["decision"] == "approve"
        try:
            approval_decide(
                actor=request.user,
                approval_id=approval_id,
                approve=approve,
                comment=form.cleaned_data["comment"],
                ip_address=client_ip(request),
            )
        except ValidationError as exc:
            error, status = " ".join(exc.messages), 400
        except PermissionDenied as exc:
            error, status = str(exc) or "You may not decide this request.", 403
        except ApprovalConflict as exc:
            error, status = str(exc), 409
    # Read it again: its state may have changed, by this decision or another one.
    approval = approval_for_user(user=request.user, approval_id=approval_id)
    if request.htmx:
        return render(
            request,
            f"{INBOX_TEMPLATE}#approval_row",
            {
                "approval": approval,
                "decidable": bool(approval.may_decide),  # type: ignore[attr-defined]
                "error": error,
                "comment": comment if error else "",
            },
            status=status,
        )
    if error:
        return _approval_page(request, approval, error=error, comment=comment, status=status)
    messages.success(
        request,
        f"{approval.project.name}: {approval.summary} — {approval.get_state_display().lower()}.",
    )
    return redirect(_next_url(request, reverse("governance:inbox")))


@login_required
@require_POST
def approval_withdraw_view(request: AuthedRequest, approval_id: int) -> HttpResponse:
    approval = approval_for_user(user=request.user, approval_id=approval_id)
    try:
        approval_withdraw(actor=request.user, approval_id=approval_id)
    except ApprovalConflict as exc:
        return _approval_page(request, approval, error=str(exc), status=409)
    messages.success(request, f"{approval.project.name}: {approval.summary} — withdrawn.")
    return redirect("governance:approval", approval_id=approval_id)


# --- Notifications --------------------------------------------------------------
