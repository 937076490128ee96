"""The home page: my projects and their stage, what waits for me, my running
workspaces and their cost today; for a platform admin, the platform."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from charter.services import charter_draft_save, charter_submit
from tests.charter.test_charter import GOOD
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, charter_signed_off
from tests.portal.test_stages import ran_a_notebook

pytestmark = pytest.mark.django_db


def test_member_sees_projects_stage_and_a_new_project_button(
    project: Any, project_unsigned_other: Any, client_for: Any, alice: Any
) -> None:
    body = client_for(alice).get("/").content.decode()
    assert 'href="/projects/new/"' in body and "New project" in body
    assert 'href="/projects/churn/"' in body and "2. Data" in body
    assert 'href="/projects/fraud/"' in body and "1. Charter" in body
    assert "You are not in any project yet" not in body


def test_approver_sees_what_waits_for_them(
    project_unsigned_other: Any, client_for: Any, alice: Any, dave: Any
) -> None:
    charter_draft_save(actor=alice, project=project_unsigned_other, values=GOOD)
    approval = charter_submit(actor=alice, project=project_unsigned_other)
    body = client_for(dave).get("/").content.decode()
    assert f'href="/approvals/{approval.pk}/"' in body
    assert "Sign off charter v1" in body


def test_running_workspaces_with_their_cost_today(
    project: Any, client_for: Any, bob: Any, alice: Any
) -> None:
    ran_a_notebook(project, bob, "explore")
    body = client_for(bob).get("/").content.decode()
    assert "explore" in body and "Standard_D2s_v3" in body and "USD" in body
    assert "3. Workspaces" not in body  # it ran: the project is past it
    assert "4. Experiments" in body
    other = client_for(alice).get("/").content.decode()
    assert "None of your workspaces is running." in other


def test_admin_sees_the_platform(project: Any, client_for: Any, admin_user: Any) -> None:
    body = client_for(admin_user).get("/").content.decode()
    assert "You are not in any project yet" not in body
    assert "All projects (1)" in body and 'href="/projects/churn/"' in body
    assert "Spend this month" in body
    assert "No request waits for an admin." in body


def test_non_admin_does_not_see_the_platform(project: Any, client_for: Any, bob: Any) -> None:
    assert "Spend this month" not in client_for(bob).get("/").content.decode()


def _queries(client: Any) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/").status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("who", ["alice", "admin_user"])
def test_query_count_does_not_grow_with_projects(
    project: Any, client_for: Any, request: Any, alice: Any, bob: Any, who: str
) -> None:
    user = request.getfixturevalue(who)
    client = client_for(user)
    ran_a_notebook(project, alice, "mine")
    before = _queries(client)
    for i in range(8):
        p: Any = ProjectFactory()
        MembershipFactory(project=p, user=alice, role="lead")
        # Alice's own running notebooks grow up to her quota of 4; then others' do.
        owner = alice if i < 3 else UserFactory()
        if owner is not alice:
            MembershipFactory(project=p, user=owner, role="data_scientist")
        charter_signed_off(p)
        ran_a_notebook(p, owner, "mine")
    assert _queries(client) == before


@pytest.fixture
def project_unsigned_other(alice: Any, dave: Any) -> Any:
    other = ProjectFactory(name="Fraud", slug="fraud")
    MembershipFactory(project=other, user=alice, role="lead")
    MembershipFactory(project=other, user=dave, role="business_approver")
    return other
