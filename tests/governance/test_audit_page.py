"""The audit trail page in words: readable, linked objects, filters by choice
and by date, search, order and pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.services import audit_record
from charter.services import charter_draft_save, charter_submit
from governance.models import ApprovalRequest
from tests.charter.test_charter import GOOD
from tests.factories import MembershipFactory, ProjectFactory


@pytest.fixture
def project(project_unsigned: Any) -> Any:
    """These tests write the charter themselves: the project starts without one."""
    return project_unsigned


pytestmark = pytest.mark.django_db


def test_objects_are_named_and_linked(project: Any, alice: Any, bob: Any, client_for: Any) -> None:
    charter_draft_save(actor=bob, project=project, values=GOOD)
    approval = charter_submit(actor=bob, project=project)
    audit_record(
        action="test.gone",
        actor=alice,
        project=project,
        object_type="projects.project",
        object_id=999999,
    )
    response = client_for(alice).get("/audit/")
    body = response.content.decode()
    assert f'<a href="/approvals/{approval.pk}/">request “Sign off charter v1”</a>' in body
    assert '<a href="/projects/churn/charter/">charter v1</a>' in body
    # Gone since: named, not linked.
    assert "project 999999" in body and 'href="/projects/999999' not in body
    assert "charterversion 1" not in body and "approvalrequest " not in body
    assert "Approval: requested" in body  # the action in words


def test_links_cost_the_same_queries_for_one_row_as_for_fifty(
    project: Any, alice: Any, bob: Any, client_for: Any
) -> None:
    client = client_for(alice)
    charter_draft_save(actor=bob, project=project, values=GOOD)
    charter_submit(actor=bob, project=project)
    client.get("/audit/")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/audit/").status_code == 200
        return len(ctx.captured_queries)

    few = queries()
    for n in range(25):
        other = ProjectFactory(name=f"P{n}", slug=f"p{n}")
        MembershipFactory(project=other, user=alice, role="lead")
        audit_record(action="project.created", actor=alice, project=other, obj=other)
        audit_record(
            action="test.approval", actor=alice, project=project, obj=ApprovalRequest.objects.get()
        )
    assert queries() <= few


def test_filters_offer_choices_and_date_pickers(
    project: Any, alice: Any, bob: Any, client_for: Any
) -> None:
    hidden = ProjectFactory(name="Hidden", slug="hidden")
    audit_record(action="test.one", actor=bob, project=project)
    audit_record(action="test.hidden", actor=bob, project=hidden)
    response = client_for(alice).get("/audit/")
    form = response.context["form"]
    assert [c[0] for c in form.fields["project"].choices] == ["", "churn"]
    assert ("test.one", "Test: one") in form.fields["action"].choices
    assert "test.hidden" not in [c[0] for c in form.fields["action"].choices]
    assert "bob" in [c[0] for c in form.fields["actor"].choices]
    body = response.content.decode()
    assert 'type="date" name="since"' in body and 'type="date" name="until"' in body
    assert '<select name="project"' in body and '<select name="action"' in body
    # A project one may not see is not a choice: refused, nothing shown.
    response = client_for(alice).get("/audit/", {"project": "hidden"})
    assert "Select a valid choice" in response.content.decode()
    assert response.context["page"].paginator.count == 0


def test_dates_count_whole_days_search_and_order(project: Any, alice: Any, client_for: Any) -> None:
    for action in ("test.first", "test.second", "test.third"):
        audit_record(action=action, actor=alice, project=project)
    today = timezone.now().date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    client = client_for(alice)

    def actions(**params: Any) -> list[str]:
        page = client.get("/audit/", params).context["page"]
        return [e.action for e in page if e.action.startswith("test.")]

    newest_first = ["test.third", "test.second", "test.first"]
    # "To" today includes the whole of today.
    assert actions(since=today, until=today) == newest_first
    assert actions(until=yesterday) == []
    assert actions(since=tomorrow) == []
    assert actions(q="second") == ["test.second"]
    assert actions(sort="oldest") == newest_first[::-1]
    response = client.get("/audit/", {"since": tomorrow, "until": today})
    assert "“From” must not be after “To”." in response.content.decode()


def test_the_trail_is_paged(project: Any, alice: Any, client_for: Any) -> None:
    for n in range(60):
        audit_record(action="test.many", actor=alice, project=project, payload={"n": n})
    client = client_for(alice)
    first = client.get("/audit/", {"action": "test.many"})
    assert len(first.context["page"].object_list) == 50
    assert 'href="?action=test.many&amp;page=2"' in first.content.decode()
    second = client.get("/audit/", {"action": "test.many", "page": 2})
    assert len(second.context["page"].object_list) == 10
    # Details read as labels and values, not a raw dict.
    assert "<dt>N</dt><dd>0</dd>" in second.content.decode()
