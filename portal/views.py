"""Site-level pages: the home dashboard, a project's page across its stages, health."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.http import AuthedRequest
from charter.selectors import (
    Gate,
    charter_current,
    charter_gate,
    charter_pending_approval,
    charter_rejection,
    charter_signed_off,
    charter_summary,
)
from governance.selectors import pending_approvals_for_user
from portal.health import health
from portal.selectors import my_projects, my_running_workspaces, platform_overview
from portal.stages import StageState, progress_for
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
            "projects": my_projects(user=request.user),
            "pending": pending_approvals_for_user(user=request.user),
            "running": my_running_workspaces(user=request.user),
            "platform": platform_overview() if request.user.is_staff else None,
        },
    )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health()
    return JsonResponse(report, status=200 if report["ok"] else 503)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _card(
    project: Project, step: StageState, gate: Gate, charter_signed: bool, may_write: bool
) -> dict[str, Any]:
    """One stage card: where it leads, its counts and the next step in words."""
    counts = step.progress.counts if step.progress else {}
    url = ""
    summary = ""
    next_step = ""
    if step.value == Stage.CHARTER:
        url = reverse("projects:charter", kwargs={"slug": project.slug})
        summary = _plural(counts.get("versions", 0), "version")
        next_step = {
            "none": "Write the charter",
            "draft": "Submit the charter for sign-off",
            "pending": "Waiting for the business approver",
            "rejected": "Revise the charter and submit it again",
        }.get(gate.state, "")
    elif step.value == Stage.DATA:
        url = reverse("datasets:sources", kwargs={"slug": project.slug})
        summary = (
            f"{_plural(counts.get('sources', 0), 'source')}, "
            f"{_plural(counts.get('snapshots', 0), 'snapshot')}"
        )
        if not counts.get("sources"):
            next_step = "Register your first data source"
        elif not step.progress or not step.progress.reached:
            next_step = "Pull a snapshot that passes its rules"
    elif step.value == Stage.WORKSPACES:
        url = reverse("workspaces:list", kwargs={"slug": project.slug})
        summary = (
            f"{_plural(counts.get('workspaces', 0), 'workspace')}, "
            f"{counts.get('running', 0)} running"
        )
        if not charter_signed:
            next_step = "Needs a signed-off charter first"
        elif not counts.get("workspaces"):
            next_step = "Request a notebook"
        elif not step.progress or not step.progress.reached:
            next_step = "Start a notebook"
    elif step.value == Stage.EXPERIMENTS:
        url = reverse("experiments:list", kwargs={"slug": project.slug})
        summary = (
            f"{_plural(counts.get('runs', 0), 'run')}, "
            f"{_plural(counts.get('model_versions', 0), 'model version')}"
        )
        if not counts.get("runs"):
            next_step = "Log runs with the mlflow client to this project's tracking URI"
        elif not step.progress or not step.progress.reached:
            next_step = "Register a model version"
    elif step.value == Stage.DEPLOYMENT:
        url = reverse("deployments:requests", kwargs={"slug": project.slug})
        summary = (
            f"{_plural(counts.get('deployment_requests', 0), 'deployment request')}, "
            f"{_plural(counts.get('deployments', 0), 'deployment')}"
        )
        if not counts.get("deployment_requests"):
            next_step = "Validate a model version, then request its deployment"
    if next_step and not may_write and step.value != Stage.CHARTER:
        next_step = ""  # read-only members see where things stand, not what to do
    return {
        "value": step.value,
        "label": step.label,
        "number": step.number,
        "state": step.state,
        "gate": gate if step.value == Stage.CHARTER else None,
        "url": url,
        "summary": summary,
        "next_step": next_step,
    }


@login_required
def project_detail(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    current = charter_current(project=project)
    signed = charter_signed_off(project=project)
    gate = charter_gate(current, signed)
    where = progress_for([project.pk])[project.pk]
    may_write = membership is not None and membership.can_write
    cards = [_card(project, step, gate, signed is not None, may_write) for step in where.stages]
    return render(
        request,
        "portal/project_detail.html",
        {
            "project": project,
            "membership": membership,
            "members": project_members(project=project),
            "is_lead": membership is not None and membership.role == "lead",
            "member_form": MemberForm(),
            "may_write": may_write,
            "charter": current,
            "charter_approval": charter_pending_approval(project, current),
            "charter_summary": charter_summary(current),
            "rejection": charter_rejection(project=project),
            "tracking_uri": request.build_absolute_uri(f"/mlflow/{project.slug}"),
            "gate": gate,
            "progress": cards,
            "current_stage": where.current,
        },
    )
