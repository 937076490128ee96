"""Writes: quota decisions and changes, the catalog, metered usage, budget alerts.

The public API for anything that consumes compute (workspaces now, training
jobs and serving endpoints next):

- ``quota_decide(project=..., user=..., demand=...)`` inside the caller's
  transaction, before it lets a resource hold compute;
- ``usage_open(resource=..., ...)`` when the resource starts costing money and
  ``usage_close(resource=...)`` when it stops;
- ``compute.consumers.register`` so that what a kind of resource holds counts
  against the quotas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from accounts.models import User
from accounts.notifications import notify
from audit.services import audit_record
from compute.models import HOURS_PER_MONTH, BudgetAlert, ComputeSize, Quota, UsageInterval
from compute.selectors import (
    Usage,
    month_bounds,
    project_budget,
    quota_usage,
    spend_month_to_date,
    split_by_day,
)
from projects.models import Membership, Project, Role

# --- quotas ----------------------------------------------------------------------


def _defaults(prefix: str) -> dict[str, Any]:
    return dict(settings.WORKSPACES_DEFAULT_QUOTAS[prefix])


def quota_for_update(*, project: Project | None = None, user: User | None = None) -> Quota:
    """The quota row of a project or user, created from the defaults, locked
    (SELECT ... FOR UPDATE) until the transaction ends."""
    if project is not None:
        quota, _ = Quota.objects.get_or_create(project=project, defaults=_defaults("project"))
    else:
        quota, _ = Quota.objects.get_or_create(user=user, defaults=_defaults("user"))
    return Quota.objects.select_for_update().get(pk=quota.pk)


def resource_key(resource: models.Model) -> tuple[str, int]:
    """How compute accounting names a resource: (model label, primary key)."""
    return resource._meta.label_lower, int(resource.pk)


@dataclass(frozen=True)
class Demand:
    """Compute that one resource asks to hold.

    ``resource`` is the (model label, pk) of the resource when it exists
    already (a start or a resize), so what it holds now is not counted twice.
    ``quota_nodes`` is the most machines it may hold (a cluster's maximum),
    ``billed_nodes`` the machines it is billed for while it runs.
    """

    size: ComputeSize
    quota_nodes: int = 1
    billed_nodes: int = 1
    running: int = 0  # "running" slots it takes (a notebook: 1)
    resource: tuple[str, int] | None = None


@dataclass
class QuotaDecision:
    exceeded: list[str] = field(default_factory=list)
    hourly: Decimal = Decimal(0)
    monthly: Decimal = Decimal(0)

    @property
    def within(self) -> bool:
        return not self.exceeded


def _check_limits(
    who: str, quota: Quota, usage: Usage, vcpus: int, gpus: int, running: int
) -> list[str]:
    problems = []
    if usage.vcpus + vcpus > quota.max_vcpus:
        problems.append(
            f"{who} vCPUs: {usage.vcpus} in use + {vcpus} requested > {quota.max_vcpus}"
        )
    if gpus and usage.gpus + gpus > quota.max_gpus:
        problems.append(f"{who} GPUs: {usage.gpus} in use + {gpus} requested > {quota.max_gpus}")
    if running and usage.running + running > quota.max_running:
        problems.append(
            f"{who} running workspaces: {usage.running} + {running} > {quota.max_running}"
        )
    return problems


def quota_decide(
    *, project: Project, user: User, demand: Demand, now: datetime | None = None
) -> QuotaDecision:
    """Check a demand for compute against the project's and the user's quotas
    and budgets, counting what every kind of resource holds now.

    Locks both quota rows (project first, then user, always in that order), so
    concurrent demands take turns: call it inside the transaction that records
    the resource's new state.
    """
    project_quota = quota_for_update(project=project)
    user_quota = quota_for_update(user=user)
    vcpus = demand.size.vcpus * demand.quota_nodes
    gpus = demand.size.gpus * demand.quota_nodes
    decision = QuotaDecision(hourly=demand.size.hourly_price * max(demand.billed_nodes, 1))
    decision.monthly = (decision.hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"))
    decision.exceeded += _check_limits(
        "Project",
        project_quota,
        quota_usage(project=project, exclude=demand.resource),
        vcpus,
        gpus,
        demand.running,
    )
    decision.exceeded += _check_limits(
        "Your",
        user_quota,
        quota_usage(user=user, exclude=demand.resource),
        vcpus,
        gpus,
        demand.running,
    )
    budget = project_budget(project=project, quota=project_quota)
    if budget:
        spent = spend_month_to_date(project=project, now=now)
        if spent >= budget:
            decision.exceeded.append(
                f"Project budget: {spent:.2f} of {budget:.2f} spent this month"
            )
    if user_quota.monthly_budget:
        spent = spend_month_to_date(user=user, now=now)
        if spent >= user_quota.monthly_budget:
            decision.exceeded.append(
                f"Your budget: {spent:.2f} of {user_quota.monthly_budget:.2f} spent this month"
            )
    return decision


QUOTA_LIMITS = {"max_vcpus": 100_000, "max_gpus": 10_000, "max_running": 10_000}


def quota_set(
    *, actor: User, project: Project | None = None, user: User | None = None, **limits: Any
) -> Quota:
    """Change a project's or a user's quota (platform admins only).

    Four eyes apply to admins too: an admin who is a member of the project, or
    whose own quota it is, is refused (and the attempt audited); another
    admin makes the change.
    """
    if not actor.is_staff:
        raise PermissionDenied("Only platform admins change quotas.")
    own = (
        project is not None and Membership.objects.filter(project=project, user=actor).exists()
    ) or (user is not None and user.pk == actor.pk)
    if own:
        subject = f"project:{project.slug}" if project else f"user:{actor.username}"
        audit_record(
            action="quota.change_refused",
            actor=actor,
            project=project,
            payload={"subject": subject, "asked": limits, "reason": "four eyes"},
        )
        raise PermissionDenied(
            "You are a member of this project; another platform admin changes its quota."
            if project
            else "Another platform admin changes your own quota."
        )
    errors = {}
    for name, high in QUOTA_LIMITS.items():
        if name in limits and not 0 <= int(limits[name]) <= high:
            errors[name] = f"Between 0 and {high}."
    budget = limits.get("monthly_budget")
    if budget is not None and not Decimal(0) <= Decimal(budget) <= Decimal(10**9):
        errors["monthly_budget"] = "Between 0 and 1,000,000,000."
    unknown = set(limits) - {*QUOTA_LIMITS, "monthly_budget"}
    if unknown:
        errors.update(dict.fromkeys(sorted(unknown), "Not a quota field."))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        quota = quota_for_update(project=project, user=user)
        before = {k: getattr(quota, k) for k in limits}
        for name, value in limits.items():
            setattr(quota, name, value)
        quota.updated_at = timezone.now()
        quota.save()
        audit_record(
            action="quota.changed",
            actor=actor,
            project=project,
            obj=quota,
            payload={
                "subject": (
                    f"project:{project.slug}"
                    if project
                    else f"user:{user.username if user else ''}"
                ),
                "before": before,
                "after": limits,
            },
        )
    return quota


# --- catalog -------------------------------------------------------------------------

SIZE_FIELDS = (
    "name",
    "provider",
    "region",
    "vcpus",
    "memory_gb",
    "gpus",
    "gpu_type",
    "hourly_price",
    "currency",
    "price_date",
    "enabled",
)


def compute_size_save(
    *, actor: User, size: ComputeSize | None = None, **values: Any
) -> ComputeSize:
    """Add a size to the catalog or change one (platform admins only)."""
    if not actor.is_staff:
        raise PermissionDenied("Only platform admins edit the compute catalog.")
    unknown = set(values) - set(SIZE_FIELDS)
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Not a size field."))
    creating = size is None
    size = size or ComputeSize()
    before = {k: getattr(size, k) for k in values} if not creating else {}
    for name, value in values.items():
        setattr(size, name, value)
    size.full_clean(validate_unique=True)
    with transaction.atomic():
        size.save()
        audit_record(
            action="compute_size.created" if creating else "compute_size.changed",
            actor=actor,
            obj=size,
            payload={"name": size.name, "before": before, "after": values},
        )
    return size


# --- usage metering --------------------------------------------------------------------


def usage_open(
    *,
    resource: models.Model,
    name: str,
    project_id: int,
    user_id: int,
    size: ComputeSize,
    nodes: int,
    now: datetime,
) -> UsageInterval | None:
    """Start metering a resource at ``size`` times ``nodes``; nothing if it is
    metered already or holds no machine. Call inside the caller's transaction."""
    resource_type, resource_id = resource_key(resource)
    if (
        nodes == 0
        or UsageInterval.objects.filter(
            resource_type=resource_type, resource_id=resource_id, ended_at__isnull=True
        ).exists()
    ):
        return None
    return UsageInterval.objects.create(
        resource_type=resource_type,
        resource_id=resource_id,
        resource_name=name[:200],
        project_id=project_id,
        user_id=user_id,
        size=size,
        size_name=size.name,
        hourly_price=size.hourly_price,
        nodes=nodes,
        started_at=now,
        day=now.astimezone(UTC).date(),
    )


def usage_close(*, resource: models.Model, now: datetime) -> None:
    """Stop metering a resource: close its open interval, one row per UTC day."""
    resource_type, resource_id = resource_key(resource)
    interval = (
        UsageInterval.objects.select_for_update()
        .filter(resource_type=resource_type, resource_id=resource_id, ended_at__isnull=True)
        .first()
    )
    if interval is not None:
        usage_interval_close(interval=interval, end=now)


def _continuation(interval: UsageInterval, **times: Any) -> UsageInterval:
    return UsageInterval(
        resource_type=interval.resource_type,
        resource_id=interval.resource_id,
        resource_name=interval.resource_name,
        project_id=interval.project_id,
        user_id=interval.user_id,
        size_id=interval.size_id,
        size_name=interval.size_name,
        hourly_price=interval.hourly_price,
        nodes=interval.nodes,
        **times,
    )


def usage_interval_close(*, interval: UsageInterval, end: datetime) -> None:
    pieces = split_by_day(interval.started_at, max(end, interval.started_at))
    if not pieces:
        pieces = [(interval.started_at.date(), interval.started_at, interval.started_at)]
    first_day, first_start, first_end = pieces[0]
    interval.ended_at = first_end
    interval.day = first_day
    interval.cost = interval.cost_until(first_end)
    interval.save(update_fields=["ended_at", "day", "cost"])
    for day, piece_start, piece_end in pieces[1:]:
        piece = _continuation(interval, started_at=piece_start, ended_at=piece_end, day=day)
        piece.cost = piece.cost_until(piece_end)
        piece.save()


def usage_roll_over(*, now: datetime | None = None) -> int:
    """Close open intervals that began before today (UTC) and open them again
    at midnight, so open intervals stay short. Returns how many rolled over."""
    now = now or timezone.now()
    today = now.date()
    rolled = 0
    for interval_id in UsageInterval.objects.filter(
        ended_at__isnull=True, day__lt=today
    ).values_list("pk", flat=True):
        with transaction.atomic():
            interval = (
                UsageInterval.objects.select_for_update()
                .filter(pk=interval_id, ended_at__isnull=True)
                .first()
            )
            if interval is None:
                continue
            midnight = datetime.combine(today, datetime.min.time(), tzinfo=now.tzinfo)
            usage_interval_close(interval=interval, end=midnight)
            _continuation(interval, started_at=midnight, day=today).save()
            rolled += 1
    return rolled


def budget_alerts_check(*, project: Project, now: datetime | None = None) -> list[int]:
    """Tell the project's leads once a month when spend crosses 80% and 100%
    of the budget. Returns the thresholds announced now."""
    now = now or timezone.now()
    budget = project_budget(project=project)
    if not budget:
        return []
    spent = spend_month_to_date(project=project, now=now)
    month = month_bounds(now.date())[0].date()
    announced = []
    for percent in settings.WORKSPACES_BUDGET_ALERT_PERCENTS:
        if spent * 100 < budget * percent:
            continue
        with transaction.atomic():
            _, created = BudgetAlert.objects.get_or_create(
                project=project, month=month, percent=percent
            )
            if not created:
                continue
            leads = User.objects.filter(memberships__project=project, memberships__role=Role.LEAD)
            action = (
                "new compute requests need an admin's approval"
                if percent >= 100
                else "new requests still run within quota"
            )
            notify(
                users=leads,
                text=(
                    f"{project.name}: {percent}% of the monthly compute budget spent "
                    f"({spent:.2f} of {budget:.2f}); {action}"
                ),
                url=f"/projects/{project.slug}/costs/",
            )
            audit_record(
                action="budget.threshold_crossed",
                project=project,
                obj=project,
                payload={"percent": percent, "spent": spent, "budget": budget},
            )
            announced.append(percent)
    return announced
