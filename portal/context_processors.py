from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the top bar needs. The "Charter" item leads to the charter of the project
    being looked at (any page under /projects/<slug>/); elsewhere to the list of the
    user's projects, each of which leads to its charter."""
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("slug") if match is not None else None
    on_project = bool(slug) and request.path.startswith(f"/projects/{slug}/")
    return {
        "oidc_enabled": settings.OIDC_ENABLED,
        "nav_charter_url": (
            reverse("projects:charter", kwargs={"slug": slug})
            if on_project
            else reverse("projects:list")
        ),
    }
