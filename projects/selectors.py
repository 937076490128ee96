from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from projects.models import CharterStatus, CharterVersion, Membership, Project


def projects_for_user(*, user: Any) -> QuerySet[Project]:
    """Projects the user belongs to (admins: all), with member counts."""
    projects = Project.objects.all() if user.is_staff else Project.objects.filter(members=user)
    return projects.annotate(member_count=Count("memberships", distinct=True)).order_by("name")


def project_members(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username")


def charter_versions(*, project: Project) -> QuerySet[CharterVersion]:
    return project.charters.select_related("created_by", "submitted_by", "decided_by").order_by(
        "-number"
    )


def charter_current(*, project: Project) -> CharterVersion | None:
    """The draft if there is one, else the latest version."""
    return charter_versions(project=project).first()


def charter_signed_off(*, project: Project) -> CharterVersion | None:
    """The newest signed-off version, if any."""
    return charter_versions(project=project).filter(status=CharterStatus.APPROVED).first()
