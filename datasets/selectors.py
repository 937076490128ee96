"""Reads for data pages and the API: querysets with their joins done, and
plotly figures as plain dicts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, IntegerField, Max, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from datasets.models import DataSource, Ingestion, Snapshot, Split
from projects.models import Project


def sources_for_project(*, project: Project) -> QuerySet[DataSource]:
    return (
        DataSource.objects.filter(project=project)
        .select_related("owner")
        .annotate(
            version_count=Count("snapshots", distinct=True),
            latest_version=Max("snapshots__version"),
        )
        .order_by("name")
    )


def _count(queryset: QuerySet[Any], field: str) -> Coalesce:
    """A correlated ``COUNT(*)`` of ``queryset`` per project, 0 when none."""
    counted = (
        queryset.filter(**{field: OuterRef("pk")})
        .order_by()
        .values(field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def data_projects(*, user: User) -> QuerySet[Project]:
    """Every project the user is in (admins: all), with or without data: its
    source, version and exploratory-source counts and the user's role, in one
    query."""
    from projects.models import Membership

    projects = Project.objects.all() if user.is_staff else Project.objects.filter(members=user)
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return projects.annotate(
        source_count=_count(DataSource.objects.all(), "project"),
        exploratory_count=_count(DataSource.objects.filter(exploratory=True), "project"),
        version_count=_count(Snapshot.objects.all(), "source__project"),
        my_role=Subquery(role),
    ).order_by("name")


SOURCE_SORTS = {
    "name": ("name", "Name"),
    "kind": ("kind", "Kind"),
    "versions": ("-version_count", "Most versions"),
    "newest": ("-created_at", "Newest first"),
    "oldest": ("created_at", "Oldest first"),
}
VERSION_SORTS = {
    "newest": ("-version", "Newest first"),
    "oldest": ("version", "Oldest first"),
    "rows": ("-rows", "Most rows"),
    "size": ("-size", "Largest"),
}


def sources_search(
    sources: QuerySet[DataSource], *, query: str = "", sort: str = "name"
) -> QuerySet[DataSource]:
    """Sources whose name, description or kind contains ``query``, sorted."""
    query = query.strip()
    if query:
        sources = sources.filter(
            Q(name__icontains=query) | Q(description__icontains=query) | Q(kind__icontains=query)
        )
    order = SOURCE_SORTS.get(sort, SOURCE_SORTS["name"])[0]
    return sources.order_by(order, "name", "pk")


def snapshots_search(
    snapshots: QuerySet[Snapshot], *, query: str = "", sort: str = "newest"
) -> QuerySet[Snapshot]:
    """Versions whose file name or sha256 contains ``query`` (or whose number
    it is), sorted."""
    query = query.strip().lower().removeprefix("v")
    if query:
        match = Q(original_name__icontains=query) | Q(sha256__startswith=query)
        if query.isdigit() and len(query) < 10:
            match |= Q(version=int(query))
        snapshots = snapshots.filter(match)
    order = VERSION_SORTS.get(sort, VERSION_SORTS["newest"])[0]
    return snapshots.order_by(order, "-version")


def sources_for_user(*, user: User) -> QuerySet[DataSource]:
    sources = DataSource.objects.all()
    if not user.is_staff:
        sources = sources.filter(project__members=user)
    return (
        sources.select_related("project", "owner")
        .annotate(version_count=Count("snapshots", distinct=True))
        .order_by("project__name", "name")
    )


def next_runs(sources: list[DataSource]) -> dict[int, datetime]:
    """When each scheduled source is next pulled (one query for all)."""
    from django_celery_beat.models import PeriodicTask

    names = {s.periodic_task_name: s.pk for s in sources if s.refresh_cron}
    if not names:
        return {}
    now = timezone.now()
    runs: dict[int, datetime] = {}
    for task in PeriodicTask.objects.filter(name__in=names, enabled=True).select_related("crontab"):
        if task.crontab is None:
            continue
        schedule = task.crontab.schedule
        when = now + schedule.remaining_estimate(now)
        # Cron has minute resolution; the estimate is off by microseconds.
        runs[names[task.name]] = (when + timedelta(seconds=30)).replace(second=0, microsecond=0)
    return runs


def source_ingestions(*, source: DataSource, limit: int = 20) -> list[Ingestion]:
    return list(
        source.ingestions.select_related("created_by", "snapshot").order_by("-created_at", "-pk")[
            :limit
        ]
    )


def source_snapshots(*, source: DataSource) -> QuerySet[Snapshot]:
    return (
        source.snapshots.select_related("created_by", "profile")
        .annotate(split_count=Count("splits"))
        .order_by("-version")
    )


def snapshot_splits(*, snapshot: Snapshot) -> QuerySet[Split]:
    return snapshot.splits.select_related("created_by").order_by("-number")


def source_splits(*, source: DataSource) -> QuerySet[Split]:
    return Split.objects.filter(parent__source=source).select_related("parent").order_by("-pk")


def project_lineage(*, project: Project) -> list[DataSource]:
    """Sources with their snapshots and each snapshot's splits (three queries)."""
    return list(
        DataSource.objects.filter(project=project)
        .order_by("name")
        .prefetch_related(
            Prefetch(
                "snapshots",
                queryset=Snapshot.objects.order_by("version").prefetch_related(
                    Prefetch("splits", queryset=Split.objects.order_by("number"))
                ),
            )
        )
    )


