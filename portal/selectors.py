"""Reads for the home dashboard."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from projects.models import Membership


def dashboard_memberships(*, user: User) -> QuerySet[Membership]:
    """The user's projects with their stage and the user's role, in one query."""
    return Membership.objects.filter(user=user).select_related("project").order_by("project__name")
