"""The stage's front door: every project of the user with its deployment
requests and endpoints counted (a fixed number of queries)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from accounts.http import AuthedRequest
from accounts.models import User
from deployments.gate_models import DeploymentRequest, RequestState
from deployments.serving_models import Endpoint, EndpointState
from projects.models import Membership


def _counted(rows: Any, key: str) -> dict[int, dict[str, int]]:
    return {row[key]: row for row in rows}


def deployment_projects(*, user: User) -> list[dict[str, Any]]:
    """The rows of ``partials/project_cta_list.html`` (three queries)."""
    memberships = list(
        Membership.objects.filter(user=user).select_related("project").order_by("project__name")
    )
    ids = [m.project_id for m in memberships]
    requests = _counted(
        DeploymentRequest.objects.filter(project_id__in=ids)
        .values("project_id")
        .annotate(
            n=Count("pk"),
            waiting=Count("pk", filter=Q(state__in=[RequestState.PENDING, RequestState.BLOCKED])),
        ),
        "project_id",
    )
    endpoints = _counted(
        Endpoint.objects.filter(project_id__in=ids)
        .exclude(state=EndpointState.DELETED)
        .values("project_id")
        .annotate(n=Count("pk")),
        "project_id",
    )
    rows = []
    for m in memberships:
        asked = requests.get(m.project_id, {})
        serving = endpoints.get(m.project_id, {}).get("n", 0)
        waiting = asked.get("waiting", 0)
        requests_url = reverse("deployments:requests", kwargs={"slug": m.project.slug})
        endpoints_url = reverse("deployments:endpoints", kwargs={"slug": m.project.slug})
        if waiting:
            cta, cta_url = f"See the {waiting} waiting for a decision", requests_url
        elif serving:
            cta, cta_url = "Open its endpoints", endpoints_url
        elif m.can_write:
            cta = "Pick a model version to validate"
            cta_url = reverse("experiments:models", kwargs={"slug": m.project.slug})
        else:
            cta, cta_url = "See its deployment requests", requests_url
        n = asked.get("n", 0)
        rows.append(
            {
                "project": m.project,
                "url": requests_url,
                "summary": (
                    f"{n} deployment request{'' if n == 1 else 's'}, "
                    f"{serving} endpoint{'' if serving == 1 else 's'}"
                ),
                "cta_text": cta,
                "cta_url": cta_url,
            }
        )
    return rows


@login_required
def deployments_home(request: AuthedRequest) -> HttpResponse:
    return render(
        request,
        "deployments/home.html",
        {"rows": deployment_projects(user=request.user)},
    )
