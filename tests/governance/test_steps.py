"""Multi-step gates: a chain of sign-offs, each by someone else, in order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from governance.approvals import ApprovalKind, Step, register, unregister
from governance.models import ApprovalRequest, ApprovalState
from governance.selectors import pending_approvals_for_user
from governance.services import (
    ApprovalConflict,
    approval_decide,
    approval_request_create,
    approval_withdraw,
)
from tests.factories import MembershipFactory, UserFactory

KIND = "test-two-step"


@pytest.fixture
def effects() -> Iterator[list[str]]:
    """Register a two-step kind (validator, then business approver) whose
    effects are recorded in the list."""
    calls: list[str] = []
    register(
        ApprovalKind(
            name=KIND,
            on_approved=lambda *, request, actor: calls.append(f"approved by {actor}"),
            on_rejected=lambda *, request, actor: calls.append(f"rejected by {actor}"),
            on_withdrawn=lambda *, request, actor: calls.append(f"withdrawn by {actor}"),
            describe=lambda *, request: {"what": "a model version"},
            steps=(
                Step("Technical validation", role="validator"),
                Step("Business sign-off", role="business_approver"),
            ),
        )
    )
    yield calls
    unregister(KIND)


@pytest.fixture
def vera(project: Any) -> Any:
    user = UserFactory(username="vera")
    MembershipFactory(project=project, user=user, role="validator")
    return user


def _request(project: Any, actor: Any) -> ApprovalRequest:
    return approval_request_create(
        actor=actor, kind=KIND, project=project, subject=project, summary="Deploy v3"
    )


def test_steps_are_decided_in_order_and_the_effect_runs_after_the_last(
    project: Any, alice: Any, dave: Any, vera: Any, effects: list[str]
) -> None:
    first = _request(project, alice)
    assert (first.step, first.required_role) == (0, "validator")
    # The business approver cannot decide the technical step.
    with pytest.raises(PermissionDenied):
        approval_decide(actor=dave, approval_id=first.pk, approve=True)
    assert first not in pending_approvals_for_user(user=dave)
    assert first in pending_approvals_for_user(user=vera)

    approval_decide(actor=vera, approval_id=first.pk, approve=True, comment="metrics hold")
    assert effects == []  # one step is not the gate
    second = ApprovalRequest.objects.get(previous=first)
    assert (second.step, second.required_role, second.state) == (1, "business_approver", "pending")
    assert second.requested_by == alice
    assert second in pending_approvals_for_user(user=dave)
    assert second not in pending_approvals_for_user(user=vera)

    approval_decide(actor=dave, approval_id=second.pk, approve=True)
    assert effects == ["approved by dave"]
    with pytest.raises(ApprovalConflict):
        approval_decide(actor=dave, approval_id=second.pk, approve=True)
    steps = AuditEvent.objects.filter(action="approval.approved").values_list(
        "payload__step", flat=True
    )
    assert sorted(steps) == [0, 1]


def test_nobody_decides_two_steps_of_one_chain(
    project: Any, alice: Any, admin_user: Any, effects: list[str]
) -> None:
    register(
        ApprovalKind(
            name="test-admins",
            on_approved=lambda *, request, actor: effects.append("approved"),
            on_rejected=lambda *, request, actor: None,
            on_withdrawn=lambda *, request, actor: None,
            describe=lambda *, request: {},
            steps=(Step("First admin", staff=True), Step("Second admin", staff=True)),
        )
    )
    try:
        other_admin: Any = UserFactory(username="admin2", is_staff=True)
        first = approval_request_create(
            actor=alice, kind="test-admins", project=project, subject=project, summary="x"
        )
        approval_decide(actor=admin_user, approval_id=first.pk, approve=True)
        second = ApprovalRequest.objects.get(previous=first)
        assert second not in pending_approvals_for_user(user=admin_user)
        earlier = "You decided an earlier step of this request; someone else decides this one."
        with pytest.raises(PermissionDenied, match=f"^{re.escape(earlier)}$"):
            approval_decide(actor=admin_user, approval_id=second.pk, approve=True)
        assert AuditEvent.objects.filter(action="approval.decision_refused").count() == 1
        assert second.__class__.objects.get(pk=second.pk).state == ApprovalState.PENDING
        approval_decide(actor=other_admin, approval_id=second.pk, approve=True)
        assert effects == ["approved"]
    finally:
        unregister("test-admins")


def test_a_rejection_at_any_step_ends_the_chain(
    project: Any, alice: Any, dave: Any, vera: Any, effects: list[str]
) -> None:
    first = _request(project, alice)
    approval_decide(actor=vera, approval_id=first.pk, approve=True)
    second = ApprovalRequest.objects.get(previous=first)
    approval_decide(actor=dave, approval_id=second.pk, approve=False, comment="not this quarter")
    assert effects == ["rejected by dave"]
    assert not ApprovalRequest.objects.filter(previous=second).exists()


def test_the_requester_withdraws_at_a_later_step(
    project: Any, alice: Any, vera: Any, effects: list[str]
) -> None:
    first = _request(project, alice)
    approval_decide(actor=vera, approval_id=first.pk, approve=True)
    second = ApprovalRequest.objects.get(previous=first)
    with pytest.raises(PermissionDenied):
        approval_withdraw(actor=vera, approval_id=second.pk)
    approval_withdraw(actor=alice, approval_id=second.pk)
    assert effects == ["withdrawn by alice"]


def test_a_new_request_supersedes_a_chain_waiting_at_its_second_step(
    project: Any, alice: Any, vera: Any, effects: list[str]
) -> None:
    first = _request(project, alice)
    approval_decide(actor=vera, approval_id=first.pk, approve=True)
    second = ApprovalRequest.objects.get(previous=first)
    again = _request(project, alice)
    second.refresh_from_db()
    assert second.state == ApprovalState.SUPERSEDED
    assert (again.step, again.state) == (0, ApprovalState.PENDING)
