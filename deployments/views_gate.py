"""Pages of the gate: validation reports, the deployment request form, and
the approval page that shows the evidence to people who do not read code."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.http import AuthedRequest
from charter.gates import CharterNotSignedOff
from deployments import gate
from deployments import gate_selectors as sel
from deployments.gate_forms import DeploymentRequestForm, OverrideForm, ValidationForm
from deployments.gate_models import DeploymentRequest, RequestState, Rollout
from governance.services import approval_may_decide
from projects.permissions import get_project_for_user


def _errors_into(form: Any, exc: ValidationError) -> None:
    for field, messages in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


@login_required
def validation_page(request: AuthedRequest, slug: str, name: str, version: int) -> HttpResponse:
    """A version's validations; a member who may write runs another."""
    write = request.method == "POST"
    project, membership = get_project_for_user(request.user, slug, write=write)
    found = sel.model_version(project, name, version)
    form = ValidationForm(request.POST or None)
    if write and form.is_valid():
        try:
            report = gate.validation_run(
                actor=request.user,
                version=found,
                segments=form.cleaned_data["segments"],
                risks=form.cleaned_data["risks"],
            )
        except ValidationError as exc:
            _errors_into(form, exc)
        except CharterNotSignedOff as exc:
            form.add_error(None, str(exc))
        else:
            return HttpResponseRedirect(
                reverse("deployments:report", kwargs={"slug": slug, "pk": report.pk})
            )
    return render(
        request,
        "deployments/gate_validation.html",
        {
            "project": project,
            "version": found,
            "model": found.registered_model,
            "reports": sel.reports_of(found)[:50],
            "form": form,
            "may_write": bool(membership and membership.can_write),
        },
        status=400 if write else 200,
    )


@login_required
def report_page(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    report = sel.report_get(project, pk)
    return render(
        request,
        "deployments/gate_report.html",
        {
            "project": project,
            "report": report,
            "version": report.version,
            "model": report.version.registered_model,
            "metric_label": sel.metric_words(report.metric),
            "metric_explained": sel.METRIC_EXPLAINED.get(report.metric, ""),
            "figures": sel.evidence_figures(report) if report.finished else None,
            "lineage": sel.lineage(report),
        },
    )


@login_required
def request_new(request: AuthedRequest, slug: str, name: str, version: int) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, write=True)
    found = sel.model_version(project, name, version)
    form = DeploymentRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = gate.deployment_request_create(
                actor=request.user,
                version=found,
                target=data["target"],
                rollout=data["rollout"],
                canary_percent=data["canary_percent"],
                baking_minutes=data["baking_minutes"],
                reason=data["reason"],
                user_impact=data["user_impact"],
            )
        except ValidationError as exc:
            _errors_into(form, exc)
        except CharterNotSignedOff as exc:
            form.add_error(None, str(exc))
        else:
            return HttpResponseRedirect(_request_url(created))
    return render(
        request,
        "deployments/gate_request_form.html",
        {
            "project": project,
            "version": found,
            "model": found.registered_model,
            "form": form,
            "report": gate.latest_report(found),
        },
        status=400 if request.method == "POST" else 200,
    )


def _request_url(deployment: DeploymentRequest) -> str:
    return reverse(
        "deployments:request", kwargs={"slug": deployment.project.slug, "pk": deployment.pk}
    )


@login_required
def request_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    return render(
        request,
        "deployments/gate_request_list.html",
        {"project": project, "requests": sel.requests_of(project)[:100]},
    )


@login_required
def request_page(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    """The approval page: the evidence side by side, and the decision."""
    project, _ = get_project_for_user(request.user, slug)
    deployment = sel.request_get(project, pk)
    return _request_page(request, deployment, status=200)


def _request_page(
    request: AuthedRequest,
    deployment: DeploymentRequest,
    *,
    status: int,
    override_form: OverrideForm | None = None,
) -> HttpResponse:
    step = gate.current_step(deployment)
    may_decide, why_not = (
        approval_may_decide(user=request.user, request=step) if step else (False, "")
    )
    return render(
        request,
        "deployments/gate_request.html",
        {
            "project": deployment.project,
            "deployment": deployment,
            "version": deployment.version,
            "model": deployment.version.registered_model,
            "step": step,
            "steps": gate.chain_of(deployment),
            "may_decide": may_decide,
            "why_not": why_not,
            "is_requester": deployment.requested_by_id == request.user.pk,
            "may_override": request.user.is_staff and deployment.state == RequestState.BLOCKED,
            "override_form": override_form or OverrideForm(),
            "canary": deployment.rollout == Rollout.CANARY,
            **sel.request_evidence(deployment),
        },
        status=status,
    )


@login_required
@require_POST
def request_override(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    deployment = sel.request_get(project, pk)
    if not request.user.is_staff:
        raise PermissionDenied("Only a platform admin overrides a failed validation.")
    form = OverrideForm(request.POST)
    if form.is_valid():
        try:
            gate.deployment_request_override(
                actor=request.user,
                request=deployment,
                justification=form.cleaned_data["justification"],
            )
        except ValidationError as exc:
            _errors_into(form, exc)
        else:
            return HttpResponseRedirect(_request_url(deployment))
    return _request_page(request, deployment, status=400, override_form=form)


@login_required
@require_POST
def request_withdraw(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, write=True)
    deployment = sel.request_get(project, pk)
    try:
        gate.deployment_request_withdraw(actor=request.user, request=deployment)
    except ValidationError:
        return _request_page(request, deployment, status=409)
    return HttpResponseRedirect(_request_url(deployment))
