"""Site-level pages: the home dashboard, a project's page across its stages, health."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.http import AuthedRequest
from charter.selectors import (
    Gate,
    charter_current,
    charter_gate,
    charter_pending_approval,
    charter_signed_off,
    charter_summary,
)
from governance.selectors import pending_approvals_for_user
from portal.health import health
from portal.selectors import dashboard_memberships
from projects.forms import MemberForm
from projects.models import Project, Stage
from projects.permissions import get_project_for_user
from projects.selectors import project_members


@login_required
def home(request: AuthedRequest) -> HttpResponse:
    return render(
        request,
        "portal/home.html",
        {
            "memberships": dashboard_memberships(user=request.user),
            "pending": pending_approvals_for_user(user=request.user),
        },
    )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health()
    return JsonResponse(report, status=200 if report["ok"] else 503)


def _progress(project: Project, gate: Gate) -> list[dict[str, Any]]:
    order = list(Stage.values)
    here = order.index(project.stage) if project.stage in order else 0
    strip = []
    for i, (value, label) in enumerate(Stage.choices):
        state = "done" if i < here else "current" if i == here else "todo"
        strip.append(
            {
                "value": value,
                "label": label,
                "state": state,
                "gate": gate if value == Stage.CHARTER else None,
            }
        )
    return strip


@login_required
def project_detail(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    current = charter_current(project=project)
    signed = charter_signed_off(project=project)
    gate = charter_gate(current, signed)
    return render(
        request,
        "portal/project_detail.html",
        {
            "project": project,
            "membership": membership,
            "members": project_members(project=project),
            "is_lead": membership is not None and membership.role == "lead",
            "member_form": MemberForm(),
            "may_write": membership is not None and membership.can_write,
            "charter": current,
            "charter_approval": charter_pending_approval(project, current),
            "charter_summary": charter_summary(current),
            "gate": gate,
            "progress": _progress(project, gate),
        },
    )
