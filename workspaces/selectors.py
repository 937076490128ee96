"""Reads: workspaces, quota usage, spend and the cost pages' figures."""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from governance.models import AuditEvent
from projects.models import Membership, Project, Role
from workspaces.models import (
    ACTIVE_STATES,
    ComputeSize,
    IdleShutdown,
    Quota,
    UsageInterval,
    Workspace,
    WorkspaceKind,
    WorkspaceState,
)

CENT = Decimal("0.01")


# --- catalog and workspaces ------------------------------------------------


def sizes_offered() -> QuerySet[ComputeSize]:
    """Enabled sizes that the configured provider can run.

    The local provider runs any size (capped by the machine) and charges its
    list price, so costs in a local install look like the cloud's.
    """
    sizes = ComputeSize.objects.filter(enabled=True)
    if settings.CLOUD_PROVIDER != "local":
        sizes = sizes.filter(provider=settings.CLOUD_PROVIDER)
    return sizes


def workspaces_for_project(*, project: Project) -> QuerySet[Workspace]:
    return (
        Workspace.objects.filter(project=project)
        .exclude(state=WorkspaceState.DELETED)
        .select_related("size", "requested_size", "owner", "project")
        .order_by("-created_at")
    )


def workspaces_for_user(*, user: Any) -> QuerySet[Workspace]:
    """Workspaces in the user's projects, not deleted."""
    return (
        Workspace.objects.filter(project__in=Membership.objects.filter(user=user).values("project"))
        .exclude(state=WorkspaceState.DELETED)
        .select_related("size", "requested_size", "owner", "project")
        .order_by("project__name", "-created_at")
    )


def workspace_history(*, workspace: Workspace) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        object_type="workspaces.workspace", object_id=str(workspace.pk)
    ).order_by("sequence")


# --- quotas ----------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    vcpus: int = 0
    gpus: int = 0
    running: int = 0


def quota_usage(
    *, project: Project | None = None, user: Any = None, exclude: int | None = None
) -> Usage:
    """What active workspaces of a project (or a user) hold now.

    Notebooks count toward ``running``; a cluster holds its size times its
    maximum nodes in vCPUs and GPUs.
    """
    active = Workspace.objects.filter(state__in=ACTIVE_STATES)
    if project is not None:
        active = active.filter(project=project)
    if user is not None:
        active = active.filter(owner=user)
    if exclude is not None:
        active = active.exclude(pk=exclude)
    vcpus = gpus = running = 0
    for kind, size_vcpus, size_gpus, max_nodes in active.values_list(
        "kind", "size__vcpus", "size__gpus", "max_nodes"
    ):
        nodes = 1 if kind == WorkspaceKind.NOTEBOOK else max_nodes
        vcpus += size_vcpus * nodes
        gpus += size_gpus * nodes
        running += 1 if kind == WorkspaceKind.NOTEBOOK else 0
    return Usage(vcpus=vcpus, gpus=gpus, running=running)


def usage_by_project_and_user() -> tuple[dict[int, Usage], dict[int, Usage]]:
    """What every project and every user holds now, in one query."""
    projects: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    users: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    rows = Workspace.objects.filter(state__in=ACTIVE_STATES).values_list(
        "project_id", "owner_id", "kind", "size__vcpus", "size__gpus", "max_nodes"
    )
    for project_id, owner_id, kind, size_vcpus, size_gpus, max_nodes in rows:
        nodes = 1 if kind == WorkspaceKind.NOTEBOOK else max_nodes
        running = 1 if kind == WorkspaceKind.NOTEBOOK else 0
        for totals in (projects[project_id], users[owner_id]):
            totals[0] += size_vcpus * nodes
            totals[1] += size_gpus * nodes
            totals[2] += running
    return (
        {k: Usage(*v) for k, v in projects.items()},
        {k: Usage(*v) for k, v in users.items()},
    )


def quotas_listed() -> QuerySet[Quota]:
    return Quota.objects.select_related("project", "user").order_by(
        "project__name", "user__username"
    )


