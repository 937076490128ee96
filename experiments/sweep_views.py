"""Sweep and AutoML pages: the project's sweeps and AutoML runs, a new sweep,
a new AutoML run, a sweep's page (live progress by htmx polling, the best
trial so far, the trials, a link to the comparison page with them selected)
and an AutoML run's page (live, with its leaderboard). Each view validates,
calls one service or selector, and renders; cancel is the job's."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render

from accounts.http import AuthedRequest
from charter.gates import CharterNotSignedOff
from experiments import sweeps
from experiments.job_views import JobForm
from experiments.sweep_models import SweepKind
from experiments.sweep_selectors import (
    comparison_query,
    get_sweep_for_user,
    leaderboard,
    sweep_progress,
    sweeps_for_project,
)
from projects.permissions import get_project_for_user

PER_PAGE = 25
EXAMPLE_SPACE = {
    "learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
    "max_leaf_nodes": {"type": "int", "low": 8, "high": 64},
    "l2_regularization": {"type": "uniform", "low": 0.0, "high": 1.0},
}


class _SearchForm(JobForm):
    """A job form for a sweep or an AutoML run: the built-in model and the
    split, without the fields of a job that runs the user's own code."""

    CODE_FIELDS: tuple[str, ...] = (
        "kind",
        "model",
        "repository_url",
        "repository_ref",
        "archive",
        "command",
        "requirements",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.CODE_FIELDS:
            del self.fields[field]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for field in self.CODE_FIELDS:
            data.pop(field, None)
        return data


class SweepForm(_SearchForm):
    """A sweep of the baseline or of the user's own code (a repository or an
    archive, and the command that runs one trial)."""

    CODE_FIELDS = ("model",)
    space = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 70, "spellcheck": "false"}),
        initial=json.dumps(EXAMPLE_SPACE, indent=2),
        label="Search space",
        help_text=(
            'A JSON object: parameter name to {"type": "choice", "values": [...]} or '
            '{"type": "uniform" | "loguniform" | "int", "low": a, "high": b}. '
            "Baseline, gradient boosting: learning_rate, max_iter, max_depth, max_leaf_nodes, "
            "min_samples_leaf, l2_regularization; linear: C (classification), alpha "
            "(regression). Your code: any names it takes as --name=value; choices may be words."
        ),
    )
    sampler = forms.ChoiceField(choices=list(sweeps.SAMPLERS.items()), initial="tpe")
    max_trials = forms.IntegerField(min_value=1, max_value=sweeps.MAX_TRIALS, initial=20)
    parallel = forms.IntegerField(min_value=1, initial=1, label="Trials at a time")
    early_termination = forms.ChoiceField(
        choices=list(sweeps.POLICIES.items()), initial="median", label="Early termination"
    )
    time_budget_minutes = forms.IntegerField(min_value=1, initial=30, label="Time budget (minutes)")
    metric = forms.CharField(
        max_length=250,
        required=False,
        label="Objective",
        help_text="Default: the charter's metric. Your code: the metric it logs to MLFLOW_RUN_ID",
    )
    direction = forms.ChoiceField(
        choices=[
            ("", "The charter's direction"),
            ("maximize", "Maximize"),
            ("minimize", "Minimize"),
        ],
        required=False,
    )
    seed = forms.IntegerField(min_value=0, initial=0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["experiment_name"].help_text = "Default: sweeps"
        self.fields["kind"].label = "Sweep over"
        self.fields["command"].help_text = (
            "Runs one trial in the code's folder, e.g. python train.py; the trial's "
            "parameters follow as --name=value"
        )

    def clean_space(self) -> Any:
        try:
            return json.loads(self.cleaned_data["space"])
        except ValueError as exc:
            raise forms.ValidationError(f"The search space is not JSON: {exc}.") from exc


class AutoMLForm(_SearchForm):
    families = forms.MultipleChoiceField(
        choices=[(k, label) for k, (label, _) in sweeps.AUTOML_FAMILIES.items()],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Model families",
        help_text="None chosen: every family that answers the charter's question.",
    )
    time_budget_seconds = forms.IntegerField(
        min_value=30, initial=300, label="Time budget (seconds)"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["family"]
        self.fields["experiment_name"].help_text = "Default: automl"


def _errors_onto(form: forms.Form, exc: ValidationError) -> None:
    if not hasattr(exc, "error_dict"):
        form.add_error(None, " ".join(exc.messages))
        return
    for field, problems in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, problems)


SORTS = {
    "newest": ("-created_at", "Newest first"),
    "name": ("job__name", "Name"),
    "kind": ("kind", "Kind"),
    "state": ("job__state", "State"),
}


@login_required
def sweep_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    sort = request.GET.get("sort", "newest")
    if sort not in SORTS:
        sort = "newest"
    query = request.GET.get("q", "")[:200].strip()
    rows = sweeps_for_project(project=project)
    if query:
        rows = rows.filter(
            Q(job__name__icontains=query) | Q(job__created_by__username__icontains=query)
        )
    page = Paginator(rows.order_by(SORTS[sort][0], "-pk"), PER_PAGE).get_page(
        request.GET.get("page")
    )
    listing = {
        "page": page,
        "q": query,
        "sort": sort,
        "sorts": [(key, label) for key, (_, label) in SORTS.items()],
        "prefix": "",
    }
    return render(
        request,
        "experiments/sweep_list.html",
        {
            "project": project,
            "listing": listing,
            "items": list(page.object_list),
            "any_rows": sweeps_for_project(project=project).exists(),
            "can_write": bool(membership and membership.can_write),
        },
    )


def _new(request: AuthedRequest, slug: str, kind: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, write=request.method == "POST")
    form_class = SweepForm if kind == SweepKind.SWEEP else AutoMLForm
    form = form_class(request.POST or None, request.FILES or None, project=project)
    refusal: CharterNotSignedOff | None = None
    if request.method == "POST" and form.is_valid():
        try:
            if kind == SweepKind.SWEEP:
                made = sweeps.sweep_create(actor=request.user, project=project, **form.cleaned_data)
            else:
                made = sweeps.automl_create(
                    actor=request.user, project=project, **form.cleaned_data
                )
        except ValidationError as exc:
            _errors_onto(form, exc)
        except CharterNotSignedOff as exc:
            refusal = exc
        else:
            if made.job.state == "waiting_for_compute":
                messages.info(
                    request, f"“{made.job.name}” goes beyond the quota: an admin decides."
                )
            else:
                messages.success(request, f"“{made.job.name}” queued.")
            return redirect(f"experiments:{kind}", slug=project.slug, sweep_id=made.pk)
    return render(
        request,
        f"experiments/{kind}_new.html",
        {"project": project, "form": form, "refusal": refusal},
    )


@login_required
def sweep_new(request: AuthedRequest, slug: str) -> HttpResponse:
    return _new(request, slug, SweepKind.SWEEP)


@login_required
def automl_new(request: AuthedRequest, slug: str) -> HttpResponse:
    return _new(request, slug, SweepKind.AUTOML)


def _detail(request: AuthedRequest, slug: str, sweep_id: int, kind: str) -> HttpResponse:
    sweep, membership = get_sweep_for_user(request.user, slug, sweep_id, kind=kind)
    progress = sweep_progress(sweep=sweep)
    words = {
        "sampler": sweeps.SAMPLERS.get(str(sweep.config.get("sampler")), ""),
        "early_termination": sweeps.POLICIES.get(
            str((sweep.config.get("early_termination") or {}).get("policy")), ""
        ),
        "families": [
            sweeps.AUTOML_FAMILIES[f][0]
            for f in sweep.config.get("families", [])
            if f in sweeps.AUTOML_FAMILIES
        ],
    }
    rows = [
        {
            "trial": t,
            "family": sweeps.AUTOML_FAMILIES.get(t.params.get("family", ""), ("",))[0]
            or t.params.get("family", ""),
            "validation": t.metrics.get(f"validation_{progress.metric}"),
            "params": {k: v for k, v in t.params.items() if k != "family"},
        }
        for t in (leaderboard(progress) if kind == SweepKind.AUTOML else [])
    ]
    context = {
        "words": words,
        "leaderboard": rows,
        "project": sweep.project,
        "sweep": sweep,
        "job": sweep.job,
        "progress": progress,
        "trials": leaderboard(progress) if kind == SweepKind.AUTOML else progress.trials,
        "compare_runs": comparison_query(progress)["runs"],
        "can_write": bool(membership and membership.can_write),
    }
    template = f"experiments/{kind}_detail.html"
    if getattr(request, "htmx", False):
        return render(request, f"{template}#live", context)
    return render(request, template, context)


@login_required
def sweep_detail(request: AuthedRequest, slug: str, sweep_id: int) -> HttpResponse:
    return _detail(request, slug, sweep_id, SweepKind.SWEEP)


@login_required
def automl_detail(request: AuthedRequest, slug: str, sweep_id: int) -> HttpResponse:
    return _detail(request, slug, sweep_id, SweepKind.AUTOML)
