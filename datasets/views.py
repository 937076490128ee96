"""Data pages. Each view checks access, calls one service or selector, and
renders; htmx requests get the page's partial."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.http import AuthedRequest
from charter.selectors import charter_current, charter_signed_off
from datasets import services
from datasets.forms import RuleForm, ScheduleForm, SourceForm, SplitForm, UploadForm
from datasets.models import Ingestion
from datasets.permissions import get_snapshot_for_user, get_source_for_user
from datasets.selectors import (
    next_runs,
    profile_figures,
    project_lineage,
    snapshot_splits,
    source_ingestions,
    source_snapshots,
    sources_for_project,
    sources_for_user,
)
from datasets.storage import TooLarge
from projects.permissions import get_project_for_user


def _can_write(membership: Any) -> bool:
    return membership is not None and membership.can_write


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
def data_home(request: AuthedRequest) -> HttpResponse:
    sources = list(sources_for_user(user=request.user))
    return render(request, "datasets/data_home.html", {"sources": sources})


@login_required
def source_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    sources = list(sources_for_project(project=project))
    runs = next_runs(sources)
    for source in sources:
        source.next_run = runs.get(source.pk)  # type: ignore[attr-defined]
    return render(
        request,
        "datasets/source_list.html",
        {"project": project, "sources": sources, "can_write": _can_write(membership)},
    )


@login_required
def source_new(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, write=True)
    form = SourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            source = services.source_create(actor=request.user, project=project, **form.split())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Source “{source.name}” registered.")
            return redirect("datasets:source", slug=project.slug, source_id=source.pk)
    return render(request, "datasets/source_new.html", {"project": project, "form": form})


@login_required
def source_detail(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    project, source = get_source_for_user(request.user, slug, source_id)
    _, membership = get_project_for_user(request.user, slug)
    if _htmx(request) and request.GET.get("part") == "test":
        return render(
            request, "datasets/source_detail.html#test", {"project": project, "source": source}
        )
    secret_fields = services.KIND_FIELDS[source.kind][2]
    return render(
        request,
        "datasets/source_detail.html",
        {
            "project": project,
            "source": source,
            "can_write": _can_write(membership),
            "secrets": [(n, n in source.secret_names) for n in secret_fields],
            "next_run": next_runs([source]).get(source.pk),
            "ingestions": source_ingestions(source=source),
            "snapshots": source_snapshots(source=source),
            "rules": list(source.rules.order_by("pk")),
            "upload_form": UploadForm(),
            "schedule_form": ScheduleForm(initial={"refresh_cron": source.refresh_cron}),
            "rule_form": RuleForm(),
        },
    )


@login_required
def ingestion_progress(
    request: AuthedRequest, slug: str, source_id: int, ingestion_id: int
) -> HttpResponse:
    project, source = get_source_for_user(request.user, slug, source_id)
    ingestion = (
        Ingestion.objects.filter(source=source, pk=ingestion_id).select_related("snapshot").first()
    )
    if ingestion is None:
        raise Http404("No such ingestion.")
    template = "datasets/ingestion.html#progress" if _htmx(request) else "datasets/ingestion.html"
    return render(request, template, {"project": project, "source": source, "ingestion": ingestion})


def _back(source: Any) -> HttpResponse:
    return redirect("datasets:source", slug=source.project.slug, source_id=source.pk)


@login_required
@require_POST
def source_upload(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    _, source = get_source_for_user(request.user, slug, source_id, write=True)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a file to upload.")
        return _back(source)
    try:
        ingestion = services.snapshot_upload(
            actor=request.user,
            source=source,
            upload=form.cleaned_data["file"],
        )
    except (ValidationError, TooLarge) as exc:
        messages.error(request, _errors(exc) if isinstance(exc, ValidationError) else str(exc))
        return _back(source)
    if ingestion.is_done:
        messages.info(request, f"Unchanged: identical to version {ingestion.snapshot.version}.")  # type: ignore[union-attr]
    return redirect(
        reverse("datasets:ingestion", args=[source.project.slug, source.pk, ingestion.pk])
    )


@login_required
@require_POST
def source_pull(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    _, source = get_source_for_user(request.user, slug, source_id, write=True)
    try:
        ingestion = services.source_pull_request(actor=request.user, source=source)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return _back(source)
    return redirect(
        reverse("datasets:ingestion", args=[source.project.slug, source.pk, ingestion.pk])
    )


@login_required
@require_POST
def source_test(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    project, source = get_source_for_user(request.user, slug, source_id, write=True)
    try:
        source = services.source_test_request(actor=request.user, source=source)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    if _htmx(request):
        return render(
            request, "datasets/source_detail.html#test", {"project": project, "source": source}
        )
    return _back(source)


@login_required
@require_POST
def source_schedule(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    _, source = get_source_for_user(request.user, slug, source_id, write=True)
    form = ScheduleForm(request.POST)
    if form.is_valid():
        try:
            services.source_update(
                actor=request.user,
                source=source,
                refresh_cron=form.cleaned_data["refresh_cron"],
            )
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        else:
            messages.success(request, "Schedule saved.")
    return _back(source)


@login_required
@require_POST
def source_delete(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    project, source = get_source_for_user(request.user, slug, source_id, write=True)
    try:
        services.source_delete(actor=request.user, source=source)
    except services.SourceInUse as exc:
        messages.error(request, str(exc))
        return _back(source)
    messages.success(request, f"Source “{source.name}” deleted.")
    return redirect("datasets:sources", slug=project.slug)


@login_required
@require_POST
def rule_add(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    _, source = get_source_for_user(request.user, slug, source_id, write=True)
    form = RuleForm(request.POST)
    if form.is_valid():
        try:
            services.rule_create(
                actor=request.user,
                source=source,
                kind=form.cleaned_data["kind"],
                column=form.cleaned_data["column"],
                params=form.params(),
            )
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        else:
            messages.success(
                request,
                "Rule added; it applies to new versions. "
                "Use “Check against the rules” on a version to apply it there.",
            )
    return _back(source)


@login_required
@require_POST
def rule_delete(request: AuthedRequest, slug: str, source_id: int, rule_id: int) -> HttpResponse:
    _, source = get_source_for_user(request.user, slug, source_id, write=True)
    rule = source.rules.filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such rule.")
    rule.source = source
    services.rule_delete(actor=request.user, rule=rule)
    return _back(source)


def _default_stratify(project: Any, columns: list[str]) -> str:
    charter = charter_signed_off(project=project) or charter_current(project=project)
    if charter and charter.question_type == "classification" and charter.target_variable in columns:
        return charter.target_variable
    return ""


@login_required
def snapshot_detail(
    request: AuthedRequest, slug: str, source_id: int, version: int
) -> HttpResponse:
    project, snapshot = get_snapshot_for_user(request.user, slug, source_id, version)
    _, membership = get_project_for_user(request.user, slug)
    profile = getattr(snapshot, "profile", None)
    context = {
        "project": project,
        "source": snapshot.source,
        "snapshot": snapshot,
        "profile": profile,
        "figures": profile_figures(profile.data) if profile and profile.data else [],
    }
    if _htmx(request):
        return render(request, "datasets/snapshot_detail.html#profile", context)
    columns = [c["name"] for c in snapshot.columns]
    context.update(
        {
            "can_write": _can_write(membership),
            "splits": snapshot_splits(snapshot=snapshot),
            "split_form": SplitForm(
                columns=columns, default_stratify=_default_stratify(project, columns)
            ),
        }
    )
    return render(request, "datasets/snapshot_detail.html", context)


@login_required
@require_POST
def split_new(request: AuthedRequest, slug: str, source_id: int, version: int) -> HttpResponse:
    project, snapshot = get_snapshot_for_user(request.user, slug, source_id, version, write=True)
    columns = [c["name"] for c in snapshot.columns]
    form = SplitForm(request.POST, columns=columns, default_stratify="")
    if form.is_valid():
        try:
            split = services.split_create(
                actor=request.user,
                snapshot=snapshot,
                test_fraction=form.cleaned_data["test_fraction"],
                seed=form.cleaned_data["seed"],
                stratify_column=form.cleaned_data["stratify_column"],
                group_column=form.cleaned_data["group_column"],
            )
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        else:
            messages.success(request, f"Split {split.number} queued.")
    else:
        problems = "; ".join(
            f"{form[name].label if name in form.fields else name}: "
            f"{' '.join(str(e) for e in errors)}"
            for name, errors in form.errors.items()
        )
        messages.error(request, f"Check the split's settings. {problems}")
    return redirect("datasets:snapshot", slug=project.slug, source_id=source_id, version=version)


@login_required
@require_POST
def snapshot_validate(
    request: AuthedRequest, slug: str, source_id: int, version: int
) -> HttpResponse:
    project, snapshot = get_snapshot_for_user(request.user, slug, source_id, version, write=True)
    services.snapshot_validate_request(actor=request.user, snapshot=snapshot)
    messages.success(
        request, f"Checking version {version} against the current rules; reload for the result."
    )
    return redirect("datasets:snapshot", slug=project.slug, source_id=source_id, version=version)


@login_required
@require_POST
def snapshot_delete(
    request: AuthedRequest, slug: str, source_id: int, version: int
) -> HttpResponse:
    project, snapshot = get_snapshot_for_user(request.user, slug, source_id, version, write=True)
    try:
        services.snapshot_delete(actor=request.user, snapshot=snapshot)
    except services.SourceInUse as exc:
        messages.error(request, str(exc))
        return redirect(
            "datasets:snapshot", slug=project.slug, source_id=source_id, version=version
        )
    messages.success(request, f"Version {version} deleted.")
    return redirect("datasets:source", slug=project.slug, source_id=source_id)


@login_required
def lineage(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    return render(
        request,
        "datasets/lineage.html",
        {"project": project, "sources": project_lineage(project=project)},
    )
