"""Workspace pages, the cost pages and the quota page. Each view validates,
calls one service or selector, and renders; htmx polls get the page's partial."""

from __future__ import annotations

import csv
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from accounts.http import AuthedRequest
from accounts.models import User
from charter.gates import CharterNotSignedOff
from charter.selectors import charter_signed_off
from compute import selectors as compute_selectors
from compute import services as compute_services
from compute.models import Quota
from projects.models import Project
from projects.permissions import get_project_for_user
from workspaces import selectors, services
from workspaces.forms import AllowedIpsForm, QuotaForm, ResizeForm, WorkspaceRequestForm
from workspaces.permissions import cost_scope, get_workspace_for_user


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
def my_workspaces(request: AuthedRequest) -> HttpResponse:
    return render(
        request,
        "workspaces/my_workspaces.html",
        {
            "workspaces": selectors.workspaces_for_user(user=request.user),
            "projects": selectors.workspace_projects_for_user(user=request.user),
        },
    )


def _sandbox_problem() -> str:
    """Why notebooks here run for platform admins only, or "" when they are sandboxed."""
    if settings.CLOUD_PROVIDER != "local":
        return ""
    available, reason = services.local_isolation_status()
    return "" if available else reason


WORKSPACES_PER_PAGE = 25
WORKSPACE_SORTS = {
    "newest": ("-created_at", "Newest first"),
    "name": ("name", "Name"),
    "state": ("state", "State"),
    "owner": ("owner__username", "Owner"),
}


def _workspace_listing(request: HttpRequest, project: Project) -> dict[str, Any]:
    """One page of the project's workspaces, searched by name or owner and sorted."""
    sort = request.GET.get("sort", "newest")
    if sort not in WORKSPACE_SORTS:
        sort = "newest"
    query = request.GET.get("q", "")[:200].strip()
    items = selectors.workspaces_for_project(project=project)
    if query:
        items = items.filter(Q(name__icontains=query) | Q(owner__username__icontains=query))
    items = items.order_by(WORKSPACE_SORTS[sort][0], "-pk")
    page = Paginator(items, WORKSPACES_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "page": page,
        "items": list(page.object_list),
        "q": query,
        "sort": sort,
        "sorts": [(key, label) for key, (_, label) in WORKSPACE_SORTS.items()],
        "prefix": "",
    }


@login_required
def workspace_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug, write=request.method == "POST")
    form = WorkspaceRequestForm(request.POST or None)
    refusal: CharterNotSignedOff | None = None
    if request.method == "POST" and form.is_valid():
        try:
            workspace = services.workspace_request(
                actor=request.user, project=project, **form.service_kwargs()
            )
        except ValidationError as exc:
            form.add_error(None, _error_text(exc))
        except services.WorkspaceConflict as exc:
            form.add_error(None, str(exc))
        except CharterNotSignedOff as exc:
            refusal = exc
        else:
            if workspace.state == "pending_approval":
                messages.info(
                    request,
                    f"“{workspace.name}” goes beyond the quota: a platform admin decides.",
                )
            else:
                messages.success(request, f"“{workspace.name}” approved; provisioning started.")
            return redirect("workspaces:detail", slug=project.slug, workspace_id=workspace.pk)
    usage = compute_selectors.quota_usage(project=project)
    quota = Quota.objects.filter(project=project).first()
    listing = _workspace_listing(request, project)
    return render(
        request,
        "workspaces/workspace_list.html",
        status=409 if refusal else 200,
        context={
            "project": project,
            "membership": membership,
            "can_request": membership is not None and membership.can_write,
            "charter_signed": charter_signed_off(project=project) is not None,
            "refusal": refusal,
            "sandbox_problem": _sandbox_problem(),
            "any_workspaces": selectors.workspaces_for_project(project=project).exists(),
            "listing": listing,
            "workspaces": listing["items"],
            "form": form,
            "usage": usage,
            "quota": quota,
            "defaults": None if quota else _default_quota(),
            "budget": compute_selectors.budget_status(project=project),
        },
    )


