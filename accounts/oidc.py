"""Single sign-on with Microsoft Entra ID, on only when OIDC_RP_CLIENT_ID is set."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from audit.services import audit_record


def entra_object_id_record(*, user: Any, object_id: str, actor: Any, via: str) -> bool:
    """Record ``user``'s Entra ID object id (audited); False when unchanged.

    Raises ``ValueError`` for something that is not an object id (a GUID).
    """
    object_id = str(uuid.UUID(object_id)) if object_id else ""
    if object_id == user.entra_object_id:
        return False
    before = user.entra_object_id
    user.entra_object_id = object_id
    with transaction.atomic():
        user.save(update_fields=["entra_object_id"])
        audit_record(
            action="account.entra_object_id_set",
            actor=actor,
            obj=user,
            payload={"before": before, "after": object_id, "via": via},
        )
    return True


def entra_object_id(claims: dict[str, Any]) -> str:
    """The user's Entra ID object id from the claims, as Azure expects it, or "".

    Only an id from the tenant the Azure ML workspace belongs to
    (``AZURE_TENANT_ID``, when set) is kept: an object id from another tenant
    names nobody Azure ML could assign a compute instance to.
    """
    raw = str(claims.get("oid") or "")
    tenant = str(claims.get("tid") or "")
    if settings.AZURE_TENANT_ID and tenant.lower() != settings.AZURE_TENANT_ID.lower():
        return ""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return ""


class EntraIDBackend(OIDCAuthenticationBackend):
    """Match users by e-mail; new users get a username from it and no roles.

    The user's object id (``oid``) is recorded at every sign-in: Azure ML
    assigns a user's compute instances to it.
    """

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        # Microsoft Graph's userinfo has no oid or tid; the verified ID token does.
        claims = dict(super().get_userinfo(access_token, id_token, payload))
        for name in ("oid", "tid"):
            if payload.get(name):
                claims[name] = payload[name]
        return claims

    def create_user(self, claims: dict[str, Any]) -> Any:
        email = claims.get("email") or claims.get("preferred_username", "")
        username = email.split("@")[0][:150] or claims["sub"][:150]
        base, n = username, 1
        while self.UserModel.objects.filter(username=username).exists():
            n += 1
            username = f"{base}{n}"
        user = self.UserModel.objects.create_user(
            username=username,
            email=email,
            first_name=claims.get("given_name", ""),
            last_name=claims.get("family_name", ""),
        )
        return self.update_user(user, claims)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        object_id = entra_object_id(claims)
        if object_id:
            entra_object_id_record(user=user, object_id=object_id, actor=user, via="single sign-on")
        return user
