from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.models import User
from projects.models import Membership, Project


def projects_for_user(*, user: User) -> QuerySet[Project]:
    """Projects the user belongs to (admins: all), with member counts."""
    projects = Project.objects.all()
    if not user.is_staff:
        # A subquery, not a join on memberships: the join would leave only the
        # user's own membership to count.
        projects = projects.filter(pk__in=Membership.objects.filter(user=user).values("project"))
    return projects.annotate(member_count=Count("memberships", distinct=True)).order_by("name")


def project_members(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username")
