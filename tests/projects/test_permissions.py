"""The access helpers themselves, for every cast member: 404 for outsiders (and
for things that are not in the project), 403 for writes by read-only members
and by platform admins, the membership for members, None for admins."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from projects.models import Role
from projects.permissions import LEAD_ONLY, get_membership, get_project_for_user
from tests.factories import ProjectFactory

READ = {"alice": "lead", "bob": "data_scientist", "carol": "analyst", "admin_user": None}
CAST = ["alice", "bob", "carol", "charlie", "admin_user"]


NO_SUCH_PROJECT = "No such project."
READ_ONLY = "Your role in this project is read-only."
ADMINS_READ = "Platform admins read projects; members change them."
NOT_THIS_ROLE = "Your role in this project does not allow this."


def exactly(message: str) -> str:
    """A ``match`` for pytest.raises that takes the whole message, word for word."""
    return f"^{re.escape(message)}$"


def expect(who: str, write: bool) -> tuple[type[Exception] | None, str]:
    if who == "charlie":
        return Http404, NO_SUCH_PROJECT
    if write and who == "carol":
        return PermissionDenied, READ_ONLY
    if write and who == "admin_user":
        return PermissionDenied, ADMINS_READ
    return None, ""


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize("who", CAST)
def test_get_project_for_user(project: Any, request: Any, who: str, write: bool) -> None:
    user = request.getfixturevalue(who)
    error, message = expect(who, write)
    if error:
        with pytest.raises(error, match=exactly(message)):
            get_project_for_user(user, "churn", write=write)
        return
    found, membership = get_project_for_user(user, "churn", write=write)
    assert found == project
    assert (membership.role if membership else None) == READ[who]
    assert membership is None or membership.user == user


def test_roles_restrict_members_and_refuse_admins(
    project: Any, alice: Any, bob: Any, admin_user: Any
) -> None:
    assert get_project_for_user(alice, "churn", roles=LEAD_ONLY)[1].role == Role.LEAD  # type: ignore[union-attr]
    with pytest.raises(PermissionDenied, match=exactly(NOT_THIS_ROLE)):
        get_project_for_user(bob, "churn", roles=LEAD_ONLY)
    with pytest.raises(PermissionDenied, match=exactly(ADMINS_READ)):
        get_project_for_user(admin_user, "churn", roles=LEAD_ONLY)
    # An empty set of roles still means "only these roles": nobody.
    with pytest.raises(PermissionDenied):
        get_project_for_user(alice, "churn", roles=frozenset())


def test_unknown_project_and_anonymous_users(project: Any, admin_user: Any) -> None:
    with pytest.raises(Http404, match=exactly(NO_SUCH_PROJECT)):
        get_project_for_user(admin_user, "nope")
    anonymous: Any = AnonymousUser()
    assert get_membership(anonymous, project) is None
    with pytest.raises(Http404, match=exactly(NO_SUCH_PROJECT)):
        get_project_for_user(anonymous, "churn")


def test_membership_is_of_this_project_only(project: Any, alice: Any, charlie: Any) -> None:
    other: Any = ProjectFactory(slug="other", created_by=charlie)
    assert get_membership(alice, other) is None
    assert get_membership(alice, project).role == Role.LEAD  # type: ignore[union-attr]


def test_reading_is_the_default(project: Any, carol: Any, admin_user: Any) -> None:
    assert get_project_for_user(carol, "churn")[0] == project
    assert get_project_for_user(admin_user, "churn") == (project, None)
