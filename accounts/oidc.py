"""Single sign-on with Microsoft Entra ID, on only when OIDC_RP_CLIENT_ID is set."""

from __future__ import annotations

from typing import Any

from mozilla_django_oidc.auth import OIDCAuthenticationBackend


class EntraIDBackend(OIDCAuthenticationBackend):
    """Match users by e-mail; new users get a username from it and no roles."""

    def create_user(self, claims: dict[str, Any]) -> Any:
        email = claims.get("email") or claims.get("preferred_username", "")
        username = email.split("@")[0][:150] or claims["sub"][:150]
        base, n = username, 1
        while self.UserModel.objects.filter(username=username).exists():
            n += 1
            username = f"{base}{n}"
        return self.UserModel.objects.create_user(
            username=username,
            email=email,
            first_name=claims.get("given_name", ""),
            last_name=claims.get("family_name", ""),
        )
