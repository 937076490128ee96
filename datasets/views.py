"""Data pages. Each view checks access, calls one service or selector, and
renders; htmx requests get the page's partial."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.http import AuthedRequest
from charter.gates import CharterNotSignedOff
from charter.selectors import charter_current, charter_signed_off
from datasets import services, wording
from datasets.forms import (
    RuleForm,
    ScheduleForm,
    SourceEditForm,
    SourceForm,
    SplitForm,
    UploadForm,
)
from datasets.models import Ingestion, SourceKind, ValidationRule
from datasets.permissions import get_snapshot_for_user, get_source_for_user
from datasets.selectors import (
    SOURCE_SORTS,
    VERSION_SORTS,
    data_projects,
    next_runs,
    profile_figures,
    project_lineage,
    snapshot_splits,
    snapshots_search,
    source_ingestions,
    source_snapshots,
    sources_for_project,
    sources_search,
)
from datasets.storage import TooLarge
from projects.models import READ_ONLY_ROLES
from projects.permissions import get_project_for_user


def _can_write(membership: Any) -> bool:
    return membership is not None and membership.can_write


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


PAGE_SIZE = 20


def _listing(
    request: HttpRequest,
    search: Callable[..., QuerySet[Any]],
    *,
    sorts: dict[str, tuple[str, str]],
    default_sort: str,
    prefix: str = "",
) -> dict[str, Any]:
    """One page of a searchable, sortable list (``search(query=, sort=)``
    gives its rows) and its controls' state.

    ``prefix`` names the query parameters (``q``, ``sort``, ``page``) apart
    when one page shows two lists.
    """
    sort = request.GET.get(f"{prefix}sort", default_sort)
    if sort not in sorts:
        sort = default_sort
    query = request.GET.get(f"{prefix}q", "")[:200]
    items = search(query=query, sort=sort)
    page: Page[Any] = Paginator(items, PAGE_SIZE).get_page(request.GET.get(f"{prefix}page"))
    return {
        "page": page,
        "items": list(page.object_list),
        "q": query,
        "sort": sort,
        "sorts": [(key, label) for key, (_, label) in sorts.items()],
        "prefix": prefix,
    }


def _charter_gate(project: Any) -> dict[str, Any]:
    """Whether data registered now is exploratory, or refused until sign-off."""
    signed = charter_signed_off(project=project) is not None
    return {
        "signed_off": signed,
        "requires_signoff": settings.STAGEGATE_DATA_REQUIRES_SIGNOFF and not signed,
        "charter_url": reverse("projects:charter", kwargs={"slug": project.slug}),
    }


@login_required
def data_home(request: AuthedRequest) -> HttpResponse:
    projects = [
        (project, getattr(project, "my_role", None) not in (None, *READ_ONLY_ROLES))
        for project in data_projects(user=request.user)
    ]
    return render(request, "datasets/data_home.html", {"projects": projects})


@login_required
def source_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    listing = _listing(
        request,
        partial(sources_search, sources_for_project(project=project)),
        sorts=SOURCE_SORTS,
        default_sort="name",
    )
    runs = next_runs(listing["items"])
    for source in listing["items"]:
        source.next_run = runs.get(source.pk)
    return render(
        request,
        "datasets/source_list.html",
        {
            "project": project,
            "listing": listing,
            "sources": listing["items"],
            "any_sources": listing["page"].paginator.count > 0 or bool(listing["q"]),
            "can_write": _can_write(membership),
            "gate": _charter_gate(project),
        },
    )


def _kind(request: HttpRequest) -> str:
    kind = request.POST.get("kind") or request.GET.get("kind") or ""
    return kind if kind in SourceKind.values else ""


@login_required
def source_new(request: AuthedRequest, slug: str) -> HttpResponse:
    """Register a source. The form shows the fields of one kind (``?kind=``,
    file upload by default); its kind selector switches them in place where
    scripts run, and a link per kind reloads the page with that kind's
    fields where they do not."""
    project, _ = get_project_for_user(request.user, slug, write=True)
    gate = _charter_gate(project)
    context: dict[str, Any] = {"project": project, "gate": gate, "kinds": SourceKind.choices}
    kind = _kind(request) or SourceKind.UPLOAD
    form = SourceForm(request.POST or None, initial={"kind": kind})
    context.update({"form": form, "kind": kind})
    if request.method == "POST" and form.is_valid():
        try:
            source = services.source_create(actor=request.user, project=project, **form.split())
        except CharterNotSignedOff as exc:
            context["refusal"] = {"reason": str(exc), "charter_url": exc.charter_url}
            return render(request, "datasets/source_new.html", context, status=409)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            note = (
                " It is exploratory: the charter is not signed off yet."
                if source.exploratory
                else ""
            )
            messages.success(request, f"Source “{source.name}” registered.{note}")
            return redirect("datasets:source", slug=project.slug, source_id=source.pk)
    return render(request, "datasets/source_new.html", context)


@login_required
def source_edit(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    """Change a source's name, description, labels and connection; a secret
    left empty keeps the stored one, and none is ever rendered back."""
    project, source = get_source_for_user(request.user, slug, source_id, write=True)
    form = SourceEditForm(request.POST or None, source=source)
    if request.method == "POST" and form.is_valid():
        try:
            services.source_update(actor=request.user, source=source, **form.changes())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Source “{form.cleaned_data['name']}” saved.")
            return _back(source)
    return render(
        request,
        "datasets/source_edit.html",
        {"project": project, "source": source, "form": form},
    )


@login_required
def source_detail(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    project, source = get_source_for_user(request.user, slug, source_id)
    _, membership = get_project_for_user(request.user, slug)
    if _htmx(request) and request.GET.get("part") == "test":
        return render(
            request, "datasets/source_detail.html#test", {"project": project, "source": source}
        )
    secret_fields = services.KIND_FIELDS[source.kind][2]
    versions = _listing(
        request,
        partial(snapshots_search, source_snapshots(source=source)),
        sorts=VERSION_SORTS,
        default_sort="newest",
        prefix="v",
    )
    rules = list(source.rules.order_by("pk"))
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
            "versions": versions,
            "snapshots": versions["items"],
            "rules": [(r, wording.rule_sentence(r.kind, r.column, r.params)) for r in rules],
            "upload_form": UploadForm(),
            "schedule_form": ScheduleForm(initial={"refresh_cron": source.refresh_cron}),
            "rule_form": RuleForm(),
            "latest_columns": _latest_columns(source, versions["items"]),
        },
    )


def _latest_columns(source: Any, shown: Any) -> list[tuple[str, bool]]:
    """The latest version's columns, each with whether it is marked sensitive."""
    latest = source.snapshots.order_by("-version").values_list("columns", flat=True).first()
    marked = set(source.sensitive_columns)
    names = [str(c["name"]) for c in latest or []]
    names += sorted(marked - set(names))  # marked before a version dropped them
    return [(n, n in marked) for n in names]


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
def source_sensitive(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    """Mark the columns that must never reach a served model's request log."""
    _, source = get_source_for_user(request.user, slug, source_id, write=True)
    try:
        services.source_update(
            actor=request.user,
            source=source,
            sensitive_columns=request.POST.getlist("sensitive"),
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, "Sensitive columns saved.")
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


def _confirm(
    request: HttpRequest,
    project: Any,
    *,
    title: str,
    what: str,
    consequences: list[str],
    cancel_url: str,
) -> HttpResponse:
    """The page that asks before a delete; its form posts back to the same URL."""
    return render(
        request,
        "datasets/confirm_delete.html",
        {
            "project": project,
            "title": title,
            "what": what,
            "consequences": consequences,
            "cancel_url": cancel_url,
        },
    )


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """After a write: htmx navigates the whole page, a plain form redirects."""
    return HttpResponseClientRedirect(url) if _htmx(request) else redirect(url)


@login_required
@require_http_methods(["GET", "POST"])
def source_delete(request: AuthedRequest, slug: str, source_id: int) -> HttpResponse:
    project, source = get_source_for_user(request.user, slug, source_id, write=True)
    source_url = reverse("datasets:source", args=[project.slug, source.pk])
    if request.method == "GET":
        versions = source.snapshots.count()
        return _confirm(
            request,
            project,
            title=f"Delete the source “{source.name}”?",
            what=f"the source “{source.name}”",
            consequences=[
                f"Its {versions} version{'s' if versions != 1 else ''}, history, rules and "
                "schedule are deleted with it.",
                "This cannot be undone.",
            ],
            cancel_url=source_url,
        )
    try:
        services.source_delete(actor=request.user, source=source)
    except services.SourceInUse as exc:
        messages.error(request, str(exc))
        return _go(request, source_url)
    messages.success(request, f"Source “{source.name}” deleted.")
    return _go(request, reverse("datasets:sources", args=[project.slug]))


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
@require_http_methods(["GET", "POST"])
def rule_delete(request: AuthedRequest, slug: str, source_id: int, rule_id: int) -> HttpResponse:
    project, source = get_source_for_user(request.user, slug, source_id, write=True)
    rule: ValidationRule | None = source.rules.filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such rule.")
    rule.source = source
    sentence = wording.rule_sentence(rule.kind, rule.column, rule.params)
    source_url = reverse("datasets:source", args=[project.slug, source.pk])
    if request.method == "GET":
        return _confirm(
            request,
            project,
            title=f"Remove the rule “{sentence}”?",
            what=f"the rule “{sentence}” of {source.name}",
            consequences=[
                "New versions are no longer checked against it; "
                "versions already made keep their results."
            ],
            cancel_url=source_url,
        )
    services.rule_delete(actor=request.user, rule=rule)
    messages.success(request, f"Rule “{sentence}” removed.")
    return _go(request, source_url)


def _default_stratify(project: Any, columns: list[str]) -> str:
    charter = charter_signed_off(project=project) or charter_current(project=project)
    if charter and charter.question_type == "classification" and charter.target_variable in columns:
        return charter.target_variable
    return ""


def _validation_rows(snapshot: Any) -> list[dict[str, Any]]:
    """Each stored result with its rule as a sentence (the rule's bounds come
    from the rule when it still exists) and what failed, on how many rows."""
    results = snapshot.validation_results or []
    rules = {
        r.pk: r
        for r in ValidationRule.objects.filter(
            source_id=snapshot.source_id, pk__in=[r.get("rule_id") for r in results]
        )
    }
    rows = []
    for result in results:
        rule = rules.get(result.get("rule_id"))
        params = rule.params if rule is not None else {}
        rows.append(
            {
                "rule": wording.rule_sentence(
                    result.get("kind", ""), result.get("column", ""), params
                ),
                "passed": bool(result.get("passed")),
                "outcome": wording.result_sentence(result, snapshot.rows),
                "failing": result.get("failing", 0),
            }
        )
    return rows


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
            "validation": _validation_rows(snapshot),
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
@require_http_methods(["GET", "POST"])
def snapshot_delete(
    request: AuthedRequest, slug: str, source_id: int, version: int
) -> HttpResponse:
    project, snapshot = get_snapshot_for_user(request.user, slug, source_id, version, write=True)
    snapshot_url = reverse("datasets:snapshot", args=[project.slug, source_id, version])
    if request.method == "GET":
        return _confirm(
            request,
            project,
            title=f"Delete version {version} of “{snapshot.source.name}”?",
            what=f"version {version} of {snapshot.source.name} ({snapshot.rows:,} rows)",
            consequences=["Its data and profile are deleted.", "This cannot be undone."],
            cancel_url=snapshot_url,
        )
    try:
        services.snapshot_delete(actor=request.user, snapshot=snapshot)
    except services.SourceInUse as exc:
        messages.error(request, str(exc))
        return _go(request, snapshot_url)
    messages.success(request, f"Version {version} deleted.")
    return _go(request, reverse("datasets:source", args=[project.slug, source_id]))


@login_required
def lineage(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    return render(
        request,
        "datasets/lineage.html",
        {"project": project, "sources": project_lineage(project=project)},
    )
