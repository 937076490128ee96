"""The drift page of an endpoint: the share of drifting features and each
feature's PSI over time, the chosen feature's distributions side by side,
the predictions' drift, and "Retrain" from the champion's recipe."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.http import AuthedRequest
from deployments import monitoring
from deployments import monitoring_selectors as sel
from deployments.drift_models import DriftReport
from deployments.serving_selectors import get_endpoint_for_user


def _chosen_feature(requested: str, names: list[str], latest: Any) -> str:
    if requested in names:
        return requested
    if latest is not None:
        # The most drifting feature of the latest check.
        judged = [f for f in latest.features if f.get("psi") is not None]
        if judged:
            return str(max(judged, key=lambda f: f["psi"])["name"])
    return names[0] if names else ""


@login_required
def endpoint_drift(request: AuthedRequest, slug: str, name: str) -> HttpResponse:
    endpoint, membership = get_endpoint_for_user(request.user, slug, name)
    deployment = sel.default_deployment(endpoint, request.GET.get("deployment", ""))
    reports = sel.reports_of(deployment) if deployment is not None else []
    latest = reports[-1] if reports else None
    names = sel.feature_names(reports)
    chosen = _chosen_feature(request.GET.get("feature", ""), names, latest)
    feature = sel.feature_of(latest, chosen)
    can_retrain = membership is not None and membership.role in monitoring.RETRAIN_ROLES
    scores = sel.labelled_scores(endpoint)
    context: dict[str, Any] = {
        "project": endpoint.project,
        "endpoint": endpoint,
        "deployment": deployment,
        "deployments": list(endpoint.deployments.all()),
        "reports": reports,
        "latest": latest,
        "status": sel.report_status(latest),
        "features": names,
        "chosen": chosen,
        "feature": feature,
        "thresholds": {"warn": 0.1, "alert": 0.2},
        "figures": {
            "share": sel.share_figure(reports),
            "psi": sel.psi_figure(reports, chosen),
            "prediction": sel.prediction_figure(reports),
            "distribution": sel.distribution_figure(
                feature, f"{chosen}: training data and logged requests"
            ),
            "prediction_distribution": sel.distribution_figure(
                latest.prediction if latest else None, "Predictions: training labels and logged"
            ),
        },
        "can_retrain": can_retrain,
        "plan": monitoring.retrain_plan(endpoint) if can_retrain else None,
        "scores": scores,
        "labelled_figure": sel.labelled_figure(scores),
        "labelled": monitoring.labelled_split(deployment)
        if can_retrain and deployment is not None
        else None,
    }
    if request.htmx and request.htmx.target == "drift-feature":
        return render(request, "deployments/monitoring_drift.html#feature", context)
    return render(request, "deployments/monitoring_drift.html", context)


@login_required
def endpoint_retrain(request: AuthedRequest, slug: str, name: str) -> HttpResponse:
    """POST: start a training job from the champion's recipe (lead, ML
    engineers and data scientists)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    endpoint, _ = get_endpoint_for_user(request.user, slug, name, write=True)
    page = reverse("deployments:endpoint_drift", args=[slug, name])
    raw = str(request.POST.get("report", ""))
    report = (
        DriftReport.objects.filter(deployment__endpoint=endpoint, pk=int(raw)).first()
        if raw.isdigit() and len(raw) < 12
        else None
    )
    try:
        job = monitoring.endpoint_retrain(actor=request.user, endpoint=endpoint, report=report)
    except (monitoring.RetrainRefused, ValidationError) as exc:
        text = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        messages.error(request, " ".join(text))
        return redirect(page)
    messages.success(
        request,
        f"Retraining started: job #{job.pk} on {job.split}. Once it has finished, register "
        "its model and request its deployment through the gate.",
    )
    return redirect(reverse("experiments:job", args=[slug, job.pk]))


@login_required
def endpoint_score(request: AuthedRequest, slug: str, name: str) -> HttpResponse:
    """POST: score a deployment's version on the newest labelled data of its
    source (a validation job), then show its report."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    endpoint, _ = get_endpoint_for_user(request.user, slug, name, write=True)
    page = reverse("deployments:endpoint_drift", args=[slug, name])
    deployment = endpoint.deployments.filter(name=request.POST.get("deployment", "")).first()
    if deployment is None:
        messages.error(request, "Choose a deployment of this endpoint.")
        return redirect(page)
    try:
        report = monitoring.deployment_score_labelled(actor=request.user, deployment=deployment)
    except (monitoring.RetrainRefused, ValidationError) as exc:
        text = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        messages.error(request, " ".join(text))
        return redirect(page)
    return redirect(reverse("deployments:report", args=[slug, report.pk]))
