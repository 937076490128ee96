"""Withdrawing a request: only its requester, only while pending, audited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from governance.approvals import ApprovalKind, Step, register, unregister
from governance.models import ApprovalRequest, ApprovalState
from governance.services import (
    ApprovalConflict,
    approval_decide,
    approval_request_create,
    approval_withdraw,
)

KIND = "test-withdraw"


@pytest.fixture
def effects() -> Iterator[list[str]]:
    calls: list[str] = []
    register(
        ApprovalKind(
            name=KIND,
            on_approved=lambda *, request, actor: calls.append(f"approved by {actor}"),
            on_rejected=lambda *, request, actor: calls.append(f"rejected by {actor}"),
            on_withdrawn=lambda *, request, actor: calls.append(f"withdrawn by {actor}"),
            describe=lambda *, request: {"what": "a test"},
            steps=(Step("Business sign-off", role="business_approver"),),
        )
    )
    yield calls
    unregister(KIND)


def _request(project: Any, actor: Any) -> ApprovalRequest:
    return approval_request_create(
        actor=actor, kind=KIND, project=project, subject=project, summary="Sign off"
    )


def test_the_requester_withdraws_and_it_is_audited(
    project: Any, alice: Any, effects: list[str]
) -> None:
    request = _request(project, alice)
    returned = approval_withdraw(actor=alice, approval_id=request.pk)
    assert returned.state == ApprovalState.WITHDRAWN
    assert ApprovalRequest.objects.get(pk=request.pk).state == ApprovalState.WITHDRAWN
    assert effects == ["withdrawn by alice"]
    event = AuditEvent.objects.filter(action="approval.withdrawn").get()
    assert (event.actor, event.project, event.object_type, event.object_id) == (
        alice,
        project,
        "governance.approvalrequest",
        str(request.pk),
    )


@pytest.mark.parametrize("who", ["bob", "dave", "admin_user"])
def test_nobody_else_withdraws(
    project: Any, alice: Any, request: Any, who: str, effects: list[str]
) -> None:
    approval = _request(project, alice)
    with pytest.raises(PermissionDenied) as refused:
        approval_withdraw(actor=request.getfixturevalue(who), approval_id=approval.pk)
    assert str(refused.value) == "Only the requester withdraws a request."
    assert ApprovalRequest.objects.get(pk=approval.pk).state == ApprovalState.PENDING
    assert effects == []
    assert not AuditEvent.objects.filter(action="approval.withdrawn").exists()


def test_a_decided_request_is_not_withdrawn(
    project: Any, alice: Any, dave: Any, effects: list[str]
) -> None:
    approval = _request(project, alice)
    approval_decide(actor=dave, approval_id=approval.pk, approve=True)
    with pytest.raises(ApprovalConflict) as conflict:
        approval_withdraw(actor=alice, approval_id=approval.pk)
    assert conflict.value.state == ApprovalState.APPROVED
    assert effects == ["approved by dave"]
