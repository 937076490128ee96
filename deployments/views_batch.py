"""Pages of batch scoring: the project's scorings, the form that starts one,
and one scoring's page (state polled while it runs, rows written, the
output table, the error)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render

from accounts.http import AuthedRequest
from charter.gates import CharterNotSignedOff
from deployments import batch
from deployments import batch_selectors as sel
from deployments.batch_forms import BatchScoringForm
from experiments.jobs import JobConflict
from projects.permissions import get_project_for_user


@login_required
def batch_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    return render(
        request,
        "deployments/batch_list.html",
        {
            "project": project,
            "scorings": list(sel.scorings_of(project)),
            "can_write": membership is not None and membership.can_write,
        },
    )


@login_required
def batch_new(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, write=True)
    form = BatchScoringForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            scoring = batch.batch_scoring_create(
                actor=request.user,
                version=data["version"],
                output_table=data["output_table"],
                snapshot=data["snapshot"],
                schedule=data["schedule"],
                reporting_source=data["reporting_source"],
            )
        except ValidationError as exc:
            if not hasattr(exc, "error_dict"):
                form.add_error(None, exc.messages)
            for field, errors in getattr(exc, "error_dict", {}).items():
                form.add_error(field if field in form.fields else None, errors)
        except CharterNotSignedOff as exc:
            form.add_error(None, f"The charter must be signed off before {exc.purpose}.")
        else:
            messages.success(request, "The batch scoring is queued.")
            return redirect("deployments:batch", slug=project.slug, scoring_id=scoring.pk)
    return render(request, "deployments/batch_new.html", {"project": project, "form": form})


@login_required
def batch_detail(request: AuthedRequest, slug: str, scoring_id: int) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    context = {
        "project": project,
        "scoring": sel.scoring_get(project, scoring_id),
        "can_write": membership is not None and membership.can_write,
        "poll_seconds": max(1, int(getattr(settings, "JOBS_POLL_SECONDS", 2))),
    }
    if request.htmx:
        return render(request, "deployments/batch_detail.html#live", context)
    return render(request, "deployments/batch_detail.html", context)


@login_required
def batch_action(request: AuthedRequest, slug: str, scoring_id: int, action: str) -> HttpResponse:
    """rerun, cancel: POST only, for members who may write."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    project, _ = get_project_for_user(request.user, slug, write=True)
    scoring = sel.scoring_get(project, scoring_id)
    try:
        if action == "rerun":
            batch.batch_scoring_rerun(actor=request.user, scoring=scoring)
            messages.success(request, "The scoring runs again; its rows will be replaced.")
        elif action == "cancel":
            batch.batch_scoring_cancel(actor=request.user, scoring=scoring)
            messages.success(request, "The scoring is cancelled.")
        else:
            messages.error(request, f"No action “{action}”.")
    except (batch.BatchConflict, JobConflict) as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except CharterNotSignedOff as exc:
        messages.error(request, f"The charter must be signed off before {exc.purpose}.")
    return redirect("deployments:batch", slug=project.slug, scoring_id=scoring.pk)
