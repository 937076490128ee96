"""Tokens scoped to one project's tracking server (``ProjectToken``).

A workspace or a job gets one when it starts and loses it when it ends; user
code never holds the person's own token.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from projects.models import PROJECT_TOKEN_PREFIX, Project, ProjectToken


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def project_token_issue(
    *, project: Project, user: User, purpose: str, expires_at: datetime | None = None
) -> str:
    """A new token for ``purpose``, revoking the ones it held before; returns
    the raw value, which is never stored."""
    raw = PROJECT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        project_token_revoke(purpose=purpose)
        ProjectToken.objects.create(
            project=project,
            user=user,
            purpose=purpose,
            token_hash=_hash(raw),
            expires_at=expires_at,
        )
    return raw


def project_token_revoke(*, purpose: str) -> int:
    """Revoke every live token held for ``purpose``; returns how many."""
    return ProjectToken.objects.filter(purpose=purpose, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def project_token_user(raw: str, *, slug: str) -> User | None:
    """The user a live token of project ``slug`` acts as; None for a token
    that is not a project token, is revoked or expired, belongs to another
    project or to a deactivated user."""
    if not raw.startswith(PROJECT_TOKEN_PREFIX):
        return None
    token = (
        ProjectToken.objects.select_related("user", "project")
        .filter(token_hash=_hash(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None or not token.is_active or token.project.slug != slug:
        return None
    return token.user
