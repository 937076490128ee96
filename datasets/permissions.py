"""Who may see and change a project's data: the project's rules (404 for
non-members, 403 for read-only members), applied to its sources."""

from __future__ import annotations

from django.http import Http404

from accounts.models import User
from datasets.models import DataSource, Snapshot, Split
from projects.models import Project
from projects.permissions import get_project_for_user


def get_source_for_user(
    user: User, slug: str, source_id: int, *, write: bool = False
) -> tuple[Project, DataSource]:
    project, _ = get_project_for_user(user, slug, write=write)
    source = DataSource.objects.filter(project=project, pk=source_id).first()
    if source is None:
        raise Http404("No such data source.")
    source.project = project
    return project, source


def get_snapshot_for_user(
    user: User, slug: str, source_id: int, version: int, *, write: bool = False
) -> tuple[Project, Snapshot]:
    project, source = get_source_for_user(user, slug, source_id, write=write)
    snapshot = Snapshot.objects.filter(source=source, version=version).first()
    if snapshot is None:
        raise Http404("No such version.")
    snapshot.source = source
    return project, snapshot


def get_split_for_user(
    user: User, slug: str, source_id: int, split_id: int
) -> tuple[Project, Split]:
    project, source = get_source_for_user(user, slug, source_id)
    split = (
        Split.objects.filter(parent__source=source, pk=split_id).select_related("parent").first()
    )
    if split is None:
        raise Http404("No such split.")
    split.parent.source = source
    return project, split
