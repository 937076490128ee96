"""The nav's Charter item follows the project being looked at; /workspaces/ lists
every project the user is in, each with what to do next."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import MembershipFactory, ProjectFactory
from tests.portal.test_stages import ran_a_notebook

pytestmark = pytest.mark.django_db

NAV_CHARTER = '<a href="{}">Charter</a>'


@pytest.mark.parametrize(
    "path",
    ["/projects/churn/", "/projects/churn/workspaces/", "/projects/churn/charter/versions/"],
)
def test_charter_item_leads_to_the_project_being_looked_at(
    project: Any, client_for: Any, alice: Any, path: str
) -> None:
    body = client_for(alice).get(path).content.decode()
    assert NAV_CHARTER.format("/projects/churn/charter/") in body


@pytest.mark.parametrize("path", ["/", "/workspaces/", "/approvals/"])
def test_charter_item_elsewhere_leads_to_the_projects(
    project: Any, client_for: Any, alice: Any, path: str
) -> None:
    body = client_for(alice).get(path).content.decode()
    assert NAV_CHARTER.format("/projects/") in body


def test_workspaces_lists_every_project_with_a_call_to_action(
    project: Any, project_fraud: Any, client_for: Any, alice: Any, bob: Any
) -> None:
    body = client_for(bob).get("/workspaces/").content.decode()
    # Signed off, nothing yet: request one.
    assert 'href="/projects/churn/workspaces/"' in body and "Request a notebook" in body
    # Not signed off: the charter first, linked.
    assert 'href="/projects/fraud/charter/">Needs a signed-off charter first' in body
    assert "0 workspaces, 0 running" in body
    ran_a_notebook(project, bob)
    body = client_for(bob).get("/workspaces/").content.decode()
    assert "1 workspace, 1 running" in body and "Open its workspaces" in body


def test_workspaces_list_for_a_read_only_member_and_an_outsider(
    project: Any, client_for: Any, carol: Any, charlie: Any
) -> None:
    assert "See its workspaces" in client_for(carol).get("/workspaces/").content.decode()
    outsider = client_for(charlie).get("/workspaces/").content.decode()
    assert "Churn" not in outsider and "You are not in any project yet" in outsider


@pytest.fixture
def project_fraud(bob: Any) -> Any:
    other = ProjectFactory(name="Fraud", slug="fraud")
    MembershipFactory(project=other, user=bob, role="data_scientist")
    return other
