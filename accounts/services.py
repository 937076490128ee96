"""Writes about identity: personal access tokens and sign-in events."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import PersonalAccessToken, User, hash_token
from audit.services import audit_record


def token_create(
    *, user: User, name: str, ip_address: str | None = None
) -> tuple[PersonalAccessToken, str]:
    """Create a token and return it with its raw value, which is never stored."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. the script that uses it."})
    raw = PersonalAccessToken.generate()
    with transaction.atomic():
        token = PersonalAccessToken.objects.create(
            user=user, name=name[:100], prefix=raw[:10], token_hash=hash_token(raw)
        )
        audit_record(
            action="token.created",
            actor=user,
            obj=token,
            payload={"name": token.name, "prefix": token.prefix},
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