# --- spend -------------------------------------------------------------------


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month of ``month`` as [start, end) in UTC."""
    first = month.replace(day=1)
    last_day = calendar.monthrange(first.year, first.month)[1]
    start = datetime.combine(first, time.min, tzinfo=UTC)
    return start, start + timedelta(days=last_day)


def split_by_day(start: datetime, end: datetime) -> list[tuple[date, datetime, datetime]]:
    """Cut [start, end) at UTC midnights."""
    pieces = []
    start = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while start < end:
        midnight = datetime.combine(start.date() + timedelta(days=1), time.min, tzinfo=UTC)
        piece_end = min(end, midnight)
        pieces.append((start.date(), start, piece_end))
        start = piece_end
    return pieces


@dataclass(frozen=True)
class CostRow:
    day: date
    project: str
    user: str
    workspace_id: int
    workspace: str
    size: str
    cost: Decimal


def cost_rows(
    *,
    start: datetime,
    end: datetime,
    projects: Any = None,
    user: Any = None,
    workspace: Workspace | None = None,
    now: datetime | None = None,
) -> list[CostRow]:
    """Cost per day, project, user, workspace and size in [start, end).

    Closed intervals are summed by the database (each lies within one day);
    open ones are priced up to ``now``. Two queries, whatever the row count.
    """
    now = now or timezone.now()
    intervals = UsageInterval.objects.all()
    if projects is not None:
        intervals = intervals.filter(project__in=projects)
    if user is not None:
        intervals = intervals.filter(user=user)
    if workspace is not None:
        intervals = intervals.filter(workspace=workspace)
    rows: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    closed = (
        intervals.filter(
            ended_at__isnull=False,
            day__gte=start.date(),
            day__lte=(end - timedelta(microseconds=1)).date(),
        )
        .values(
            "day", "project__slug", "user__username", "workspace_id", "workspace__name", "size_name"
        )
        .annotate(total=Sum("cost"))
        .order_by()
    )
    for r in closed:
        key = (
            r["day"],
            r["project__slug"],
            r["user__username"],
            r["workspace_id"],
            r["workspace__name"],
            r["size_name"],
        )
        rows[key] += r["total"] or Decimal(0)
    for interval in intervals.filter(ended_at__isnull=True, started_at__lt=end).select_related(
        "project", "user", "workspace"
    ):
        for day, piece_start, piece_end in split_by_day(
            max(interval.started_at, start), min(now, end)
        ):
            key = (
                day,
                interval.project.slug,
                interval.user.username,
                interval.workspace_id,
                interval.workspace.name,
                interval.size_name,
            )
            rows[key] += interval.cost_until(piece_end) - interval.cost_until(piece_start)
    return [
        CostRow(
            day=k[0], project=k[1], user=k[2], workspace_id=k[3], workspace=k[4], size=k[5], cost=v
        )
        for k, v in sorted(rows.items(), key=lambda kv: kv[0][:5])
    ]


def spend_month_to_date(
    *, project: Project | None = None, user: Any = None, now: datetime | None = None
) -> Decimal:
    now = now or timezone.now()
    start, _ = month_bounds(now.date())
    rows = cost_rows(
        start=start,
        end=now + timedelta(microseconds=1),
        projects=[project] if project is not None else None,
        user=user,
        now=now,
    )
    return sum((r.cost for r in rows), Decimal(0))


def project_budget(*, project: Project, quota: Quota | None = None) -> Decimal | None:
    """The project's monthly budget: its quota's if an admin set one, else its own."""
    if quota is None:
        quota = Quota.objects.filter(project=project).first()
    if quota is not None and quota.monthly_budget:
        return quota.monthly_budget
    return project.monthly_budget or None


@dataclass(frozen=True)
class BudgetStatus:
    budget: Decimal | None
    spent: Decimal
    forecast: Decimal

    @property
    def percent(self) -> int | None:
        if not self.budget:
            return None
        return int(self.spent * 100 / self.budget)


def budget_status(*, project: Project, now: datetime | None = None) -> BudgetStatus:
    """Month-to-date spend, and the month's forecast at the pace so far."""
    now = now or timezone.now()
    spent = spend_month_to_date(project=project, now=now)
    start, end = month_bounds(now.date())
    elapsed = max((now - start).total_seconds(), 3600.0)
    forecast = spent * Decimal((end - start).total_seconds()) / Decimal(elapsed)
    return BudgetStatus(
        budget=project_budget(project=project),
        spent=spent.quantize(CENT),
        forecast=max(forecast, spent).quantize(CENT),
    )


def workspace_cost(*, workspace: Workspace, now: datetime | None = None) -> Decimal:
    """What the workspace has cost so far, all months."""
    now = now or timezone.now()
    closed = UsageInterval.objects.filter(workspace=workspace, ended_at__isnull=False).aggregate(
        total=Sum("cost")
    )["total"] or Decimal(0)
    open_interval = UsageInterval.objects.filter(workspace=workspace, ended_at__isnull=True).first()
    running = open_interval.cost_until(now) if open_interval else Decimal(0)
    return (closed + running).quantize(CENT)


# --- the cost pages ----------------------------------------------------------


def parse_month(value: str | None, *, today: date | None = None) -> date:
    """``YYYY-MM`` as the month's first day; ValueError when it is not one."""
    today = today or timezone.now().date()
    if not value:
        return today.replace(day=1)
    parsed = datetime.strptime(value, "%Y-%m").date()
    if not 2000 <= parsed.year <= 2100:
        raise ValueError("month out of range")
    return parsed


def costs_for_month(
    *, month: date, projects: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """A month's costs as plain data: totals and breakdowns, for the pages, API and CSV."""
    start, end = month_bounds(month)
    rows = cost_rows(start=start, end=end, projects=projects, now=now)
    by: dict[str, dict[str, Decimal]] = {
        k: defaultdict(Decimal) for k in ("project", "user", "size", "workspace", "day")
    }
    for r in rows:
        by["project"][r.project] += r.cost
        by["user"][r.user] += r.cost
        by["size"][r.size] += r.cost
        by["workspace"][f"{r.project}/{r.workspace}"] += r.cost
        by["day"][r.day.isoformat()] += r.cost

    def ranked(d: dict[str, Decimal]) -> list[dict[str, Any]]:
        return [
            {"name": k, "cost": v.quantize(CENT)}
            for k, v in sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    return {
        "month": month.strftime("%Y-%m"),
        "total": sum((r.cost for r in rows), Decimal(0)).quantize(CENT),
        "by_project": ranked(by["project"]),
        "by_user": ranked(by["user"]),
        "by_size": ranked(by["size"]),
        "by_workspace": ranked(by["workspace"]),
        "by_day": [{"name": k, "cost": v.quantize(CENT)} for k, v in sorted(by["day"].items())],
        "idle_avoided": idle_cost_avoided(month=month, projects=projects, now=now),
        "rows": rows,
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


def projects_led_by(*, user: Any) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user=user, memberships__role=Role.LEAD)


def workspace_counts_by_state(*, project: Project) -> dict[str, int]:
    return dict(
        Workspace.objects.filter(project=project)
        .values_list("state")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("state", "n")
    )
