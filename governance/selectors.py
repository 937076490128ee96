"""Reads for approvals and the audit trail."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet

from accounts.models import User
from audit.models import AuditEvent
from governance.models import ApprovalRequest, ApprovalState
from governance.services import MAX_STEPS
from projects.models import Membership, Project, Role


def pending_approvals_for_user(*, user: User) -> QuerySet[ApprovalRequest]:
    """Pending requests this user may decide: never their own (four eyes)."""
    holds_role = Membership.objects.filter(
        project=OuterRef("project"), user=user, role=OuterRef("required_role")
    )
    may_decide = Q(Exists(holds_role), requires_staff=False)
    if user.is_staff:
        member = Membership.objects.filter(project=OuterRef("project"), user=user)
        may_decide |= Q(~Exists(member), requires_staff=True)
    pending = (
        ApprovalRequest.objects.filter(state=ApprovalState.PENDING)
        .filter(may_decide)
        .exclude(requested_by=user)
    )
    # Four eyes along a chain: not a step after one this user decided.
    for depth in range(1, MAX_STEPS + 1):
        pending = pending.exclude(**{"__".join(["previous"] * depth) + "__decided_by": user})
    return pending.select_related("project", "requested_by").order_by("created_at")


# How a list of requests may be sorted, by the name the page uses.
APPROVAL_SORTS = {
    "newest": ("-created_at", "-pk"),
    "oldest": ("created_at", "pk"),
    "project": ("project__name", "-created_at"),
    "state": ("state", "-created_at"),
}


def approvals_searched(
    approvals: QuerySet[ApprovalRequest], *, query: str = "", sort: str = ""
) -> QuerySet[ApprovalRequest]:
    """Requests whose summary, project or requester contain ``query``, sorted."""
    if query:
        approvals = approvals.filter(
            Q(summary__icontains=query)
            | Q(project__name__icontains=query)
            | Q(requested_by__username__icontains=query)
        )
    if sort in APPROVAL_SORTS:
        approvals = approvals.order_by(*APPROVAL_SORTS[sort])
    return approvals


def requests_made_by(*, user: User) -> QuerySet[ApprovalRequest]:
    """The user's own requests, newest first."""
    return (
        ApprovalRequest.objects.filter(requested_by=user)
        .select_related("project", "requested_by", "decided_by")
        .order_by("-created_at", "-pk")
    )


def audit_events_visible_to(*, user: User) -> QuerySet[AuditEvent]:
    """Admins see every event; project leads the events of their projects."""
    events = AuditEvent.objects.all()
    if not user.is_staff:
        led = Membership.objects.filter(user=user, role=Role.LEAD).values("project_id")
        events = events.filter(project_id__in=led)
    return events.select_related("actor", "project").order_by("-sequence")


def audit_events_filtered(
    *,
    user: User,
    q: str = "",
    project: str = "",
    actor: str = "",
    action: str = "",
    action_prefix: str = "",
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    sort: str = "",
) -> QuerySet[AuditEvent]:
    """Events the user may see, filtered. A moment is taken as it is; a day
    (the page's date pickers) from its start, and ``until`` to its end (UTC)."""
    events = audit_events_visible_to(user=user)
    if q:
        events = events.filter(
            Q(action__icontains=q)
            | Q(actor_username__icontains=q)
            | Q(project__name__icontains=q)
            | Q(object_type__icontains=q)
            | Q(object_id=q)
        )
    if project:
        events = events.filter(project__slug=project)
    if actor:
        events = events.filter(actor_username=actor)
    if action:
        events = events.filter(action=action)
    if action_prefix:
        events = events.filter(action__startswith=action_prefix)
    if since:
        start = since if isinstance(since, datetime) else _day_start(since)
        events = events.filter(created_at__gte=start)
    if until:
        end = until if isinstance(until, datetime) else _day_start(until + timedelta(days=1))
        events = events.filter(created_at__lt=end)
    if sort == "oldest":
        events = events.order_by("sequence")
    return events


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def audit_filter_choices(*, user: User) -> dict[str, list[Any]]:
    """The projects, actors and actions the user's audit filters offer."""
    events = audit_events_visible_to(user=user).order_by()
    projects = (
        Project.objects.all()
        if user.is_staff
        else Project.objects.filter(memberships__user=user, memberships__role=Role.LEAD)
    )
    return {
        "projects": list(projects.order_by("name").values_list("slug", "name")),
        "actors": list(
            events.exclude(actor_username="")
            .values_list("actor_username", flat=True)
            .distinct()
            .order_by("actor_username")
        ),
        "actions": list(events.values_list("action", flat=True).distinct().order_by("action")),
    }


def user_may_see_audit(*, user: User) -> bool:
    return bool(user.is_staff) or Membership.objects.filter(user=user, role=Role.LEAD).exists()


def approvals_visible_to(*, user: User, state: str = "") -> QuerySet[ApprovalRequest]:
    """Requests in the user's projects (admins: all), each annotated with
    ``may_decide`` for this user, in one query."""
    holds_role = Membership.objects.filter(
        project=OuterRef("project"), user=user, role=OuterRef("required_role")
    )
    approvals = ApprovalRequest.objects.all()
    if not user.is_staff:
        approvals = approvals.filter(
            project__in=Membership.objects.filter(user=user).values("project")
        )
    if state:
        approvals = approvals.filter(state=state)
    may_decide = Q(Exists(holds_role), requires_staff=False)
    if user.is_staff:
        may_decide |= Q(requires_staff=True)
    return (
        approvals.annotate(
            may_decide=ExpressionWrapper(
                may_decide & Q(state=ApprovalState.PENDING) & ~Q(requested_by=user),
                output_field=BooleanField(),
            )
        )
        .select_related("project", "requested_by", "decided_by")
        .order_by("-created_at")
    )


def approval_for_user(*, user: User, approval_id: int) -> ApprovalRequest:
    """One request the user may see; 404 for anyone outside its project."""
    from django.http import Http404

    approval = approvals_visible_to(user=user).filter(pk=approval_id).first()
    if approval is None:
        raise Http404("No such approval request.")
    return approval
