"""Names and pages of the stages' objects in the audit trail (see
``governance.audit_links``): registered here, where the stages' URLs are known,
each answering a page of ids with one query."""

from __future__ import annotations

from django.urls import reverse

from charter.models import CharterVersion
from compute.models import ComputeSize, Quota
from datasets.models import DataSource, Ingestion, Snapshot, Split, ValidationRule
from governance.audit_links import Link, register
from workspaces.models import Workspace


def _workspaces(ids: list[int]) -> dict[int, Link]:
    rows = Workspace.objects.filter(pk__in=ids).select_related("project")
    return {
        w.pk: (
            f"workspace “{w.name}”",
            reverse("workspaces:detail", args=[w.project.slug, w.pk]),
        )
        for w in rows
    }


def _charters(ids: list[int]) -> dict[int, Link]:
    rows = CharterVersion.objects.filter(pk__in=ids).select_related("project")
    return {
        c.pk: (f"charter v{c.number}", reverse("projects:charter", args=[c.project.slug]))
        for c in rows
    }


def _source_link(source: DataSource) -> str:
    return reverse("datasets:source", args=[source.project.slug, source.pk])


def _sources(ids: list[int]) -> dict[int, Link]:
    rows = DataSource.objects.filter(pk__in=ids).select_related("project")
    return {s.pk: (f"data source “{s.name}”", _source_link(s)) for s in rows}


def _snapshot_link(snapshot: Snapshot) -> str:
    source = snapshot.source
    return reverse("datasets:snapshot", args=[source.project.slug, source.pk, snapshot.version])


def _snapshots(ids: list[int]) -> dict[int, Link]:
    rows = Snapshot.objects.filter(pk__in=ids).select_related("source__project")
    return {s.pk: (f"“{s.source.name}” v{s.version}", _snapshot_link(s)) for s in rows}


def _ingestions(ids: list[int]) -> dict[int, Link]:
    rows = Ingestion.objects.filter(pk__in=ids).select_related("source__project")
    return {i.pk: (f"pull of “{i.source.name}”", _source_link(i.source)) for i in rows}


def _rules(ids: list[int]) -> dict[int, Link]:
    rows = ValidationRule.objects.filter(pk__in=ids).select_related("source__project")
    return {r.pk: (f"rule on “{r.source.name}”", _source_link(r.source)) for r in rows}


def _splits(ids: list[int]) -> dict[int, Link]:
    rows = Split.objects.filter(pk__in=ids).select_related("parent__source__project")
    return {
        s.pk: (f"split {s.number} of “{s.parent.source.name}”", _snapshot_link(s.parent))
        for s in rows
    }


def _sizes(ids: list[int]) -> dict[int, Link]:
    return {
        s.pk: (f"size {s.name}", reverse("workspaces:quotas"))
        for s in ComputeSize.objects.filter(pk__in=ids)
    }


def _quotas(ids: list[int]) -> dict[int, Link]:
    rows = Quota.objects.filter(pk__in=ids).select_related("project", "user")
    return {
        q.pk: (
            f"quota of “{q.project.name}”" if q.project else f"quota of {q.user}",
            reverse("workspaces:quotas"),
        )
        for q in rows
    }


register("workspaces.workspace", _workspaces)
register("charter.charterversion", _charters)
register("datasets.datasource", _sources)
register("datasets.snapshot", _snapshots)
register("datasets.ingestion", _ingestions)
register("datasets.validationrule", _rules)
register("datasets.split", _splits)
register("compute.computesize", _sizes)
register("compute.quota", _quotas)
