"""The experiments and registry pages of a project. Each view checks access
(outsiders get 404), reads through ``experiments/page_selectors.py`` and
renders; all are read-only."""

from __future__ import annotations

import contextlib
import posixpath
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.http import AuthedRequest
from datasets.permissions import get_snapshot_for_user
from experiments import page_selectors as sel
from experiments.artifacts import ArtifactStore, clean_path
from experiments.errors import MlflowError
from experiments.models import Run
from experiments.search import NUMERIC_ATTRIBUTES, STRING_ATTRIBUTES, apply_order, filter_to_q
from projects.models import Project
from projects.permissions import get_project_for_user

RUNS_PER_PAGE = 25
MAX_TEXT_PREVIEW = 256 * 1024
DEFAULT_METRIC_COLUMNS = 4
DEFAULT_PARAM_COLUMNS = 3
ATTRIBUTE_SORTS = {
    "attributes.run_name": "Name",
    "attributes.status": "Status",
    "attributes.start_time": "Started",
    "attributes.user_id": "User",
}
STATUS_WORDS = {
    "RUNNING": "Running",
    "SCHEDULED": "Scheduled",
    "FINISHED": "Finished",
    "FAILED": "Failed",
    "KILLED": "Killed",
}


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _when(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms is not None else None


def _duration(run: Run) -> str:
    if run.start_time is None or run.end_time is None:
        return ""
    seconds = max(0, (run.end_time - run.start_time) // 1000)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def compare_url(slug: str) -> str:
    """The comparison page of the project."""
    return reverse("experiments:compare", kwargs={"slug": slug})


def tracking_uri(request: HttpRequest, project: Project) -> str:
    return request.build_absolute_uri(f"/mlflow/{project.slug}")


@login_required
def experiments_home(request: AuthedRequest) -> HttpResponse:
    return render(
        request,
        "experiments/experiments_home.html",
        {"rows": sel.experiment_projects(user=request.user)},
    )


@login_required
def experiment_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    experiments = list(sel.experiments_for_project(project=project))
    for e in experiments:
        e.last_activity_at = _when(e.last_activity)  # type: ignore[attr-defined]
    return render(
        request,
        "experiments/experiment_list.html",
        {
            "project": project,
            "experiments": experiments,
            "tracking_uri": tracking_uri(request, project),
            "can_write": membership is not None and membership.can_write,
            "model_count": sel.registered_models(project=project).count(),
        },
    )


def _columns(request: HttpRequest, keys: dict[str, list[str]]) -> list[str]:
    """The chosen columns (``col=params.lr&col=metrics.auc``), keeping only keys
    present; by default the first few metrics and params."""
    present = {f"params.{k}" for k in keys["params"]} | {f"metrics.{k}" for k in keys["metrics"]}
    chosen = [c for c in request.GET.getlist("col") if c in present]
    if chosen or request.GET.get("cols") == "set":
        return list(dict.fromkeys(chosen))
    return [f"metrics.{k}" for k in keys["metrics"][:DEFAULT_METRIC_COLUMNS]] + [
        f"params.{k}" for k in keys["params"][:DEFAULT_PARAM_COLUMNS]
    ]


def _quote_key(column: str) -> str:
    entity, _, name = column.partition(".")
    if name.replace("_", "").replace("-", "").isalnum():
        return column
    return f"{entity}.`{name}`"


def _order_of(request: HttpRequest, columns: list[str]) -> tuple[str, str, str]:
    """The sort key (a column, or an attribute) and direction from the query string."""
    key = request.GET.get("sort", "")
    direction = "ASC" if request.GET.get("dir", "").upper() == "ASC" else "DESC"
    return key, direction, f"{_quote_key(key)} {direction}" if key else ""


def number(value: float | None) -> str | None:
    """A metric value in words people read: six significant digits."""
    return None if value is None else f"{value:.6g}"


def _cell(run: Run, column: str) -> str | None:
    entity, _, key = column.partition(".")
    if entity == "metrics":
        return number(run.metric_map.get(key))  # type: ignore[attr-defined]
    return run.param_map.get(key)  # type: ignore[attr-defined,no-any-return]


@login_required
def experiment_runs(request: AuthedRequest, slug: str, experiment_id: int) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    experiment = sel.experiment_for_project(project=project, experiment_id=experiment_id)
    if experiment is None:
        raise Http404("No such experiment.")
    keys = sel.experiment_keys(experiment=experiment)
    columns = _columns(request, keys)
    filter_text = request.GET.get("filter", "")[:5000]
    sort_key, direction, order = _order_of(request, columns)
    error = ""
    runs = sel.experiment_runs(experiment=experiment)
    try:
        runs = runs.filter(filter_to_q(filter_text))
    except MlflowError as exc:
        error = f"This filter cannot be used: {exc.message}"
        runs = runs.none()
    try:
        runs = apply_order(runs, [order] if order else [])
    except MlflowError as exc:
        error = error or f"This sort cannot be used: {exc.message}"
        sort_key, order = "", ""
        runs = apply_order(runs, [])
    page: Page[Run] = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    rows = sel.runs_with_values(list(page.object_list))
    keep: list[tuple[str, str]] = [("filter", filter_text)] if filter_text else []
    keep += [("cols", "set")] + [("col", c) for c in columns]
    sort_state = [("sort", sort_key), ("dir", direction)] if sort_key else []
    headers = []
    for key, label in [*ATTRIBUTE_SORTS.items(), *[(c, c.partition(".")[2]) for c in columns]]:
        next_dir = "ASC" if key == sort_key and direction == "DESC" else "DESC"
        headers.append(
            {
                "key": key,
                "label": label,
                "kind": key.partition(".")[0],
                "sorted": direction.lower() if key == sort_key else "",
                "url": "?" + urlencode([*keep, ("sort", key), ("dir", next_dir)]),
            }
        )
    table = [
        {
            "run": run,
            "status": STATUS_WORDS.get(run.status, run.status),
            "started": _when(run.start_time),
            "values": [_cell(run, c) for c in columns],
        }
        for run in rows
    ]
    compare = compare_url(project.slug)
    context = {
        "project": project,
        "experiment": experiment,
        "keys": keys,
        "columns": columns,
        "headers": headers,
        "table": table,
        "page": page,
        "filter": filter_text,
        "error": error,
        "sort_key": sort_key,
        "direction": direction,
        "sorts": [
            *ATTRIBUTE_SORTS.items(),
            *[(f"metrics.{k}", f"metric {k}") for k in keys["metrics"]],
            *[(f"params.{k}", f"param {k}") for k in keys["params"]],
        ],
        "page_query": urlencode([*keep, *sort_state]),
        "compare_url": compare,
        "compare_all_url": (
            f"{compare}?{urlencode({'experiment': experiment.pk, 'filter': filter_text})}"
        ),
        "tracking_uri": tracking_uri(request, project),
        "searchable": sorted({*STRING_ATTRIBUTES, *NUMERIC_ATTRIBUTES}),
    }
    if _htmx(request):
        return render(request, "experiments/experiment_runs.html#runs", context)
    return render(request, "experiments/experiment_runs.html", context)


@login_required
def compare_selected(request: AuthedRequest, slug: str, experiment_id: int) -> HttpResponse:
    """The runs ticked in the table, sent on to the comparison page as ``?runs=a,b``."""
    project, _ = get_project_for_user(request.user, slug)
    runs = [r for r in request.GET.getlist("run") if r.isalnum() and len(r) <= 32][:500]
    back = reverse("experiments:runs", kwargs={"slug": slug, "experiment_id": experiment_id})
    compare = compare_url(project.slug)
    if not runs:
        return redirect(back)
    return redirect(f"{compare}?{urlencode({'runs': ','.join(runs)})}")


def _figure(name: str, series: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers" if len(series["steps"]) < 50 else "lines",
                "x": series["steps"],
                "y": series["values"],
                "name": name,
            }
        ],
        "layout": {
            "height": 240,
            "margin": {"l": 50, "r": 10, "t": 10, "b": 40},
            "xaxis": {"title": {"text": "step"}},
            "yaxis": {"title": {"text": name}},
        },
    }


