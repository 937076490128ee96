"""A notebook gets its project's tracking server and a token scoped to it at
each start; the token ends when the notebook stops, fails or is deleted.

The provider is a recording stand-in for the cloud (what ``cloud.get_provider``
returns for the name ``recording``); the tasks and services are the portal's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import cloud
from cloud.base import ResourceState, ResourceStatus
from projects.models import ProjectToken
from projects.tokens import project_token_user
from workspaces import services, tasks
from workspaces.models import Workspace, WorkspaceState

S = WorkspaceState
pytestmark = pytest.mark.django_db


class RecordingProvider:
    """Runs whatever it is asked to, and remembers the tracking server and token."""

    name = "recording"

    def __init__(self) -> None:
        self.started: list[tuple[str, str, str]] = []

    def workspace_create(self, spec: Any) -> ResourceStatus:
        self.started.append(("create", spec.tracking_url, spec.tracking_token))
        return ResourceStatus(spec.name, ResourceState.RUNNING, url="http://127.0.0.1:1/lab")

    def workspace_start(
        self, name: str, *, tracking_url: str = "", tracking_token: str = ""
    ) -> ResourceStatus:
        self.started.append(("start", tracking_url, tracking_token))
        return ResourceStatus(name, ResourceState.RUNNING, url="http://127.0.0.1:1/lab")

    def workspace_stop(self, name: str) -> ResourceStatus:
        return ResourceStatus(name, ResourceState.STOPPED)

    def workspace_delete(self, name: str) -> ResourceStatus:
        return ResourceStatus(name, ResourceState.DELETED)


@pytest.fixture
def recording(settings: Any) -> Iterator[RecordingProvider]:
    provider = RecordingProvider()
    settings.PORTAL_BASE_URL = "https://portal.example/"
    cloud._providers["recording"] = provider  # type: ignore[assignment]
    yield provider
    cloud._providers.pop("recording", None)


@pytest.fixture
def running(recording: RecordingProvider, project: Any, bob: Any, small: Any) -> Workspace:
    ws = services.workspace_request(actor=bob, project=project, name="nb", size=small)
    Workspace.objects.filter(pk=ws.pk).update(provider="recording")
    assert tasks.workspace_provision.apply(kwargs={"workspace_id": ws.pk}).get() == "running"
    ws.refresh_from_db()
    return ws


def test_a_started_notebook_gets_its_projects_tracking_server_and_a_token_for_it(
    recording: RecordingProvider, running: Workspace, project: Any, bob: Any
) -> None:
    [(call, url, token)] = recording.started
    assert call == "create"
    assert url == f"https://portal.example/mlflow/{project.slug}"
    assert token.startswith("sgt_")
    # It acts as the notebook's owner, on this project's tracking server only.
    assert project_token_user(token, slug=project.slug) == bob
    assert project_token_user(token, slug="another-project") is None
    row = ProjectToken.objects.get(purpose=f"workspace:{running.pk}")
    assert row.user == bob and row.project == project and row.revoked_at is None


def test_stop_revokes_the_token_and_each_start_issues_a_new_one(
    recording: RecordingProvider, running: Workspace, project: Any, bob: Any
) -> None:
    first = recording.started[0][2]
    services.workspace_stop(actor=bob, workspace=running)
    # Revoked as soon as the stop is asked for, before the provider stopped it.
    assert project_token_user(first, slug=project.slug) is None
    assert tasks.workspace_stop_task.apply(kwargs={"workspace_id": running.pk}).get() == "stopped"

    running.refresh_from_db()
    services.workspace_start(actor=bob, workspace=running)
    assert tasks.workspace_provision.apply(kwargs={"workspace_id": running.pk}).get() == "running"
    call, url, second = recording.started[-1]
    assert call == "start" and url == f"https://portal.example/mlflow/{project.slug}"
    assert second != first
    assert project_token_user(second, slug=project.slug) == bob
    assert project_token_user(first, slug=project.slug) is None
    live = ProjectToken.objects.filter(purpose=f"workspace:{running.pk}", revoked_at__isnull=True)
    assert live.count() == 1


def test_delete_revokes_the_token(
    recording: RecordingProvider, running: Workspace, project: Any, bob: Any
) -> None:
    token = recording.started[0][2]
    services.workspace_delete(actor=bob, workspace=running)
    assert project_token_user(token, slug=project.slug) is None
    assert tasks.workspace_delete_task.apply(kwargs={"workspace_id": running.pk}).get() == "deleted"
    assert not ProjectToken.objects.filter(
        purpose=f"workspace:{running.pk}", revoked_at__isnull=True
    ).exists()


def test_a_failed_notebook_loses_its_token(
    recording: RecordingProvider, running: Workspace, project: Any
) -> None:
    token = recording.started[0][2]
    services.workspace_mark_failed(workspace_id=running.pk, reason="the machine went away")
    assert project_token_user(token, slug=project.slug) is None


def test_a_notebook_found_stopped_loses_its_token(
    recording: RecordingProvider, running: Workspace, project: Any
) -> None:
    token = recording.started[0][2]
    assert services.workspace_found_stopped(workspace_id=running.pk, detail="idle shutdown")
    assert project_token_user(token, slug=project.slug) is None
