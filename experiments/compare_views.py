"""The comparison page of a project's runs, its CSV and its charts' data.

Each view checks access (404 for non-members), parses the selection and
calls the comparison selector; a selection it cannot compare is a message
with a 400, never a 500.
"""

from __future__ import annotations

import csv
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from accounts.http import AuthedRequest
from experiments import comparison as cmp
from experiments.comparison import Comparison, SelectionError
from projects.permissions import get_project_for_user


def _load(request: AuthedRequest, project: Any) -> Comparison:
    selection = cmp.selection_parse(request.GET)
    return cmp.comparison_load(
        project=project, selection=selection, baseline=(request.GET.get("baseline") or "").strip()
    )


def _choice(request: AuthedRequest, name: str, allowed: list[str], default: str = "") -> str:
    value = request.GET.get(name, "")
    return value if value in allowed else default


@login_required
def compare(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    context: dict[str, Any] = {"project": project, "query": request.GET.urlencode()}
    try:
        found = _load(request, project)
    except SelectionError as exc:
        context["error"] = str(exc)
        context["experiments"] = cmp.project_experiments(project)
        context["filter_text"] = request.GET.get("filter", "")[:5000]
        context["experiment_id"] = request.GET.get("experiment", "")
        return render(request, "experiments/compare.html", context, status=400)
    context.update(cmp.page_context(found, request.GET))
    return render(request, "experiments/compare.html", context)


@login_required
def compare_chart(request: AuthedRequest, slug: str) -> HttpResponse:
    """One metric's chart (plotly figure as JSON), downsampled on the server."""
    project, _ = get_project_for_user(request.user, slug)
    try:
        found = _load(request, project)
        points = cmp.check_points(request.GET.get("points"))
        smoothing = cmp.check_smoothing(request.GET.get("smoothing"))
    except SelectionError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    metric = request.GET.get("metric", "")
    if metric not in found.key_ids:
        return JsonResponse({"error": f"No run here has a metric “{metric[:250]}”."}, status=400)
    group = _choice(request, "group", found.param_keys)
    figure = cmp.metric_figure(
        found, metric=metric, points=points, smoothing=smoothing, group=group
    )
    return JsonResponse(figure)


@login_required
def compare_csv(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    try:
        found = _load(request, project)
    except SelectionError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-runs.csv"'
    writer = csv.writer(response)
    header = ["run", "name", "experiment", "status"]
    header += [f"params.{k}" for k in found.param_keys]
    for key in found.metric_keys:
        header += [f"metrics.{key}.last", f"metrics.{key}.min", f"metrics.{key}.max"]
    writer.writerow(header)
    for run in found.runs:
        row = [run.uuid, run.name, run.experiment, run.status]
        row += [run.params.get(k, "") for k in found.param_keys]
        for key in found.metric_keys:
            last, low, high = run.metrics.get(key, (None, None, None))
            row += [cmp.number_text(last), cmp.number_text(low), cmp.number_text(high)]
        writer.writerow([cmp.csv_safe(cell) for cell in row])
    return response
