"""Pages of real-time serving: the project's endpoints and one endpoint's page
(deployments, traffic bar, health, recent latency, the rollback button)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.http import AuthedRequest
from cloud.base import ProviderError
from deployments import serving
from deployments.monitoring_selectors import monitors_of
from deployments.serving_models import Endpoint
from deployments.serving_selectors import endpoint_stats, endpoints_of, get_endpoint_for_user
from projects.models import Membership
from projects.permissions import get_project_for_user


def _can_operate(request: AuthedRequest, membership: Membership | None) -> bool:
    return membership is not None and membership.role in serving.OPERATOR_ROLES


@login_required
def endpoint_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    return render(
        request,
        "deployments/serving_list.html",
        {"project": project, "monitors": monitors_of(list(endpoints_of(project)))},
    )


def _detail_context(
    request: AuthedRequest, endpoint: Endpoint, membership: Membership | None
) -> dict[str, Any]:
    deployments = list(endpoint.deployments.all())
    stats = endpoint_stats(endpoint)
    rows = [
        {
            "deployment": d,
            "share": int(endpoint.traffic.get(d.name, 0)),
            "mirror": int(endpoint.mirror.get(d.name, 0)),
            "stats": stats.get(d.name),
            "stoppable": d.state in ("running", "failed")
            and not endpoint.traffic.get(d.name, 0)
            and not endpoint.mirror.get(d.name, 0),
        }
        for d in deployments
    ]
    return {
        "project": endpoint.project,
        "endpoint": endpoint,
        "rows": rows,
        "can_operate": _can_operate(request, membership),
        "running": [d.name for d in deployments if d.state == "running"],
    }


@login_required
def endpoint_detail(request: AuthedRequest, slug: str, name: str) -> HttpResponse:
    endpoint, membership = get_endpoint_for_user(request.user, slug, name)
    context = _detail_context(request, endpoint, membership)
    if request.htmx:
        return render(request, "deployments/serving_detail.html#state", context)
    return render(request, "deployments/serving_detail.html", context)


@login_required
def endpoint_action(request: AuthedRequest, slug: str, name: str, action: str) -> HttpResponse:
    """rollback, promote, traffic, key, stop: POST only, for the lead and ML engineers."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    endpoint, membership = get_endpoint_for_user(request.user, slug, name, write=True)
    if not _can_operate(request, membership):
        raise PermissionDenied("Only the project's lead and ML engineers operate endpoints.")
    detail = reverse("deployments:endpoint", args=[slug, name])
    try:
        if action == "rollback":
            serving.endpoint_rollback(
                actor=request.user,
                endpoint=endpoint,
                reason=request.POST.get("reason", "")[:500],
            )
            messages.success(request, "Rolled back: all traffic goes to the previous deployment.")
        elif action == "promote":
            serving.endpoint_promote(actor=request.user, endpoint=endpoint)
            messages.success(request, "Promoted: the new deployment takes all the traffic.")
        elif action == "traffic":
            traffic = _shares(request, "traffic")
            mirror = _shares(request, "mirror")
            if traffic is None or mirror is None:
                messages.error(request, "Shares are whole percentages from 0 to 100.")
                return redirect(detail)
            serving.endpoint_set_traffic(
                actor=request.user, endpoint=endpoint, traffic=traffic, mirror=mirror
            )
            messages.success(request, "Traffic split saved.")
        elif action == "stop":
            dep = endpoint.deployments.filter(name=request.POST.get("deployment", "")).first()
            if dep is None:
                messages.error(request, "Choose a deployment of this endpoint to stop.")
                return redirect(detail)
            serving.deployment_stop(actor=request.user, deployment=dep)
            messages.success(request, f"Stopping {dep.name}: its compute is freed once it stops.")
        elif action == "key":
            key = serving.endpoint_key_issue(actor=request.user, endpoint=endpoint)
            endpoint.refresh_from_db()
            context = _detail_context(request, endpoint, membership)
            context["new_key"] = key
            return render(request, "deployments/serving_detail.html", context)
        else:
            return HttpResponse("Unknown action.", status=404)
    except serving.ServingRefused as exc:
        messages.error(request, str(exc))
    except ProviderError as exc:
        messages.error(request, f"The serving provider could not do it; nothing changed: {exc}")
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = detail
        return response
    return redirect(detail)


def _shares(request: AuthedRequest, prefix: str) -> dict[str, int] | None:
    shares = {}
    for name in serving.DEPLOYMENT_NAMES:
        raw = request.POST.get(f"{prefix}_{name}", "").strip()
        if not raw:
            continue
        if not raw.isdigit() or int(raw) > 100:
            return None
        shares[name] = int(raw)
    return shares
