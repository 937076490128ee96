"""Who may decide a request (approval_may_decide): exact answers and reasons."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from governance.approvals import ApprovalKind, Step, register, unregister
from governance.models import ApprovalRequest
from governance.services import approval_may_decide, approval_request_create
from tests.factories import MembershipFactory, ProjectFactory, UserFactory


def _kind(name: str, step: Step) -> ApprovalKind:
    return ApprovalKind(
        name=name,
        on_approved=lambda *, request, actor: None,
        on_rejected=lambda *, request, actor: None,
        on_withdrawn=lambda *, request, actor: None,
        describe=lambda *, request: {"what": "a test"},
        steps=(step,),
    )


@pytest.fixture
def kinds() -> Iterator[None]:
    register(_kind("test-staff", Step("Platform admin", staff=True)))
    register(_kind("test-role", Step("Business sign-off", role="business_approver")))
    yield
    unregister("test-staff")
    unregister("test-role")


def _request(kind: str, project: Any, actor: Any) -> ApprovalRequest:
    return approval_request_create(
        actor=actor, kind=kind, project=project, subject=project, summary="Decide"
    )


def test_a_staff_step_is_decided_by_platform_admins_only(
    kinds: None, project: Any, alice: Any, bob: Any, dave: Any, admin_user: Any
) -> None:
    request = _request("test-staff", project, bob)
    assert approval_may_decide(user=admin_user, request=request) == (True, "")
    for member in (alice, dave):
        assert approval_may_decide(user=member, request=request) == (
            False,
            "Only a platform admin decides this.",
        )
    assert approval_may_decide(user=bob, request=request) == (
        False,
        "Nobody decides their own request.",
    )


def test_a_role_step_needs_the_role_in_this_project(
    kinds: None, project: Any, alice: Any, dave: Any, charlie: Any, admin_user: Any
) -> None:
    request = _request("test-role", project, alice)
    assert approval_may_decide(user=dave, request=request) == (True, "")
    refused = (False, "Only a business approver of this project decides this.")
    # The same role in another project does not count, nor does staff.
    other: Any = ProjectFactory(slug="other", created_by=charlie)
    MembershipFactory(project=other, user=charlie, role="business_approver")
    assert approval_may_decide(user=charlie, request=request) == refused
    assert approval_may_decide(user=admin_user, request=request) == refused
    erin: Any = UserFactory(username="erin")
    MembershipFactory(project=project, user=erin, role="validator")
    assert approval_may_decide(user=erin, request=request) == refused
