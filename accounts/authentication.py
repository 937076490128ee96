"""API authentication with personal access tokens (``Authorization: Bearer``)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import PersonalAccessToken, User, hash_token


class TokenExpired(exceptions.AuthenticationFailed):
    pass


def user_for_token(raw: str) -> tuple[User, PersonalAccessToken] | None:
    """The user and token a raw token names; None when it names none, is
    revoked or belongs to a deactivated user; TokenExpired when it expired."""
    token = (
        PersonalAccessToken.objects.select_related("user")
        .filter(token_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    if token.is_expired:
        when = timezone.localtime(token.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise TokenExpired(f"Token expired on {when}; create a new one on your profile page.")
    token.touch()
    return token.user, token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        found = user_for_token(header[1].decode(errors="replace"))
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return found

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


__all__ = ["AnonymousUser", "BearerTokenAuthentication", "user_for_token"]


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describe personal access tokens in the OpenAPI schema."""

    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A personal access token."}
