"""Training job pages: the project's jobs, a new job from a template, a
job's page (state, live log tail by htmx polling, cancel, re-run). Each view
validates, calls one service or selector, and renders."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.http import AuthedRequest
from charter.gates import CharterNotSignedOff
from compute import selectors as compute_selectors
from compute.models import ComputeSize
from datasets.models import Split
from experiments import jobs
from experiments.job_permissions import get_job_for_user
from experiments.job_selectors import job_latest_metrics, jobs_for_project, splits_ready
from projects.models import Project
from projects.permissions import get_project_for_user

JOBS_PER_PAGE = 25
JOB_SORTS = {
    "newest": ("-created_at", "Newest first"),
    "name": ("name", "Name"),
    "state": ("state", "State"),
    "owner": ("created_by__username", "Started by"),
}


class JobForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[
            ("template", "Baseline from the charter"),
            ("repository", "Code from a git repository"),
            ("archive", "Code from an archive (zip or tar.gz)"),
        ],
        initial="template",
        required=False,
        label="Code",
        widget=forms.RadioSelect,
    )
    split: forms.ModelChoiceField[Split] = forms.ModelChoiceField(
        queryset=Split.objects.none(), empty_label=None, label="Split"
    )
    size: forms.ModelChoiceField[ComputeSize] = forms.ModelChoiceField(
        queryset=ComputeSize.objects.none(), empty_label=None, label="Compute size"
    )
    family = forms.ChoiceField(
        choices=[("gbm", "Gradient boosting"), ("linear", "Linear model")],
        label="Model family",
        help_text="Baseline only",
    )
    model = forms.ChoiceField(
        choices=[("sklearn", "scikit-learn"), ("lightgbm", "LightGBM (gradient boosting)")],
        required=False,
        label="Library",
        help_text="Baseline only",
    )
    repository_url = forms.CharField(
        max_length=500,
        required=False,
        label="Repository URL",
        help_text="https://… (repository code only)",
    )
    repository_ref = forms.CharField(
        max_length=255, required=False, initial="main", label="Branch, tag or commit"
    )
    archive = forms.FileField(
        required=False, label="Archive", help_text="zip or tar.gz (archive code only)"
    )
    command = forms.CharField(
        max_length=2000,
        required=False,
        label="Command",
        help_text="Runs in the code's folder, e.g. python train.py",
    )
    requirements = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Requirements",
        help_text="One package a line (name==version), on top of the base environment",
    )
    wall_clock_minutes = forms.IntegerField(
        min_value=1, max_value=7 * 24 * 60, initial=60, label="Stop after (minutes)"
    )
    experiment_name = forms.CharField(
        max_length=250,
        required=False,
        label="Experiment",
        help_text="Default: job-baseline, job-repository or job-archive",
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        split_field: Any = self.fields["split"]
        split_field.queryset = splits_ready(project=project)
        split_field.label_from_instance = lambda s: (
            f"{s.parent.source.name}, version {s.parent.version}, split {s.number} "
            f"({s.train_rows} train / {s.test_rows} test rows)"
        )
        size_field: Any = self.fields["size"]
        size_field.queryset = compute_selectors.sizes_offered()
        size_field.label_from_instance = lambda z: (
            f"{z.name} ({z.vcpus} vCPU{'s' if z.vcpus != 1 else ''}, {z.memory_gb} GB, {z.hourly_price} {z.currency}/h)"
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["kind"] = data.get("kind") or "template"
        data["model"] = data.get("model") or "sklearn"
        return data


def _listing(request: HttpRequest, project: Project) -> dict[str, Any]:
    sort = request.GET.get("sort", "newest")
    if sort not in JOB_SORTS:
        sort = "newest"
    query = request.GET.get("q", "")[:200].strip()
    items = jobs_for_project(project=project)
    if query:
        items = items.filter(Q(name__icontains=query) | Q(created_by__username__icontains=query))
    items = items.order_by(JOB_SORTS[sort][0], "-pk")
    page = Paginator(items, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "page": page,
        "items": list(page.object_list),
        "q": query,
        "sort": sort,
        "sorts": [(key, label) for key, (_, label) in JOB_SORTS.items()],
        "prefix": "",
    }


@login_required
def job_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    listing = _listing(request, project)
    return render(
        request,
        "experiments/jobs/job_list.html",
        {
            "project": project,
            "listing": listing,
            "jobs": listing["items"],
            "any_jobs": jobs_for_project(project=project).exists(),
            "can_write": bool(membership and membership.can_write),
        },
    )


@login_required
def job_new(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, write=request.method == "POST")
    form = JobForm(request.POST or None, request.FILES or None, project=project)
    refusal: CharterNotSignedOff | None = None
    if request.method == "POST" and form.is_valid():
        try:
            job = jobs.job_create(actor=request.user, project=project, **form.cleaned_data)
        except ValidationError as exc:
            fields = getattr(exc, "error_dict", {})
            for field, errors in fields.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error.messages)
            if not fields:
                form.add_error(None, " ".join(exc.messages))
        except CharterNotSignedOff as exc:
            refusal = exc
        else:
            if job.state == "waiting_for_compute":
                messages.info(request, f"“{job.name}” goes beyond the quota: an admin decides.")
            else:
                messages.success(request, f"“{job.name}” queued.")
            return redirect("experiments:job", slug=project.slug, job_id=job.pk)
    return render(
        request,
        "experiments/jobs/job_new.html",
        {"project": project, "form": form, "refusal": refusal},
    )


@login_required
def job_detail(request: AuthedRequest, slug: str, job_id: int) -> HttpResponse:
    job, membership = get_job_for_user(request.user, slug, job_id)
    context = {
        "project": job.project,
        "job": job,
        "metrics": job_latest_metrics(job=job),
        "poll_seconds": max(1, round(settings.JOBS_POLL_SECONDS)),
        "can_write": bool(membership and membership.can_write),
    }
    if getattr(request, "htmx", False):
        return render(request, "experiments/jobs/job_detail.html#live", context)
    return render(request, "experiments/jobs/job_detail.html", context)


@login_required
@require_POST
def job_action(request: AuthedRequest, slug: str, job_id: int, action: str) -> HttpResponse:
    job, _ = get_job_for_user(request.user, slug, job_id, write=True)
    target = job
    try:
        if action == "cancel":
            jobs.job_cancel(actor=request.user, job=job)
            messages.success(request, f"“{job.name}” is being cancelled.")
        elif action == "rerun":
            target = jobs.job_rerun(actor=request.user, job=job)
            messages.success(request, f"Started again as job #{target.pk}.")
        else:
            raise PermissionDenied("No such action.")
    except (ValidationError, jobs.JobConflict) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    except CharterNotSignedOff as exc:
        messages.error(request, str(exc))
    back = redirect("experiments:job", slug=job.project.slug, job_id=target.pk)
    if not getattr(request, "htmx", False):
        return back
    response = HttpResponse(status=204)
    response["HX-Redirect"] = back["Location"]
    return response
