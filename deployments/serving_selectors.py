"""Reads of real-time serving, with their joins done."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from accounts.models import User
from deployments.serving_models import Deployment, Endpoint, EndpointState
from projects.models import Membership, Project
from projects.permissions import get_project_for_user


def endpoints_of(project: Project) -> QuerySet[Endpoint]:
    """The project's endpoints (deleted ones left out), deployments prefetched."""
    return (
        Endpoint.objects.filter(project=project)
        .exclude(state=EndpointState.DELETED)
        .select_related("registered_model")
        .prefetch_related(
            Prefetch(
                "deployments",
                queryset=Deployment.objects.select_related("model_version", "size").order_by(
                    "name"
                ),
            )
        )
        .order_by("name")
    )


def get_endpoint_for_user(
    user: User, slug: str, name: str, *, write: bool = False
) -> tuple[Endpoint, Membership | None]:
    """Endpoint ``name`` of project ``slug``: 404 to outsiders, 403 to read-only
    members when ``write``."""
    project, membership = get_project_for_user(user, slug, write=write)
    endpoint = endpoints_of(project).filter(name=name).first()
    if endpoint is None:
        raise Http404("No such endpoint.")
    return endpoint, membership


def endpoint_stats(endpoint: Endpoint) -> dict[str, Any]:
    """Requests, errors and latency per deployment over the last minute (local
    provider: what the router saw; other providers: nothing yet)."""
    from deployments.serving import serving_provider

    try:
        provider: Any = serving_provider(endpoint.provider)
    except Exception:  # noqa: BLE001 - a provider not configured here shows no numbers
        return {}
    stats = getattr(provider, "endpoint_stats", None)
    if stats is None or not endpoint.provider_name:
        return {}
    try:
        return dict(stats(endpoint.provider_name).get("deployments", {}))
    except Exception:  # noqa: BLE001 - numbers are a nicety; the page must show
        return {}
