"""The approvals inbox, the approval detail page and notifications, in the browser's terms."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Notification
from audit.models import AuditEvent
from charter.models import CharterStatus, CharterVersion
from charter.services import charter_draft_save, charter_submit
from governance.models import ApprovalRequest
from projects.models import Stage
from tests.charter.test_charter import GOOD
from tests.factories import MembershipFactory, ProjectFactory, UserFactory


@pytest.fixture
def project(project_unsigned: Any) -> Any:
    """These tests write the charter themselves: the project starts without one."""
    return project_unsigned


HTMX = {"HTTP_HX_REQUEST": "true"}
INBOX = "/approvals/"


@pytest.fixture
def submitted(project: Any, bob: Any) -> ApprovalRequest:
    """Bob (data scientist) wrote the charter and asked for its sign-off."""
    charter_draft_save(actor=bob, project=project, values=GOOD)
    return charter_submit(actor=bob, project=project)


def decide_url(approval: ApprovalRequest) -> str:
    return f"/approvals/{approval.pk}/decide/"


# --- Inbox ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "listed"),
    [
        ("alice", False),
        ("bob", False),
        ("carol", False),
        ("dave", True),
        ("charlie", False),
        ("admin_user", False),
    ],
)
def test_inbox_lists_what_the_user_may_decide(
    submitted: ApprovalRequest, client_for: Any, request: Any, who: str, listed: bool
) -> None:
    response = client_for(request.getfixturevalue(who)).get(INBOX)
    assert response.status_code == 200
    body = response.content.decode()
    assert (f'id="approval-{submitted.pk}"' in body) == listed
    assert ([a.pk for a in response.context["pending"]] == [submitted.pk]) == listed
    if listed:
        assert f'hx-post="{decide_url(submitted)}"' in body
        assert f'action="{decide_url(submitted)}"' in body  # works without JavaScript too
        assert "Sign off charter v1" in body and ">bob<" in body and "Churn" in body
    else:
        assert "Nothing waits for your decision." in body


def test_inbox_shows_your_own_requests(
    submitted: ApprovalRequest, client_for: Any, bob: Any
) -> None:
    response = client_for(bob).get(INBOX)
    assert [a.pk for a in response.context["mine"]] == [submitted.pk]
    body = response.content.decode()
    assert f'href="/approvals/{submitted.pk}/"' in body
    assert "Pending" in body


def test_inbox_needs_a_login(client: Any, db: Any) -> None:
    response = client.get(INBOX)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def _inbox_queries(client: Any) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(INBOX).status_code == 200
    return len(ctx.captured_queries)


def _waiting_and_asked(approver: Any, count: int) -> None:
    """``count`` projects, each with one request waiting for ``approver`` and
    one the approver asked for."""
    for _ in range(count):
        project: Any = ProjectFactory()
        requester: Any = UserFactory()
        MembershipFactory(project=project, user=approver, role="business_approver")
        MembershipFactory(project=project, user=requester, role="data_scientist")
        for asked_by in (requester, approver):
            ApprovalRequest.objects.create(
                kind="charter",
                project=project,
                subject_type="projects.charterversion",
                subject_id="0",
                summary="Sign off charter v1",
                requested_by=asked_by,
                required_role="business_approver",
            )


def test_inbox_query_count_does_not_grow_with_requests(
    db: Any, client_for: Any, dave: Any, django_assert_num_queries: Any
) -> None:
    client = client_for(dave)
    _waiting_and_asked(dave, 1)
    one = _inbox_queries(client)
    _waiting_and_asked(dave, 49)
    with django_assert_num_queries(one):
        response = client.get(INBOX)
    # Fifty wait, in pages of 25.
    assert response.context["pending"].paginator.count == 50
    assert len(response.context["pending"]) == 25
    assert response.content.decode().count('class="approval-row state-pending"') == 25


# --- Deciding in place (htmx) and without JavaScript ---------------------------------


def test_htmx_approve_answers_with_the_row_in_its_new_state(
    submitted: ApprovalRequest, client_for: Any, dave: Any, project: Any
) -> None:
    response = client_for(dave).post(
        decide_url(submitted), {"decision": "approve", "comment": "Go."}, **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode().strip()
    assert body.startswith(f'<tr id="approval-{submitted.pk}" class="approval-row state-approved">')
    assert body.endswith("</tr>")
    assert "<html" not in body
    assert "Approved" in body and "by you" in body and "Go." in body
    assert "hx-post" not in body  # nothing left to decide
    submitted.refresh_from_db()
    assert submitted.state == "approved"
    assert CharterVersion.objects.get(project=project).status == CharterStatus.APPROVED
    project.refresh_from_db()
    assert project.stage == Stage.DATA


def test_htmx_reject_without_a_comment_explains_in_the_row(
    submitted: ApprovalRequest, client_for: Any, dave: Any
) -> None:
    response = client_for(dave).post(decide_url(submitted), {"decision": "reject"}, **HTMX)
    assert response.status_code == 400
    body = response.content.decode()
    assert body.strip().startswith(f'<tr id="approval-{submitted.pk}"')
    assert "Say why you reject it." in body
    assert "hx-post" in body  # still pending, the form stays
    submitted.refresh_from_db()
    assert submitted.state == "pending"

    response = client_for(dave).post(
        decide_url(submitted), {"decision": "reject", "comment": "Too vague."}, **HTMX
    )
    assert response.status_code == 200
    assert "Rejected" in response.content.decode()


def test_htmx_second_decision_is_a_conflict_shown_in_the_row(
    submitted: ApprovalRequest, client_for: Any, dave: Any, project: Any
) -> None:
    erin = UserFactory(username="erin")
    MembershipFactory(project=project, user=erin, role="business_approver")
    assert client_for(dave).post(decide_url(submitted), {"decision": "approve"}).status_code == 302
    response = client_for(erin).post(
        decide_url(submitted), {"decision": "reject", "comment": "No."}, **HTMX
    )
    assert response.status_code == 409
    body = response.content.decode()
    assert "This request is already approved." in body
    assert "Approved" in body and "by dave" in body
    assert AuditEvent.objects.filter(action="approval.decision_refused").count() == 1


@pytest.mark.parametrize(("who", "status"), [("alice", 403), ("bob", 403), ("carol", 403)])
def test_htmx_decision_by_someone_without_the_role_is_refused_in_the_row(
    submitted: ApprovalRequest, client_for: Any, request: Any, who: str, status: int
) -> None:
    response = client_for(request.getfixturevalue(who)).post(
        decide_url(submitted), {"decision": "approve"}, **HTMX
    )
    assert response.status_code == status
    body = response.content.decode()
    assert body.strip().startswith("<tr")
    expected = (
        "Nobody decides their own request."
        if who == "bob"
        else "Only a business approver of this project decides this."
    )
    assert expected in body
    submitted.refresh_from_db()
    assert submitted.state == "pending"


@pytest.mark.parametrize("who", ["charlie"])
def test_outsider_cannot_decide_or_see(
    submitted: ApprovalRequest, client_for: Any, request: Any, who: str
) -> None:
    client = client_for(request.getfixturevalue(who))
    assert client.post(decide_url(submitted), {"decision": "approve"}, **HTMX).status_code == 404
    assert client.post(decide_url(submitted), {"decision": "approve"}).status_code == 404
    assert client.get(f"/approvals/{submitted.pk}/").status_code == 404
    assert client.post(f"/approvals/{submitted.pk}/withdraw/").status_code == 404
    assert client.get("/approvals/999999/").status_code == 404


def test_decision_without_javascript_redirects_back(
    submitted: ApprovalRequest, client_for: Any, dave: Any
) -> None:
    response = client_for(dave).post(
        decide_url(submitted), {"decision": "approve", "next": INBOX}, follow=True
    )
    assert response.redirect_chain == [(INBOX, 302)]
    body = response.content.decode()
    assert "Churn: Sign off charter v1 — approved." in body
    assert "Nothing waits for your decision." in body


def test_decision_without_javascript_ignores_foreign_next(
    submitted: ApprovalRequest, client_for: Any, dave: Any
) -> None:
    response = client_for(dave).post(
        decide_url(submitted), {"decision": "approve", "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == INBOX


def test_refused_decision_without_javascript_shows_the_detail_page(
    submitted: ApprovalRequest, client_for: Any, dave: Any, carol: Any
) -> None:
    response = client_for(dave).post(decide_url(submitted), {"decision": "reject"})
    assert response.status_code == 400
    assert "Say why you reject it." in response.content.decode()
    assert response.templates[0].name == "governance/approval_detail.html"

    response = client_for(carol).post(decide_url(submitted), {"decision": "approve"})
    assert response.status_code == 403
    assert "Only a business approver of this project decides this." in response.content.decode()

    response = client_for(dave).post(decide_url(submitted), {"decision": "maybe"})
    assert response.status_code == 400


def test_four_eyes_against_a_user_who_holds_both_roles(
    project: Any, client_for: Any, dave: Any, alice: Any
) -> None:
    """Dave is a business approver; when he is also the one who asks (the
    service is called for him directly), he still cannot decide."""
    charter_draft_save(actor=alice, project=project, values=GOOD)
    approval = charter_submit(actor=dave, project=project)
    client = client_for(dave)

    assert client.get(INBOX).context["pending"].paginator.count == 0
    detail = client.get(f"/approvals/{approval.pk}/")
    body = detail.content.decode()
    assert "Nobody decides their own request." in body
    assert 'value="approve"' not in body
    assert "Withdraw" in body

    response = client.post(decide_url(approval), {"decision": "approve"}, **HTMX)
    assert response.status_code == 403
    assert "Nobody decides their own request." in response.content.decode()
    approval.refresh_from_db()
    assert approval.state == "pending"

    erin = UserFactory(username="erin")
    MembershipFactory(project=project, user=erin, role="business_approver")
    response = client_for(erin).post(decide_url(approval), {"decision": "approve"}, **HTMX)
    assert response.status_code == 200 and "Approved" in response.content.decode()


# --- Detail page ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("alice", 200),
        ("bob", 200),
        ("carol", 200),
        ("dave", 200),
        ("charlie", 404),
        ("admin_user", 200),
    ],
)
def test_detail_page_as_everyone(
    submitted: ApprovalRequest, client_for: Any, request: Any, who: str, status: int
) -> None:
    response = client_for(request.getfixturevalue(who)).get(f"/approvals/{submitted.pk}/")
    assert response.status_code == status
    if status != 200:
        return
    body = response.content.decode()
    # The full charter version being approved.
    for text in (
        "Subscribers cancel without warning.",
        "Classification (which category?)",
        "churned",
        "ROC AUC (roc_auc)",
        "0.8",
        "Higher is better",
        "CRM export<br>billing database",
        "Batch scoring",
        "1,500.00",
    ):
        assert text in body, text
    assert 'href="/projects/churn/charter/"' in body
    assert "A business approver of the project" in body
    assert ('value="approve"' in body) == (who == "dave")
    assert ("Withdraw" in body) == (who == "bob")


def test_detail_page_after_a_decision(
    submitted: ApprovalRequest, client_for: Any, dave: Any, bob: Any
) -> None:
    client_for(dave).post(decide_url(submitted), {"decision": "reject", "comment": "Too vague."})
    body = client_for(bob).get(f"/approvals/{submitted.pk}/").content.decode()
    assert "Rejected" in body and "by dave" in body and "Too vague." in body
    assert "Withdraw" not in body and 'value="approve"' not in body


def test_requester_withdraws(
    submitted: ApprovalRequest, client_for: Any, bob: Any, dave: Any, project: Any
) -> None:
    url = f"/approvals/{submitted.pk}/withdraw/"
    assert client_for(dave).post(url).status_code == 403
    response = client_for(bob).post(url, follow=True)
    assert response.redirect_chain == [(f"/approvals/{submitted.pk}/", 302)]
    assert "withdrawn" in response.content.decode()
    submitted.refresh_from_db()
    assert submitted.state == "withdrawn"
    assert CharterVersion.objects.get(project=project).status == CharterStatus.DRAFT
    # Once more: nothing left to withdraw.
    response = client_for(bob).post(url)
    assert response.status_code == 409
    assert "This request is already withdrawn." in response.content.decode()


# --- Notifications ------------------------------------------------------------------


def test_notifications_list_and_mark_read(
    submitted: ApprovalRequest, client_for: Any, dave: Any, charlie: Any
) -> None:
    client = client_for(dave)
    response = client.get("/notifications/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Churn: bob asks for your decision: Sign off charter v1" in body
    assert f'href="/approvals/{submitted.pk}/"' in body
    assert "Mark all read" in body and response.context["unread"] == 1

    response = client.post("/notifications/", follow=True)
    assert "1 notification marked read." in response.content.decode()
    assert response.context["unread"] == 0
    assert not Notification.objects.filter(user=dave, read_at__isnull=True).exists()

    body = client_for(charlie).get("/notifications/").content.decode()
    assert "No notifications." in body


def test_notification_links_stay_inside_the_portal(db: Any, client_for: Any, dave: Any) -> None:
    Notification.objects.create(user=dave, text="odd", url="javascript:alert(1)")
    Notification.objects.create(user=dave, text="far", url="//evil.example/")
    body = client_for(dave).get("/notifications/").content.decode()
    assert "javascript:" not in body and "evil.example" not in body


def test_inbox_is_searched_sorted_and_paged(
    submitted: ApprovalRequest, client_for: Any, bob: Any, dave: Any, project: Any
) -> None:
    for n in range(30):
        ApprovalRequest.objects.create(
            kind="charter",
            project=project,
            subject_type="charter.charterversion",
            subject_id=str(n),
            summary=f"Old request {n:02d}",
            requested_by=bob,
            state="withdrawn",
            created_at=timezone.now() - timedelta(days=n + 1),
        )
    client = client_for(bob)
    with CaptureQueriesContext(connection) as first:
        response = client.get(INBOX)
    mine = response.context["mine"]
    assert mine.paginator.count == 31 and len(mine.object_list) == 25
    assert mine.object_list[0].summary == "Sign off charter v1"  # newest first
    second = client.get(INBOX + "?page=2").context["mine"]
    assert len(second.object_list) == 6
    assert 'href="?&amp;page=2"' in response.content.decode()
    oldest = client.get(INBOX + "?sort=oldest").context["mine"].object_list[0]
    assert oldest.summary == "Old request 29"

    found = client.get(INBOX + "?q=charter+v1").context["mine"]
    assert [a.summary for a in found] == ["Sign off charter v1"]
    assert client.get(INBOX + "?q=zzz").context["mine"].paginator.count == 0
    # The approver's list is searched too.
    assert client_for(dave).get(INBOX + "?q=zzz").context["pending"].paginator.count == 0
    assert client_for(dave).get(INBOX + "?q=Sign").context["pending"].paginator.count == 1
    # An unknown sort is refused quietly: the default order, not an error.
    client = client_for(bob)
    assert client.get(INBOX + "?sort=password").status_code == 200
    # A page of 25 costs no more queries than a page of 6.
    with CaptureQueriesContext(connection) as later:
        client.get(INBOX + "?page=2")
    assert len(later.captured_queries) <= len(first.captured_queries)


def test_a_rejection_is_told_with_its_comment(
    submitted: ApprovalRequest, client_for: Any, bob: Any, dave: Any
) -> None:
    client_for(dave).post(decide_url(submitted), {"decision": "reject", "comment": "Scope unclear"})
    note = Notification.objects.get(user=bob)
    assert note.text == "Churn: dave rejected your request “Sign off charter v1”: “Scope unclear”"
    page = client_for(bob).get(f"/approvals/{submitted.pk}/").content.decode()
    assert 'class="callout rejected"' in page and "Scope unclear" in page


def test_a_long_comment_is_shortened_to_fit_a_notification(
    submitted: ApprovalRequest, client_for: Any, bob: Any, dave: Any
) -> None:
    client_for(dave).post(decide_url(submitted), {"decision": "reject", "comment": "x" * 4000})
    note = Notification.objects.get(user=bob)
    assert len(note.text) == 300 and note.text.endswith("…")
    assert "rejected your request “Sign off charter v1”: “xxx" in note.text
