"""Reads: workspaces, what they hold and cost, and the cost pages' figures."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from charter.models import CharterStatus, CharterVersion
from compute.consumers import Holding
from compute.selectors import CENT, month_bounds, resource_cost
from compute.selectors import costs_for_month as compute_costs_for_month
from projects.models import Membership, Project, Role
from workspaces.models import ACTIVE_STATES, IdleShutdown, Workspace, WorkspaceKind, WorkspaceState

S = WorkspaceState

# --- catalog and workspaces ------------------------------------------------


def workspaces_for_project(*, project: Project) -> QuerySet[Workspace]:
    return (
        Workspace.objects.filter(project=project)
        .exclude(state=WorkspaceState.DELETED)
        .select_related("size", "requested_size", "owner", "project")
        .order_by("-created_at")
    )


def workspaces_for_user(*, user: User) -> QuerySet[Workspace]:
    """Workspaces in the user's projects, not deleted."""
    return (
        Workspace.objects.filter(project__in=Membership.objects.filter(user=user).values("project"))
        .exclude(state=WorkspaceState.DELETED)
        .select_related("size", "requested_size", "owner", "project")
        .order_by("project__name", "-created_at")
    )


def workspace_projects_for_user(*, user: User) -> list[dict[str, Any]]:
    """Every project the user is in, with its workspaces counted and what to do next
    (one query): the rows of ``partials/project_cta_list.html``."""
    memberships = (
        Membership.objects.filter(user=user)
        .select_related("project")
        .annotate(
            workspaces=Count(
                "project__workspaces",
                filter=~Q(project__workspaces__state__in=[S.DELETED, S.REJECTED]),
                distinct=True,
            ),
            running=Count(
                "project__workspaces",
                filter=Q(project__workspaces__state=S.RUNNING),
                distinct=True,
            ),
            signed=Exists(
                CharterVersion.objects.filter(
                    project=OuterRef("project"), status=CharterStatus.APPROVED
                )
            ),
        )
        .order_by("project__name")
    )
    rows = []
    for m in memberships:
        slug = m.project.slug
        here = reverse("workspaces:list", kwargs={"slug": slug})
        if not m.signed:  # type: ignore[attr-defined]
            cta = ("Needs a signed-off charter first", reverse("projects:charter", args=[slug]))
        elif not m.can_write:
            cta = ("See its workspaces", here)
        elif not m.workspaces:  # type: ignore[attr-defined]
            cta = ("Request a notebook", here)
        else:
            cta = ("Open its workspaces", here)
        n, running = m.workspaces, m.running  # type: ignore[attr-defined]
        rows.append(
            {
                "project": m.project,
                "url": here,
                "summary": f"{n} workspace{'' if n == 1 else 's'}, {running} running",
                "cta_text": cta[0],
                "cta_url": cta[1],
            }
        )
    return rows


def workspace_history(*, workspace: Workspace) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        object_type="workspaces.workspace", object_id=str(workspace.pk)
    ).order_by("sequence")


# --- what workspaces hold, for the quotas ----------------------------------


def workspace_holdings(
    *, project_id: int | None = None, user_id: int | None = None
) -> list[Holding]:
    """What active workspaces hold now, for compute accounting (one query).

    A notebook holds one machine and one running slot; a cluster its size
    times its maximum nodes. A notebook being resized holds the larger of its
    two sizes, so that approved resizes count before they finish.
    """
    active = Workspace.objects.filter(state__in=ACTIVE_STATES)
    if project_id is not None:
        active = active.filter(project_id=project_id)
    if user_id is not None:
        active = active.filter(owner_id=user_id)
    holdings = []
    rows = active.values_list(
        "pk",
        "project_id",
        "owner_id",
        "kind",
        "size__vcpus",
        "size__gpus",
        "max_nodes",
        "state",
        "requested_size__vcpus",
        "requested_size__gpus",
    )
    for (
        pk,
        project,
        owner,
        kind,
        size_vcpus,
        size_gpus,
        max_nodes,
        state,
        to_vcpus,
        to_gpus,
    ) in rows:
        if state == WorkspaceState.RESIZING and to_vcpus is not None:
            size_vcpus, size_gpus = max(size_vcpus, to_vcpus), max(size_gpus, to_gpus)
        notebook = kind == WorkspaceKind.NOTEBOOK
        nodes = 1 if notebook else max_nodes
        holdings.append(
            Holding(
                resource_type="workspaces.workspace",
                resource_id=pk,
                project_id=project,
                user_id=owner,
                vcpus=size_vcpus * nodes,
                gpus=size_gpus * nodes,
                running=1 if notebook else 0,
            )
        )
    return holdings


