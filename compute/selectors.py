"""Reads: the catalog, what quotas hold, spend and budgets, cost rows."""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.models import User
from compute.consumers import Holding, registered
from compute.models import ComputeSize, Quota, UsageInterval
from projects.models import Project

CENT = Decimal("0.01")


def sizes_offered() -> QuerySet[ComputeSize]:
    """Enabled sizes that the configured provider can run.

    The local provider runs any size (capped by the machine) and charges its
    list price, so costs in a local install look like the cloud's.
    """
    sizes = ComputeSize.objects.filter(enabled=True)
    if settings.CLOUD_PROVIDER != "local":
        sizes = sizes.filter(provider=settings.CLOUD_PROVIDER)
    return sizes


# --- quotas ----------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    vcpus: int = 0
    gpus: int = 0
    running: int = 0


def _holdings(*, project_id: int | None = None, user_id: int | None = None) -> list[Holding]:
    rows: list[Holding] = []
    for lister in registered().values():
        rows.extend(lister(project_id=project_id, user_id=user_id))
    return rows


def quota_usage(
    *,
    project: Project | None = None,
    user: User | None = None,
    exclude: tuple[str, int] | None = None,
) -> Usage:
    """What every registered kind of resource of a project (or a user) holds
    now, leaving out ``exclude`` (resource type, id): the one being decided."""
    vcpus = gpus = running = 0
    for h in _holdings(
        project_id=project.pk if project is not None else None,
        user_id=user.pk if user is not None else None,
    ):
        if exclude is not None and (h.resource_type, h.resource_id) == exclude:
            continue
        vcpus += h.vcpus
        gpus += h.gpus
        running += h.running
    return Usage(vcpus=vcpus, gpus=gpus, running=running)


def usage_by_project_and_user() -> tuple[dict[int, Usage], dict[int, Usage]]:
    """What every project and every user holds now: one query per kind of resource."""
    projects: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    users: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for h in _holdings():
        for totals in (projects[h.project_id], users[h.user_id]):
            totals[0] += h.vcpus
            totals[1] += h.gpus
            totals[2] += h.running
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
    resource_type: str
    resource_id: int
    resource: str  # the resource's name
    size: str
    cost: Decimal


def cost_rows(
    *,
    start: datetime,
    end: datetime,
    projects: Any = None,
    user: User | None = None,
    resource: tuple[str, int] | None = None,
    now: datetime | None = None,
) -> list[CostRow]:
    """Cost per day, project, user, resource and size in [start, end).

    Closed intervals are summed by the database (each lies within one day);
    open ones are priced up to ``now``. Two queries, whatever the row count.
    """
    now = now or timezone.now()
    intervals = UsageInterval.objects.all()
    if projects is not None:
        intervals = intervals.filter(project__in=projects)
    if user is not None:
        intervals = intervals.filter(user=user)
    if resource is not None:
        intervals = intervals.filter(resource_type=resource[0], resource_id=resource[1])
    rows: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    closed = (
        intervals.filter(
            ended_at__isnull=False,
            day__gte=start.date(),
            day__lte=(end - timedelta(microseconds=1)).date(),
        )
        .values(
            "day",
            "project__slug",
            "user__username",
            "resource_type",
            "resource_id",
            "resource_name",
            "size_name",
        )
        .annotate(total=Sum("cost"))
        .order_by()
    )
    for r in closed:
        key = (
            r["day"],
            r["project__slug"],
            r["user__username"],
            r["resource_type"],
            r["resource_id"],
            r["resource_name"],
            r["size_name"],
        )
        rows[key] += r["total"] or Decimal(0)
    for interval in intervals.filter(ended_at__isnull=True, started_at__lt=end).select_related(
        "project", "user"
    ):
        for day, piece_start, piece_end in split_by_day(
            max(interval.started_at, start), min(now, end)
        ):
            key = (
                day,
                interval.project.slug,
                interval.user.username,
                interval.resource_type,
                interval.resource_id,
                interval.resource_name,
                interval.size_name,
            )
            rows[key] += interval.cost_until(piece_end) - interval.cost_until(piece_start)
    return [
        CostRow(
            day=k[0],
            project=k[1],
            user=k[2],
            resource_type=k[3],
            resource_id=k[4],
            resource=k[5],
            size=k[6],
            cost=v,
        )
        for k, v in sorted(rows.items(), key=lambda kv: kv[0][:6])
    ]


def projects_with_usage() -> QuerySet[Project]:
    """Projects that have ever been metered: those a budget alert may concern."""
    return Project.objects.filter(pk__in=UsageInterval.objects.values("project")).order_by("pk")


def spend_month_to_date(
    *, project: Project | None = None, user: User | None = None, now: datetime | None = None
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


def resource_cost(*, resource_type: str, resource_id: int, now: datetime | None = None) -> Decimal:
    """What one resource has cost so far, all months."""
    now = now or timezone.now()
    intervals = UsageInterval.objects.filter(resource_type=resource_type, resource_id=resource_id)
    closed = intervals.filter(ended_at__isnull=False).aggregate(total=Sum("cost"))[
        "total"
    ] or Decimal(0)
    open_interval = intervals.filter(ended_at__isnull=True).first()
    running = open_interval.cost_until(now) if open_interval else Decimal(0)
    return (closed + running).quantize(CENT)


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
    """A month's costs as plain data: totals and breakdowns, for pages, API and CSV."""
    start, end = month_bounds(month)
    rows = cost_rows(start=start, end=end, projects=projects, now=now)
    by: dict[str, dict[str, Decimal]] = {
        k: defaultdict(Decimal) for k in ("project", "user", "size", "resource", "day")
    }
    for r in rows:
        by["project"][r.project] += r.cost
        by["user"][r.user] += r.cost
        by["size"][r.size] += r.cost
        by["resource"][f"{r.project}/{r.resource}"] += r.cost
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
        "by_resource": ranked(by["resource"]),
        "by_day": [{"name": k, "cost": v.quantize(CENT)} for k, v in sorted(by["day"].items())],
        "rows": rows,
    }
