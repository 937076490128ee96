"""Every project view and endpoint as owner, member, read-only member and outsider."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from projects.models import Membership
from tests.factories import MembershipFactory, ProjectFactory


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("carol", 200), ("charlie", 404), ("admin_user", 200)],
)
def test_project_page(project: Any, client_for: Any, request: Any, who: str, status: int) -> None:
    user = request.getfixturevalue(who)
    assert client_for(user).get(f"/projects/{project.slug}/").status_code == status


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("carol", 200), ("charlie", 404), ("admin_user", 200)],
)
def test_project_api_read(project: Any, api_for: Any, request: Any, who: str, status: int) -> None:
    user = request.getfixturevalue(who)
    assert api_for(user).get(f"/api/projects/{project.slug}/").status_code == status
    assert api_for(user).get(f"/api/projects/{project.slug}/members/").status_code == status


def test_unknown_project_is_404_for_everyone(db: Any, api_for: Any, admin_user: Any) -> None:
    assert api_for(admin_user).get("/api/projects/nope/").status_code == 404


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 201), ("bob", 403), ("carol", 403), ("charlie", 404), ("admin_user", 403)],
)
def test_adding_members_via_api(
    project: Any, api_for: Any, request: Any, who: str, status: int
) -> None:
    from tests.factories import UserFactory

    UserFactory(username="erin")
    user = request.getfixturevalue(who)
    response = api_for(user).post(
        f"/api/projects/{project.slug}/members/", {"username": "erin", "role": "validator"}
    )
    assert response.status_code == status, response.content
    assert Membership.objects.filter(user__username="erin").exists() == (status == 201)
    assert AuditEvent.objects.filter(action="membership.added").count() == (status == 201)


def test_member_api_validation(project: Any, api_for: Any, alice: Any, bob: Any) -> None:
    api = api_for(alice)
    url = f"/api/projects/{project.slug}/members/"
    response = api.post(url, {"username": "ghost", "role": "validator"})
    assert response.status_code == 400 and response.json() == {"username": ["No such user."]}
    response = api.post(url, {"username": "bob", "role": "wizard"})
    assert response.status_code == 400 and "role" in response.json()
    response = api.post(url, {"username": "bob", "role": "validator"})
    assert response.status_code == 400 and "already a member" in str(response.json())


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 204), ("bob", 403), ("carol", 403), ("charlie", 404)],
)
def test_removing_members_via_api(
    project: Any, api_for: Any, request: Any, who: str, status: int
) -> None:
    user = request.getfixturevalue(who)
    response = api_for(user).delete(f"/api/projects/{project.slug}/members/carol/")
    assert response.status_code == status
    assert Membership.objects.filter(user__username="carol").exists() == (status != 204)


def test_last_lead_cannot_be_removed(project: Any, api_for: Any, alice: Any) -> None:
    response = api_for(alice).delete(f"/api/projects/{project.slug}/members/alice/")
    assert response.status_code == 400
    assert "at least one lead" in str(response.json())


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 403), ("carol", 403), ("charlie", 404)],
)
def test_patch_project(project: Any, api_for: Any, request: Any, who: str, status: int) -> None:
    user = request.getfixturevalue(who)
    response = api_for(user).patch(f"/api/projects/{project.slug}/", {"name": "Renamed"})
    assert response.status_code == status
    project.refresh_from_db()
    assert (project.name == "Renamed") == (status == 200)


def test_patch_project_rejects_negative_budget(project: Any, api_for: Any, alice: Any) -> None:
    response = api_for(alice).patch(f"/api/projects/{project.slug}/", {"monthly_budget": "-5"})
    assert response.status_code == 400
    assert "monthly_budget" in response.json()


def test_create_project_makes_creator_lead(db: Any, api_for: Any, charlie: Any) -> None:
    response = api_for(charlie).post("/api/projects/", {"name": "Fraud", "slug": "fraud"})
    assert response.status_code == 201
    assert Membership.objects.get(project__slug="fraud", user=charlie).role == "lead"
    again = api_for(charlie).post("/api/projects/", {"name": "Fraud 2", "slug": "fraud"})
    assert again.status_code == 400 and "slug" in again.json()
    bad = api_for(charlie).post("/api/projects/", {"name": "", "slug": "not a slug"})
    assert bad.status_code == 400 and set(bad.json()) == {"name", "slug"}


def test_project_list_shows_only_my_projects(project: Any, api_for: Any, charlie: Any) -> None:
    ProjectFactory(slug="elsewhere")
    assert api_for(charlie).get("/api/projects/").json()["count"] == 0
    MembershipFactory(project=project, user=charlie, role="analyst")
    assert [p["slug"] for p in api_for(charlie).get("/api/projects/").json()["results"]] == [
        "churn"
    ]


def test_member_pages_for_leads_only(project: Any, client_for: Any, bob: Any, alice: Any) -> None:
    from tests.factories import UserFactory

    UserFactory(username="erin")
    url = f"/projects/{project.slug}/members/"
    assert client_for(bob).post(url, {"username": "erin", "role": "analyst"}).status_code == 403
    response = client_for(alice).post(url, {"username": "erin", "role": "analyst"})
    assert response.status_code == 302
    assert Membership.objects.filter(user__username="erin", role="analyst").exists()
    remove = f"/projects/{project.slug}/members/erin/remove/"
    assert client_for(alice).post(remove).status_code == 302
    assert not Membership.objects.filter(user__username="erin").exists()


def _queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", ["/", "/projects/"])
def test_list_query_counts_do_not_grow_with_rows(
    db: Any, client_for: Any, alice: Any, url: str, django_assert_num_queries: Any
) -> None:
    client = client_for(alice)
    MembershipFactory(user=alice, role="lead")
    one = _queries(client, url)
    for _ in range(30):
        MembershipFactory(user=alice, role="data_scientist")
    with django_assert_num_queries(one):
        assert client.get(url).status_code == 200


def test_new_project_form(db: Any, client_for: Any, charlie: Any) -> None:
    client = client_for(charlie)
    response = client.post(
        "/projects/new/", {"name": "X", "slug": "bad slug", "monthly_budget": "-1"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Enter a valid" in body and "cannot be negative" in body
    response = client.post("/projects/new/", {"name": "X", "slug": "x", "monthly_budget": "10"})
    assert response.status_code == 302
