"""Reads about a user's own things."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import PersonalAccessToken, User


def user_tokens(*, user: User) -> QuerySet[PersonalAccessToken]:
    return PersonalAccessToken.objects.filter(user=user).order_by("-created_at")