def workspace_cost(*, workspace: Workspace, now: datetime | None = None) -> Decimal:
    """What the workspace has cost so far, all months."""
    return resource_cost(resource_type="workspaces.workspace", resource_id=workspace.pk, now=now)


# --- the cost pages ----------------------------------------------------------


def costs_for_month(
    *, month: date, projects: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """A month's costs (compute accounting's figures) and what idle shutdown avoided."""
    return {
        **compute_costs_for_month(month=month, projects=projects, now=now),
        "idle_avoided": idle_cost_avoided(month=month, projects=projects, now=now),
    }


def idle_cost_avoided(*, month: date, projects: Any = None, now: datetime | None = None) -> Decimal:
    """What idle workspaces would have cost this month had nobody stopped them:
    their price from the shutdown until they ran again (or now)."""
    now = now or timezone.now()
    start, end = month_bounds(month)
    shutdowns = IdleShutdown.objects.filter(stopped_at__lt=end).filter(
        Q(resumed_at__isnull=True) | Q(resumed_at__gt=start)
    )
    if projects is not None:
        shutdowns = shutdowns.filter(project__in=projects)
    total = Decimal(0)
    for s in shutdowns:
        begin = max(s.stopped_at, start)
        finish = min(s.resumed_at or now, end, now)
        if finish > begin:
            total += s.hourly_price * Decimal((finish - begin).total_seconds()) / Decimal(3600)
    return total.quantize(CENT)


def cost_figures(
    *, month: date, projects: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """Plotly figures (as dicts) for the cost page: spend over time by project,
    by size, top spenders, and idle cost avoided."""
    start, end = month_bounds(month)
    data = costs_for_month(month=month, projects=projects, now=now)
    days = [(start + timedelta(days=i)).date().isoformat() for i in range((end - start).days)]
    per_project: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in data["rows"]:
        per_project[r.project][r.day.isoformat()] += r.cost
    layout = {"margin": {"l": 50, "r": 20, "t": 40, "b": 60}, "height": 320}
    over_time = {
        "data": [
            {
                "type": "bar",
                "name": slug,
                "x": days,
                "y": [float(per_day.get(d, 0)) for d in days],
            }
            for slug, per_day in sorted(per_project.items())
        ],
        "layout": {
            **layout,
            "barmode": "stack",
            "showlegend": True,
            "title": {"text": "Spend per day by project"},
            "yaxis": {"title": {"text": "USD"}},
        },
    }

    def bar(items: list[dict[str, Any]], title: str) -> dict[str, Any]:
        top = items[:10]
        return {
            "data": [
                {
                    "type": "bar",
                    "orientation": "h",
                    "x": [float(i["cost"]) for i in reversed(top)],
                    "y": [i["name"] for i in reversed(top)],
                }
            ],
            "layout": {
                **layout,
                "title": {"text": title},
                "xaxis": {"title": {"text": "USD"}},
                "yaxis": {"automargin": True},
            },
        }

    idle = {
        "data": [
            {
                "type": "bar",
                "x": ["Spent", "Avoided by idle shutdown"],
                "y": [float(data["total"]), float(data["idle_avoided"])],
            }
        ],
        "layout": {**layout, "title": {"text": "Idle cost avoided"}},
    }
    return {
        "over_time": over_time,
        "by_size": bar(data["by_size"], "Spend by size"),
        "top_spenders": bar(data["by_user"], "Top spenders"),
        "idle": idle,
        "summary": {k: v for k, v in data.items() if k != "rows"},
    }


def projects_led_by(*, user: User) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user=user, memberships__role=Role.LEAD)


def workspace_counts_by_state(*, project: Project) -> dict[str, int]:
    return dict(
        Workspace.objects.filter(project=project)
        .values_list("state")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("state", "n")
    )
