"""Reads for the home dashboard, in a fixed number of queries however many projects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from compute.models import UsageInterval
from compute.selectors import spend_month_to_date
from governance.models import ApprovalRequest, ApprovalState
from portal.stages import ProjectProgress, progress_for
from projects.models import Membership, Project
from workspaces.models import Workspace, WorkspaceState

CENT = Decimal("0.01")
WORKSPACE = "workspaces.workspace"
ADMIN_PROJECTS_SHOWN = 50


def dashboard_memberships(*, user: User) -> QuerySet[Membership]:
    """The user's projects with the user's role, in one query."""
    return Membership.objects.filter(user=user).select_related("project").order_by("project__name")


@dataclass(frozen=True)
class ProjectRow:
    project: Project
    role: str
    progress: ProjectProgress


def my_projects(*, user: User) -> list[ProjectRow]:
    """The user's projects, each with its role and where it stands."""
    memberships = list(dashboard_memberships(user=user))
    found = progress_for(m.project_id for m in memberships)
    return [ProjectRow(m.project, m.get_role_display(), found[m.project_id]) for m in memberships]


def costs_today(*, workspace_ids: list[int], now: datetime | None = None) -> dict[int, Decimal]:
    """What each workspace has cost since midnight UTC (one query)."""
    now = now or timezone.now()
    totals: dict[int, Decimal] = {pk: Decimal(0) for pk in workspace_ids}
    intervals = UsageInterval.objects.filter(
        resource_type=WORKSPACE, resource_id__in=workspace_ids, day=now.date()
    )
    for interval in intervals:
        cost = interval.cost if interval.ended_at else interval.cost_until(now)
        totals[interval.resource_id] += cost or Decimal(0)
    return {pk: total.quantize(CENT) for pk, total in totals.items()}


def my_running_workspaces(*, user: User, now: datetime | None = None) -> list[Any]:
    """The user's running notebooks and clusters, each with ``cost_today``."""
    running = list(
        Workspace.objects.filter(owner=user, state=WorkspaceState.RUNNING)
        .select_related("project", "size")
        .order_by("project__name", "name")
    )
    costs = costs_today(workspace_ids=[w.pk for w in running], now=now)
    for w in running:
        w.cost_today = costs[w.pk]  # type: ignore[attr-defined]
    return running


@dataclass(frozen=True)
class Platform:
    projects: list[tuple[Project, ProjectProgress]]
    project_count: int
    over_quota: QuerySet[ApprovalRequest]
    spend_month: Decimal


def platform_overview(*, now: datetime | None = None) -> Platform:
    """What a platform admin watches: the projects, requests beyond quota, this month's spend."""
    projects = list(Project.objects.order_by("-created_at")[:ADMIN_PROJECTS_SHOWN])
    found = progress_for(p.pk for p in projects)
    return Platform(
        projects=[(p, found[p.pk]) for p in projects],
        project_count=Project.objects.count(),
        over_quota=ApprovalRequest.objects.filter(state=ApprovalState.PENDING, requires_staff=True)
        .select_related("project", "requested_by")
        .order_by("created_at"),
        spend_month=spend_month_to_date(now=now).quantize(CENT),
    )