def _bar(x: list[Any], y: list[Any], title: str) -> dict[str, Any]:
    return {
        "data": [{"type": "bar", "x": x, "y": y, "marker": {"color": "#1f5fbf"}}],
        "layout": {
            "title": {"text": title, "font": {"size": 13}},
            "margin": {"l": 40, "r": 10, "t": 30, "b": 40},
            "height": 220,
        },
    }


def profile_figures(profile_data: dict[str, Any]) -> list[dict[str, Any]]:
    """One histogram or bar chart per column, then the correlation heatmap."""
    figures: list[dict[str, Any]] = []
    for index, column in enumerate(profile_data.get("columns", [])):
        if "histogram" in column:
            edges = column["histogram"]["edges"]
            centres = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
            figure = _bar(centres, column["histogram"]["counts"], column["name"])
            figure["data"][0]["width"] = (edges[1] - edges[0]) if len(edges) > 1 else None
        elif "time_histogram" in column:
            # One bar per time bin, over a date axis.
            edges = column["time_histogram"]["edges"]
            figure = _bar(edges[:-1], column["time_histogram"]["counts"], column["name"])
            figure["layout"]["xaxis"] = {"type": "date"}
            figure["layout"]["bargap"] = 0
        elif column.get("top"):
            figure = _bar(
                [v for v, _ in column["top"]], [c for _, c in column["top"]], column["name"]
            )
        else:
            continue
        figures.append(
            {
                "id": f"figure-column-{index}",
                "data_id": f"figure-column-{index}-data",
                "column": column["name"],
                "figure": figure,
            }
        )
    matrix = profile_data.get("correlation_matrix") or {}
    if matrix.get("values"):
        figures.append(
            {
                "id": "figure-correlation",
                "data_id": "figure-correlation-data",
                "column": "",
                "figure": {
                    "data": [
                        {
                            "type": "heatmap",
                            "z": matrix["values"],
                            "x": matrix["columns"],
                            "y": matrix["columns"],
                            "zmin": -1,
                            "zmax": 1,
                            "colorscale": "RdBu",
                        }
                    ],
                    "layout": {
                        "title": {"text": "Correlation", "font": {"size": 13}},
                        "height": 420,
                        "margin": {"l": 100, "r": 10, "t": 30, "b": 100},
                    },
                },
            }
        )
    return figures
