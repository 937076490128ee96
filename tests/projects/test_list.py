"""The projects list (counts right for every role, search, sort, pages) and slugs."""

from __future__ import annotations

from typing import Any

import pytest

from projects.models import Project
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "dave", "admin_user"])
def test_member_count_is_right_for_every_role(
    project: Any, client_for: Any, request: Any, who: str
) -> None:
    response = client_for(request.getfixturevalue(who)).get("/projects/")
    assert [p.member_count for p in response.context["projects"]] == [4]
    assert "<td>4</td>" in response.content.decode()


def test_search_sort_and_pages(alice: Any, client_for: Any) -> None:
    for i in range(30):
        p = ProjectFactory(name=f"Model {i:02d}", slug=f"model-{i:02d}")
        MembershipFactory(project=p, user=alice, role="lead")
    client = client_for(alice)
    first = client.get("/projects/")
    assert len(first.context["projects"]) == 25 and "Page 1 of 2" in first.content.decode()
    second = client.get("/projects/?page=2")
    assert [p.name for p in second.context["projects"]][-1] == "Model 29"
    found = client.get("/projects/?q=model-0")
    assert len(found.context["projects"]) == 10
    desc = client.get("/projects/?sort=-name")
    assert desc.context["projects"][0].name == "Model 29"
    nothing = client.get("/projects/?q=zzz&sort=bogus&page=x")
    assert nothing.status_code == 200 and "No project matches" in nothing.content.decode()


def test_outsider_does_not_see_the_project(project: Any, client_for: Any, charlie: Any) -> None:
    assert list(client_for(charlie).get("/projects/").context["projects"]) == []


def test_api_derives_a_lower_case_slug_from_the_name(api_for: Any, alice: Any) -> None:
    response = api_for(alice).post("/api/projects/", {"name": "Churn Model Q3"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["slug"] == "churn-model-q3"


def test_slugs_are_lower_case_and_unique_regardless_of_case(api_for: Any, alice: Any) -> None:
    api = api_for(alice)
    made = api.post("/api/projects/", {"name": "A", "slug": "Churn"}, format="json")
    assert made.status_code == 201 and made.json()["slug"] == "churn"
    again = api.post("/api/projects/", {"name": "B", "slug": "CHURN"}, format="json")
    assert again.status_code == 400
    assert "already exists" in str(again.json()["slug"])
    assert Project.objects.count() == 1


def test_a_name_without_letters_needs_a_slug(api_for: Any, alice: Any) -> None:
    response = api_for(alice).post("/api/projects/", {"name": "!!!"}, format="json")
    assert response.status_code == 400 and "Give a slug" in str(response.json()["slug"])


def test_new_project_form_makes_the_slug(client_for: Any, alice: Any) -> None:
    response = client_for(alice).post(
        "/projects/new/", {"name": "Fraud Alerts", "slug": "", "monthly_budget": "0"}
    )
    assert response.status_code == 302 and response["Location"] == "/projects/fraud-alerts/"
    clash = client_for(alice).post(
        "/projects/new/", {"name": "Other", "slug": "FRAUD-alerts", "monthly_budget": "0"}
    )
    assert clash.status_code == 200 and "already exists" in clash.content.decode()
