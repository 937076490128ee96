"""Charters: versioning, validation, sign-off through the approval mechanism."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.models import Notification
from audit.models import AuditEvent
from audit.services import audit_chain_verify
from charter.models import CharterStatus, CharterVersion
from charter.services import charter_draft_save, charter_submit
from governance.models import ApprovalRequest
from governance.services import ApprovalConflict, approval_decide
from tests.factories import MembershipFactory


@pytest.fixture
def project(project_unsigned: Any) -> Any:
    """These tests write the charter themselves: the project starts without one."""
    return project_unsigned


GOOD = {
    "business_problem": "Subscribers cancel without warning.",
    "objective": "Decide whom the retention team calls first each week.",
    "question_type": "classification",
    "target_variable": "churned",
    "success_metric": "roc_auc",
    "threshold": 0.8,
    "scope": "Consumer subscriptions in the EU.",
    "out_of_scope": "Business accounts.",
    "data_sources": ["CRM export", "billing database"],
    "deployment_mode": "batch",
    "stakeholders": "Head of retention",
    "cost_ceiling": "1500.00",
}


def charter_url(project: Any, rest: str = "") -> str:
    return f"/api/projects/{project.slug}/charter/{rest}"


def submit_good_charter(api: Any, project: Any) -> dict[str, Any]:
    assert api.put(charter_url(project), GOOD, format="json").status_code == 200
    response = api.post(charter_url(project, "submit/"))
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("carol", 403), ("dave", 403), ("charlie", 404)],
)
def test_who_may_write_the_charter(
    project: Any, api_for: Any, request: Any, who: str, status: int
) -> None:
    response = api_for(request.getfixturevalue(who)).put(charter_url(project), GOOD, format="json")
    assert response.status_code == status
    assert CharterVersion.objects.filter(project=project).exists() == (status == 200)


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("carol", 200), ("dave", 200), ("charlie", 404)],
)
def test_who_may_read_the_charter(
    project: Any, api_for: Any, alice: Any, request: Any, who: str, status: int
) -> None:
    charter_draft_save(actor=alice, project=project, values=GOOD)
    api = api_for(request.getfixturevalue(who))
    assert api.get(charter_url(project)).status_code == status
    assert api.get(charter_url(project, "versions/")).status_code == status
    assert api.get(charter_url(project, "versions/1/")).status_code == status


def test_no_charter_yet_is_404_with_a_reason(project: Any, api_for: Any, alice: Any) -> None:
    response = api_for(alice).get(charter_url(project))
    assert response.status_code == 404
    assert "no charter yet" in response.json()["detail"]


def test_direction_is_derived_from_the_metric(project: Any, alice: Any) -> None:
    draft = charter_draft_save(actor=alice, project=project, values=GOOD)
    assert draft.direction == "higher"
    draft = charter_draft_save(
        actor=alice,
        project=project,
        values={"question_type": "regression", "success_metric": "rmse", "threshold": 12.5},
    )
    assert draft.direction == "lower"
    assert draft.number == 1  # still the same draft


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"question_type": "regression", "success_metric": "accuracy"},
            "success_metric",
            "choose one of: rmse, mae, mape, r2",
        ),
        (
            {"question_type": "classification", "success_metric": "accuracy", "threshold": 1.5},
            "threshold",
            "Accuracy lies in [0, 1]; 1.5 is outside it.",
        ),
        (
            {"question_type": "clustering", "success_metric": "silhouette", "threshold": -2},
            "threshold",
            "[-1, 1]",
        ),
        (
            {"question_type": "regression", "success_metric": "rmse", "threshold": -1},
            "threshold",
            "[0, ∞]",
        ),
    ],
)
def test_inconsistent_charter_is_refused_with_a_clear_message(
    project: Any, api_for: Any, alice: Any, values: dict[str, Any], field: str, message: str
) -> None:
    response = api_for(alice).put(charter_url(project), values, format="json")
    assert response.status_code == 400
    assert any(message in m for m in response.json()[field]), response.json()
    assert not CharterVersion.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="charter.").exists()


def test_unknown_choices_are_400(project: Any, api_for: Any, alice: Any) -> None:
    response = api_for(alice).put(
        charter_url(project),
        {"question_type": "astrology", "success_metric": "vibes", "threshold": "high"},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"question_type", "success_metric", "threshold"}


def test_submit_requires_a_complete_charter(project: Any, api_for: Any, alice: Any) -> None:
    api = api_for(alice)
    api.put(charter_url(project), {"question_type": "classification"}, format="json")
    response = api.post(charter_url(project, "submit/"))
    assert response.status_code == 400
    body = response.json()
    for field in [
        "business_problem",
        "objective",
        "success_metric",
        "threshold",
        "target_variable",
    ]:
        assert field in body, field
    assert not ApprovalRequest.objects.exists()
    assert CharterVersion.objects.get().status == CharterStatus.DRAFT


def test_clustering_needs_no_target(project: Any, alice: Any) -> None:
    values = {
        **GOOD,
        "question_type": "clustering",
        "success_metric": "silhouette",
        "threshold": 0.3,
        "target_variable": "",
    }
    charter_draft_save(actor=alice, project=project, values=values)
    request = charter_submit(actor=alice, project=project)
    assert request.state == "pending"


def test_submit_without_draft(project: Any, api_for: Any, alice: Any) -> None:
    response = api_for(alice).post(charter_url(project, "submit/"))
    assert response.status_code == 400
    assert "no draft" in str(response.json())


def test_full_sign_off_flow(
    project: Any,
    api_for: Any,
    alice: Any,
    bob: Any,
    dave: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        approval = submit_good_charter(api_for(bob), project)
    assert approval["state"] == "pending"
    assert approval["required_role"] == "business_approver"
    assert approval["requested_by"] == "bob"
    version = CharterVersion.objects.get()
    assert version.status == CharterStatus.SUBMITTED

    # The approver was told, in the app and by e-mail.
    assert Notification.objects.filter(user=dave).count() == 1
    assert [m.to for m in mail.outbox] == [["dave@example.com"]]

    # The submitted version is frozen: editing opens version 2.
    api_for(bob).put(charter_url(project), {"scope": "EU and UK"}, format="json")
    assert list(project.charters.values_list("number", "status")) == [
        (2, "draft"),
        (1, "submitted"),
    ]

    pending = api_for(dave).get("/api/approvals/", {"state": "pending"}).json()
    assert [a["id"] for a in pending["results"]] == [approval["id"]]
    assert pending["results"][0]["may_decide"] is True

    detail = api_for(dave).get(f"/api/approvals/{approval['id']}/").json()
    assert detail["subject"]["version"] == 1
    assert detail["subject"]["success_metric"] == "roc_auc"

    response = api_for(dave).post(f"/api/approvals/{approval['id']}/approve/", {"comment": "ok"})
    assert response.status_code == 200
    assert response.json()["state"] == "approved"
    version.refresh_from_db()
    project.refresh_from_db()
    assert version.status == CharterStatus.APPROVED and version.decided_by == dave
    # v1 is signed off, but v2 is the newest: the project stays at the charter gate.
    assert project.stage == "charter"

    # Submitting v2 and approving it moves the project on.
    v2 = api_for(bob).post(charter_url(project, "submit/")).json()
    api_for(dave).post(f"/api/approvals/{v2['id']}/approve/", {})
    project.refresh_from_db()
    assert project.stage == "data"

    # An edit after sign-off opens v3 and sends the project back to the charter gate.
    api_for(bob).put(
        charter_url(project), {"stakeholders": "Head of retention, CFO"}, format="json"
    )
    project.refresh_from_db()
    assert project.stage == "charter"
    assert project.charters.get(number=3).status == CharterStatus.DRAFT
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "charter.submitted",
        "approval.requested",
        "approval.approved",
        "project.stage_changed",
        "charter.draft_opened",
    } <= actions
    assert audit_chain_verify() is None


def test_newer_submission_supersedes_the_pending_one(project: Any, alice: Any) -> None:
    charter_draft_save(actor=alice, project=project, values=GOOD)
    first = charter_submit(actor=alice, project=project)
    charter_draft_save(actor=alice, project=project, values={"scope": "Everywhere"})
    second = charter_submit(actor=alice, project=project)
    first.refresh_from_db()
    assert first.state == "superseded"
    assert second.state == "pending"
    assert project.charters.get(number=1).status == CharterStatus.SUPERSEDED


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 403), ("bob", 403), ("carol", 403), ("charlie", 404), ("admin_user", 403)],
)
def test_only_a_business_approver_decides(
    project: Any, api_for: Any, alice: Any, request: Any, who: str, status: int
) -> None:
    approval = submit_good_charter(api_for(alice), project)
    user = request.getfixturevalue(who)
    response = api_for(user).post(f"/api/approvals/{approval['id']}/approve/", {})
    assert response.status_code == status
    assert ApprovalRequest.objects.get().state == "pending"


def test_four_eyes_against_a_user_holding_both_roles(
    project: Any, api_for: Any, dave: Any, admin_user: Any
) -> None:
    # A membership carries one role, and business approvers cannot write a
    # charter, so "both roles" here is a lead whose request names the lead role
    # as decider and who is a platform admin besides: the rule must still hold.
    dave.is_staff = True
    dave.save()
    from tests.factories import ProjectFactory

    other: Any = ProjectFactory(slug="other")
    MembershipFactory(project=other, user=dave, role="lead")
    charter_draft_save(actor=dave, project=other, values=GOOD)
    own = charter_submit(actor=dave, project=other)
    # Even with the approver role in the project, nobody decides their own request.
    own.required_role = "lead"
    own.save(update_fields=["required_role"])
    response = api_for(dave).post(f"/api/approvals/{own.pk}/approve/", {})
    assert response.status_code == 403
    assert "own request" in response.json()["detail"]
    assert AuditEvent.objects.filter(action="approval.decision_refused").count() == 1


def test_rejection_needs_a_comment(project: Any, api_for: Any, alice: Any, dave: Any) -> None:
    approval = submit_good_charter(api_for(alice), project)
    response = api_for(dave).post(f"/api/approvals/{approval['id']}/reject/", {"comment": " "})
    assert response.status_code == 400
    assert response.json() == {"comment": ["Say why you reject it."]}
    response = api_for(dave).post(
        f"/api/approvals/{approval['id']}/reject/", {"comment": "Threshold too low."}
    )
    assert response.status_code == 200
    assert CharterVersion.objects.get().status == CharterStatus.REJECTED


def test_decided_request_cannot_be_decided_again(
    project: Any, api_for: Any, alice: Any, dave: Any
) -> None:
    approval = submit_good_charter(api_for(alice), project)
    url = f"/api/approvals/{approval['id']}/"
    assert api_for(dave).post(url + "approve/", {}).status_code == 200
    response = api_for(dave).post(url + "reject/", {"comment": "changed my mind"})
    assert response.status_code == 409
    assert response.json() == {"detail": "This request is already approved.", "state": "approved"}


def test_requester_withdraws(project: Any, api_for: Any, alice: Any, dave: Any) -> None:
    approval = submit_good_charter(api_for(alice), project)
    url = f"/api/approvals/{approval['id']}/withdraw/"
    assert api_for(dave).post(url).status_code == 403
    assert api_for(alice).post(url).json()["state"] == "withdrawn"
    assert CharterVersion.objects.get().status == CharterStatus.DRAFT
    assert api_for(alice).post(url).status_code == 409


def test_approvals_are_invisible_to_outsiders(
    project: Any, api_for: Any, alice: Any, charlie: Any
) -> None:
    approval = submit_good_charter(api_for(alice), project)
    assert api_for(charlie).get(f"/api/approvals/{approval['id']}/").status_code == 404
    assert api_for(charlie).post(f"/api/approvals/{approval['id']}/approve/").status_code == 404
    assert api_for(charlie).get("/api/approvals/").json()["count"] == 0
    assert api_for(alice).get("/api/approvals/", {"state": "bogus"}).status_code == 400


def test_concurrent_approve_and_reject(transactional_db: Any, project: Any, alice: Any) -> None:
    from tests.factories import UserFactory

    erin = UserFactory(username="erin")
    MembershipFactory(project=project, user=erin, role="business_approver")
    dave = project.memberships.get(role="business_approver", user__username="dave").user
    charter_draft_save(actor=alice, project=project, values=GOOD)
    request = charter_submit(actor=alice, project=project)

    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def decide(user: Any, approve: bool) -> None:
        try:
            barrier.wait()
            approval_decide(actor=user, approval_id=request.pk, approve=approve, comment="why not")
            outcomes[user.username] = "decided"
        except ApprovalConflict:
            outcomes[user.username] = "conflict"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(dave, True)),
        threading.Thread(target=decide, args=(erin, False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["conflict", "decided"]
    request.refresh_from_db()
    assert request.state in ("approved", "rejected")
    decided = AuditEvent.objects.filter(action__in=["approval.approved", "approval.rejected"])
    refused = AuditEvent.objects.filter(action="approval.decision_refused")
    assert decided.count() == 1 and refused.count() == 1
    assert audit_chain_verify() is None


def test_unknown_fields_are_refused_by_the_service(project: Any, alice: Any) -> None:
    with pytest.raises(ValidationError):
        charter_draft_save(actor=alice, project=project, values={"status": "approved"})


def test_the_rejection_comment_shows_on_the_charter_and_the_project_page(
    project: Any, api_for: Any, client_for: Any, alice: Any, dave: Any
) -> None:
    approval = submit_good_charter(api_for(alice), project)
    comment = "Threshold too low for <the> regulator."
    api_for(dave).post(f"/api/approvals/{approval['id']}/reject/", {"comment": comment})
    page = client_for(alice)
    for url in (f"/projects/{project.slug}/charter/", f"/projects/{project.slug}/"):
        html = page.get(url).content.decode()
        assert "rejected charter v1" in html
        # The comment is shown once, escaped.
        assert html.count("Threshold too low for &lt;the&gt; regulator.") == 1
    # A draft written in answer still shows what it answers.
    charter_draft_save(actor=alice, project=project, values={**GOOD, "objective": "Revised"})
    assert "rejected charter v1" in page.get(f"/projects/{project.slug}/charter/").content.decode()
    # Submitting the revision replaces the rejection with the pending sign-off.
    charter_submit(actor=alice, project=project)
    assert (
        "rejected charter v1" not in page.get(f"/projects/{project.slug}/charter/").content.decode()
    )
    assert "rejected charter v1" not in page.get(f"/projects/{project.slug}/").content.decode()
