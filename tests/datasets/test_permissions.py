"""The data access helpers for every cast member (tests/projects/test_permissions.py
has the project's)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from datasets import services as data_services
from datasets.permissions import get_snapshot_for_user, get_source_for_user
from tests.factories import MembershipFactory, ProjectFactory

READ = {"alice": "lead", "bob": "data_scientist", "carol": "analyst", "admin_user": None}
CAST = ["alice", "bob", "carol", "charlie", "admin_user"]


def expect(who: str, write: bool) -> tuple[type[Exception] | None, str]:
    if who == "charlie":
        return Http404, "No such project"
    if write and who == "carol":
        return PermissionDenied, "read-only"
    if write and who == "admin_user":
        return PermissionDenied, "Platform admins read projects"
    return None, ""


@pytest.fixture
def source(project: Any, alice: Any) -> Any:
    return data_services.source_create(
        actor=alice, project=project, name="Customers", kind="upload", location="on_prem"
    )


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize("who", CAST)
def test_get_source_and_snapshot_for_user(
    source: Any, ingest: Any, request: Any, who: str, write: bool
) -> None:
    snapshot = ingest(source).snapshot
    user = request.getfixturevalue(who)
    error, message = expect(who, write)
    if error:
        with pytest.raises(error, match=message):
            get_source_for_user(user, "churn", source.pk, write=write)
        with pytest.raises(error, match=message):
            get_snapshot_for_user(user, "churn", source.pk, snapshot.version, write=write)
        return
    project, found = get_source_for_user(user, "churn", source.pk, write=write)
    assert found == source and found.project == project and project.slug == "churn"
    project, version = get_snapshot_for_user(
        user, "churn", source.pk, snapshot.version, write=write
    )
    assert version == snapshot and version.source == source and project.slug == "churn"


def test_sources_and_versions_of_another_project_are_404(
    source: Any, ingest: Any, alice: Any, charlie: Any
) -> None:
    snapshot = ingest(source).snapshot
    other = ProjectFactory(slug="other", created_by=charlie)
    MembershipFactory(project=other, user=alice, role="lead")
    with pytest.raises(Http404, match="No such data source"):
        get_source_for_user(alice, "other", source.pk)
    with pytest.raises(Http404, match="No such data source"):
        get_source_for_user(alice, "churn", source.pk + 1000)
    with pytest.raises(Http404, match="No such version"):
        get_snapshot_for_user(alice, "churn", source.pk, snapshot.version + 1)


def test_reading_is_the_default(source: Any, ingest: Any, carol: Any) -> None:
    snapshot = ingest(source).snapshot
    assert get_source_for_user(carol, "churn", source.pk)[1] == source
    assert get_snapshot_for_user(carol, "churn", source.pk, snapshot.version)[1] == snapshot