@login_required
def run_detail(request: AuthedRequest, slug: str, run_uuid: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    run = sel.run_for_project(project=project, run_uuid=run_uuid)
    if run is None:
        raise Http404("No such run.")
    histories = sel.metric_histories(run=run)
    metrics = []
    for i, m in enumerate(sorted(run.latest_metrics.all(), key=lambda m: m.key.name)):
        series = histories.get(m.key.name)
        entry: dict[str, Any] = {"name": m.key.name, "value": m.value, "step": m.step}
        if series and series["total"] > 1:
            entry.update(
                {
                    "id": f"metric-{i}",
                    "data_id": f"metric-{i}-data",
                    "figure": _figure(m.key.name, series),
                    "total": series["total"],
                    "shown": len(series["steps"]),
                }
            )
        metrics.append(entry)
    path = request.GET.get("path", "")
    listing = _artifact_listing(project, run, path)
    context = {
        "project": project,
        "run": run,
        "status": STATUS_WORDS.get(run.status, run.status),
        "started": _when(run.start_time),
        "ended": _when(run.end_time),
        "duration": _duration(run),
        "params": sorted(run.params.all(), key=lambda p: p.key),
        "tags": sorted(
            (t for t in run.tags.all() if not t.key.startswith("mlflow.")), key=lambda t: t.key
        ),
        "metrics": metrics,
        "lineage": sel.run_lineage(project=project, run=run),
        "artifacts": listing,
    }
    if _htmx(request) and request.GET.get("part") == "artifacts":
        return render(request, "experiments/run_detail.html#artifacts", context)
    return render(request, "experiments/run_detail.html", context)


def _artifact_listing(project: Project, run: Run, path: str) -> dict[str, Any]:
    """The folder ``path`` of the run's artifacts, or a message saying why not."""
    root = sel.run_artifact_root(run)
    state: dict[str, Any] = {"path": "", "entries": [], "error": "", "crumbs": []}
    if root is None:
        state["error"] = "This run keeps its artifacts outside the portal."
        return state
    try:
        rel = clean_path(path, allow_empty=True)
        entries = list(ArtifactStore(project.pk).list(posixpath.join(root, rel) if rel else root))
    except MlflowError as exc:
        state["error"] = f"This path cannot be shown: {exc.message}"
        return state
    state["path"] = rel
    parts = rel.split("/") if rel else []
    state["crumbs"] = [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]
    state["entries"] = [
        {**e, "rel": f"{rel}/{e['path']}" if rel else e["path"]}
        for e in entries
        if not (e["is_dir"] is False and rel and e["path"] == posixpath.basename(rel))
    ]
    return state


@login_required
def run_artifact(request: AuthedRequest, slug: str, run_uuid: str) -> HttpResponse | FileResponse:
    """One artifact file of a run: shown when it is small text, else downloaded."""
    project, _ = get_project_for_user(request.user, slug)
    run = sel.run_for_project(project=project, run_uuid=run_uuid)
    if run is None:
        raise Http404("No such run.")
    root = sel.run_artifact_root(run)
    path = request.GET.get("path", "")
    context: dict[str, Any] = {"project": project, "run": run, "path": path, "text": None}
    try:
        if root is None:
            raise Http404("This run keeps its artifacts outside the portal.")
        rel = clean_path(path)
        handle = ArtifactStore(project.pk).open(posixpath.join(root, rel))
    except MlflowError as exc:
        if exc.code == "RESOURCE_DOES_NOT_EXIST":
            raise Http404(exc.message) from None
        context["error"] = f"This path cannot be shown: {exc.message}"
        return render(request, "experiments/artifact.html", context, status=400)
    name = posixpath.basename(rel)
    if request.GET.get("download") != "1":
        head = handle.read(MAX_TEXT_PREVIEW + 1)
        if len(head) <= MAX_TEXT_PREVIEW and b"\x00" not in head:
            with contextlib.suppress(UnicodeDecodeError):
                context["text"] = head.decode("utf-8")
        if context["text"] is not None:
            handle.close()
            context["path"] = rel
            return render(request, "experiments/artifact.html", context)
        handle.seek(0)
    return FileResponse(handle, as_attachment=True, filename=name)


@login_required
def model_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    return render(
        request,
        "experiments/model_list.html",
        {"project": project, "models": list(sel.registered_models(project=project))},
    )


@login_required
def model_detail(request: AuthedRequest, slug: str, name: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    model = sel.registered_model(project=project, name=name)
    if model is None:
        raise Http404("No such model.")
    versions = sel.versions_with_lineage(project=project, versions=model.versions.all())
    return render(
        request,
        "experiments/model_detail.html",
        {
            "project": project,
            "model": model,
            "versions": versions,
            "aliases": sorted(
                ((a.alias, v.version) for v in versions for a in v.aliases.all()),
            ),
            "created": _when(model.creation_time),
        },
    )


@login_required
def model_version_detail(
    request: AuthedRequest, slug: str, name: str, version: int
) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    found = sel.model_version(project=project, name=name, version=version)
    if found is None:
        raise Http404("No such model version.")
    return render(
        request,
        "experiments/model_version.html",
        {
            "project": project,
            "model": found.registered_model,
            "version": found,
            "created": _when(found.creation_time),
            "run_status": STATUS_WORDS.get(found.run.status, "") if found.run else "",
        },
    )


@login_required
def snapshot_runs(request: AuthedRequest, slug: str, source_id: int, version: int) -> HttpResponse:
    """The runs that used a data snapshot and the models made from them: a
    partial the snapshot page loads, or a page of its own."""
    project, snapshot = get_snapshot_for_user(request.user, slug, source_id, version)
    context: dict[str, Any] = {
        "project": project,
        "snapshot": snapshot,
        "source": snapshot.source,
        **sel.snapshot_runs(snapshot=snapshot),
    }
    template = "experiments/snapshot_runs.html"
    return render(request, f"{template}#lineage" if _htmx(request) else template, context)