def _default_quota() -> dict[str, Any]:
    return dict(settings.WORKSPACES_DEFAULT_QUOTAS["project"])


@login_required
def workspace_detail(request: AuthedRequest, slug: str, workspace_id: int) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request.user, slug, workspace_id)
    context = {
        "project": workspace.project,
        "workspace": workspace,
        "is_owner": workspace.owner_id == request.user.pk,
        "can_manage": services.workspace_may_manage(user=request.user, workspace=workspace),
        "is_staff": request.user.is_staff,
        "cost": selectors.workspace_cost(workspace=workspace),
    }
    if _htmx(request):
        return render(request, "workspaces/workspace_detail.html#state", context)
    context.update(
        history=selectors.workspace_history(workspace=workspace),
        resize_form=ResizeForm(),
        ips_form=AllowedIpsForm(initial={"allowed_ips": "\n".join(workspace.allowed_ips)}),
    )
    return render(request, "workspaces/workspace_detail.html", context)


CONFIRM = {
    "stop": ("Stop", "Unsaved work in its notebooks is lost; metering stops."),
    "delete": ("Delete", "Its files are deleted with it; this cannot be undone."),
}


@login_required
def workspace_action(
    request: AuthedRequest, slug: str, workspace_id: int, action: str
) -> HttpResponse:
    """POST does the action. GET asks to confirm a stop or a delete (the page without
    JavaScript; with it, htmx asks in place and posts)."""
    workspace, _ = get_workspace_for_user(request.user, slug, workspace_id)
    if request.method == "GET" and action in CONFIRM:
        verb, consequence = CONFIRM[action]
        back = reverse("workspaces:detail", kwargs={"slug": slug, "workspace_id": workspace.pk})
        return render(
            request,
            "confirm.html",
            {
                "title": f"{verb} “{workspace.name}”?",
                "question": f"{verb} the workspace “{workspace.name}” of {workspace.project.name}?",
                "consequence": consequence,
                "action": request.path,
                "button": verb,
                "cancel": back,
            },
        )
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    actor: Any = request.user
    try:
        if action == "start":
            services.workspace_start(actor=actor, workspace=workspace)
            done = "Start requested."
        elif action == "stop":
            services.workspace_stop(actor=actor, workspace=workspace)
            done = "Stopping."
        elif action == "delete":
            services.workspace_delete(actor=actor, workspace=workspace)
            done = "Deleting."
        elif action == "resize":
            form = ResizeForm(request.POST)
            if not form.is_valid():
                raise ValidationError("Choose a size.")
            services.workspace_resize(
                actor=actor, workspace=workspace, size=form.cleaned_data["size"]
            )
            workspace.refresh_from_db()
            done = (
                "Resize requested: a platform admin decides."
                if workspace.approval_id and workspace.requested_size_id
                else "Resizing."
            )
        elif action == "allowed-ips":
            ips = AllowedIpsForm(request.POST)
            ips.is_valid()
            services.workspace_allowed_ips_set(
                actor=actor, workspace=workspace, cidrs=ips.cleaned_data.get("allowed_ips", [])
            )
            done = "IP allowlist saved."
        else:
            raise Http404("No such action.")
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    except services.WorkspaceConflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    back = reverse("workspaces:detail", kwargs={"slug": slug, "workspace_id": workspace.pk})
    if _htmx(request):
        return HttpResponse(status=204, headers={"HX-Redirect": back})
    return redirect(back)


# --- costs -----------------------------------------------------------------------------


def _month(request: HttpRequest) -> Any:
    try:
        return compute_selectors.parse_month(request.GET.get("month"))
    except ValueError:
        messages.error(request, "A month as YYYY-MM; showing this month.")
        return timezone.now().date().replace(day=1)


