"""Writes about identity: personal access tokens and sign-in events."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import (
    TOKEN_DEFAULT_LIFETIME_DAYS,
    TOKEN_LIFETIME_CHOICES,
    PersonalAccessToken,
    User,
    hash_token,
)
from audit.services import audit_record


def token_create(
    *,
    user: User,
    name: str,
    lifetime_days: int = TOKEN_DEFAULT_LIFETIME_DAYS,
    ip_address: str | None = None,
) -> tuple[PersonalAccessToken, str]:
    """Create a token that expires after ``lifetime_days`` (one of
    ``TOKEN_LIFETIME_CHOICES``) and return it with its raw value, which is
    never stored."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. the script that uses it."})
    if lifetime_days not in TOKEN_LIFETIME_CHOICES:
        choices = ", ".join(map(str, TOKEN_LIFETIME_CHOICES))
        raise ValidationError({"lifetime_days": f"Choose one of {choices} days."})
    raw = PersonalAccessToken.generate()
    now = timezone.now()
    with transaction.atomic():
        token = PersonalAccessToken.objects.create(
            user=user,
            name=name[:100],
            prefix=raw[:10],
            token_hash=hash_token(raw),
            created_at=now,
            expires_at=now + timedelta(days=lifetime_days),
        )
        audit_record(
            action="token.created",
            actor=user,
            obj=token,
            payload={
                "name": token.name,
                "prefix": token.prefix,
                "expires_at": token.expires_at.isoformat(),
            },
            ip_address=ip_address,
        )
    return token, raw


def token_revoke(
    *, user: User, token_id: int, ip_address: str | None = None
) -> PersonalAccessToken:
    """Revoke one of the user's own tokens; revoking twice changes nothing."""
    with transaction.atomic():
        token = PersonalAccessToken.objects.select_for_update().get(pk=token_id, user=user)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(
                action="token.revoked",
                actor=user,
                obj=token,
                payload={"name": token.name, "prefix": token.prefix},
                ip_address=ip_address,
            )
    return token
