"""Tokens scoped to one project's tracking server: what user code in a
workspace or a job holds instead of a person's own token."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from projects.models import ProjectToken
from projects.services import membership_remove, project_create
from projects.tokens import project_token_issue, project_token_revoke

pytestmark = pytest.mark.django_db


def _get(client: Client, slug: str, raw: str) -> Any:
    return client.get(
        f"/mlflow/{slug}/api/2.0/mlflow/experiments/search",
        {"max_results": 10},
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )


def _create(client: Client, slug: str, raw: str, name: str) -> Any:
    return client.post(
        f"/mlflow/{slug}/api/2.0/mlflow/experiments/create",
        json.dumps({"name": name}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )


def test_reads_and_writes_its_own_project_as_its_user(project: Any, bob: Any) -> None:
    raw = project_token_issue(project=project, user=bob, purpose="workspace:1")
    assert raw.startswith("sgt_")
    client = Client()
    assert _get(client, project.slug, raw).status_code == 200
    created = _create(client, project.slug, raw, "from-a-notebook")
    assert created.status_code == 200, created.content
    stored = ProjectToken.objects.get(purpose="workspace:1")
    assert stored.token_hash != raw and raw not in stored.token_hash


def test_refused_by_another_project_and_by_the_rest_of_the_portal(
    project: Any, alice: Any, bob: Any
) -> None:
    other = project_create(actor=bob, name="Other")
    raw = project_token_issue(project=project, user=bob, purpose="job:3")
    client = Client()
    refused = _get(client, other.slug, raw)
    assert refused.status_code == 401
    assert refused.json()["error_code"] == "UNAUTHENTICATED"
    # The REST API and the pages do not take it either.
    api = client.get("/api/projects/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.status_code == 401
    page = client.get(f"/projects/{project.slug}/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert page.status_code == 302  # to the login page: a token is no session


def test_revoked_expired_and_replaced_tokens_are_refused(project: Any, bob: Any) -> None:
    client = Client()
    first = project_token_issue(project=project, user=bob, purpose="workspace:9")
    second = project_token_issue(project=project, user=bob, purpose="workspace:9")
    assert _get(client, project.slug, first).status_code == 401  # replaced on restart
    assert _get(client, project.slug, second).status_code == 200
    assert project_token_revoke(purpose="workspace:9") == 1
    assert _get(client, project.slug, second).status_code == 401
    expired = project_token_issue(
        project=project,
        user=bob,
        purpose="job:1",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert _get(client, project.slug, expired).status_code == 401


def test_membership_is_checked_on_every_request(
    project: Any, alice: Any, bob: Any, carol: Any
) -> None:
    client = Client()
    read_only = project_token_issue(project=project, user=carol, purpose="workspace:2")
    assert _get(client, project.slug, read_only).status_code == 200
    refused = _create(client, project.slug, read_only, "analysts-cannot-write")
    assert refused.status_code == 403
    raw = project_token_issue(project=project, user=bob, purpose="workspace:3")
    membership_remove(actor=alice, project=project, user=bob)
    gone = _get(client, project.slug, raw)
    assert gone.status_code == 404
    assert gone.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_deactivated_user_s_token_is_refused(project: Any, bob: Any) -> None:
    raw = project_token_issue(project=project, user=bob, purpose="job:4")
    bob.is_active = False
    bob.save(update_fields=["is_active"])
    assert _get(Client(), project.slug, raw).status_code == 401