def _csv_cell(value: Any) -> str:
    text = str(value)
    # Spreadsheets run cells that start like a formula.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(rows: list[compute_selectors.CostRow], filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(["day", "project", "user", "workspace", "size", "cost_usd"])
    for r in rows:
        writer.writerow(
            [
                r.day.isoformat(),
                _csv_cell(r.project),
                _csv_cell(r.user),
                _csv_cell(r.resource),
                _csv_cell(r.size),
                f"{r.cost:.4f}",
            ]
        )
    return response


def _costs_page(request: HttpRequest, projects: Any, project: Project | None) -> HttpResponse:
    month = _month(request)
    figures = selectors.cost_figures(month=month, projects=projects)
    if request.GET.get("export") == "csv":
        rows = selectors.costs_for_month(month=month, projects=projects)["rows"]
        name = f"costs-{project.slug if project else 'all'}-{month:%Y-%m}.csv"
        return _csv(rows, name)
    return render(
        request,
        "workspaces/costs.html",
        {
            "project": project,
            "month": month,
            "figures": figures,
            "summary": figures["summary"],
            "budget": compute_selectors.budget_status(project=project) if project else None,
        },
    )


@login_required
def project_costs(request: AuthedRequest, slug: str) -> HttpResponse:
    projects, project = cost_scope(request.user, slug)
    return _costs_page(request, projects, project)


@login_required
def admin_costs(request: AuthedRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("The cost overview is for platform admins.")
    return _costs_page(request, None, None)


@login_required
def quota_list(request: AuthedRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Quotas are for platform admins.")
    form = QuotaForm(request.POST or None)
    if request.method == "POST":
        subject: dict[str, Any] = {}
        if request.POST.get("project"):
            subject["project"] = Project.objects.filter(slug=request.POST["project"]).first()
        elif request.POST.get("username"):
            subject["user"] = User.objects.filter(username=request.POST["username"]).first()
        if not subject or None in subject.values():
            messages.error(request, "No such project or user.")
        elif form.is_valid():
            try:
                compute_services.quota_set(actor=request.user, **subject, **form.cleaned_data)
            except ValidationError as exc:
                messages.error(request, _error_text(exc))
            else:
                messages.success(request, "Quota saved.")
                return redirect("workspaces:quotas")
        else:
            messages.error(request, "Check the limits: whole numbers, not negative.")
    quotas = list(compute_selectors.quotas_listed())
    by_project, by_user = compute_selectors.usage_by_project_and_user()
    empty = compute_selectors.Usage()
    defaults = _default_quota()
    for q in quotas:
        held = by_project.get(q.project_id or 0) if q.project_id else by_user.get(q.user_id or 0)
        q.usage = held or empty  # type: ignore[attr-defined]
        q.over = _over_limits(q.usage, q.max_vcpus, q.max_gpus, q.max_running)  # type: ignore[attr-defined]
        # The budget that applies: the quota's, else the project's own.
        own = q.project.monthly_budget if q.project else None
        q.budget = q.monthly_budget or own or None  # type: ignore[attr-defined]
    projects_without = list(
        Project.objects.exclude(pk__in=[q.project_id for q in quotas if q.project_id])
    )
    for p in projects_without:
        p.usage = by_project.get(p.pk, empty)  # type: ignore[attr-defined]
        p.over = _over_limits(  # type: ignore[attr-defined]
            p.usage,  # type: ignore[attr-defined]
            defaults["max_vcpus"],
            defaults["max_gpus"],
            defaults["max_running"],
        )
    return render(
        request,
        "workspaces/quotas.html",
        {
            "quotas": quotas,
            "projects_without": projects_without,
            "defaults": defaults,
            "form": form,
            "catalog": compute_selectors.sizes_offered(),
        },
    )


def _over_limits(usage: Any, vcpus: int, gpus: int, running: int) -> set[str]:
    """Which limits what is held now goes beyond (after a quota was lowered,
    or an admin approved a request over it)."""
    over = set()
    if usage.vcpus > vcpus:
        over.add("vcpus")
    if usage.gpus > gpus:
        over.add("gpus")
    if usage.running > running:
        over.add("running")
    return over
