"""Four eyes apply to platform admins too: an admin who is a member of a
project does not decide its staff-only requests; another admin does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from accounts.models import Notification
from audit.models import AuditEvent
from governance.approvals import ApprovalKind, Step, register, unregister
from governance.models import ApprovalState
from governance.selectors import pending_approvals_for_user
from governance.services import approval_decide, approval_request_create
from tests.factories import MembershipFactory, UserFactory

KIND = "test-over-quota"


@pytest.fixture
def staff_kind() -> Iterator[list[str]]:
    calls: list[str] = []
    register(
        ApprovalKind(
            name=KIND,
            on_approved=lambda *, request, actor: calls.append(f"approved by {actor.username}"),
            on_rejected=lambda *, request, actor: None,
            on_withdrawn=lambda *, request, actor: None,
            describe=lambda *, request: {},
            steps=(Step("Platform admin", staff=True),),
        )
    )
    yield calls
    unregister(KIND)


@pytest.fixture
def member_admin(project: Any) -> Any:
    user: Any = UserFactory(username="insider", is_staff=True)
    MembershipFactory(project=project, user=user, role="data_scientist")
    return user


def test_an_admin_who_is_a_member_does_not_decide_the_projects_request(
    project: Any, bob: Any, admin_user: Any, member_admin: Any, staff_kind: list[str]
) -> None:
    request = approval_request_create(
        actor=bob, kind=KIND, project=project, subject=project, summary="4 GPUs"
    )
    # Not in the insider's inbox, nor notified to them; in the other admin's.
    assert request not in pending_approvals_for_user(user=member_admin)
    assert request in pending_approvals_for_user(user=admin_user)
    assert not Notification.objects.filter(user=member_admin).exists()
    assert Notification.objects.filter(user=admin_user).exists()

    with pytest.raises(
        PermissionDenied,
        match=r"^You are a member of this project; another platform admin decides this\.$",
    ):
        approval_decide(actor=member_admin, approval_id=request.pk, approve=True)
    request.refresh_from_db()
    assert request.state == ApprovalState.PENDING
    assert AuditEvent.objects.filter(
        action="approval.decision_refused", actor=member_admin
    ).exists()

    approval_decide(actor=admin_user, approval_id=request.pk, approve=True)
    assert staff_kind == ["approved by admin"]


def test_an_admin_who_requested_does_not_decide_either(
    project: Any, admin_user: Any, member_admin: Any, staff_kind: list[str]
) -> None:
    request = approval_request_create(
        actor=member_admin, kind=KIND, project=project, subject=project, summary="mine"
    )
    with pytest.raises(PermissionDenied, match="own request"):
        approval_decide(actor=member_admin, approval_id=request.pk, approve=True)
    approval_decide(actor=admin_user, approval_id=request.pk, approve=True)
    assert staff_kind == ["approved by admin"]
