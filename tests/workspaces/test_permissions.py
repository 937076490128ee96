"""The workspace access helper for every cast member."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from workspaces import services as workspace_services
from workspaces.permissions import get_workspace_for_user

READ = {"alice": "lead", "bob": "data_scientist", "carol": "analyst", "admin_user": None}
CAST = ["alice", "bob", "carol", "charlie", "admin_user"]


def expect(who: str, write: bool) -> tuple[type[Exception] | None, str]:
    if who == "charlie":
        return Http404, "No such project"
    if write and who == "carol":
        return PermissionDenied, "read-only"
    if write and who == "admin_user":
        return PermissionDenied, "Platform admins read projects"
    return None, ""


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize("who", CAST)
def test_get_workspace_for_user(
    project: Any, bob: Any, small: Any, request: Any, who: str, write: bool
) -> None:
    ws = workspace_services.workspace_request(actor=bob, project=project, name="nb", size=small)
    user = request.getfixturevalue(who)
    error, message = expect(who, write)
    if error:
        with pytest.raises(error, match=message):
            get_workspace_for_user(user, "churn", ws.pk, write=write)
        return
    found, membership = get_workspace_for_user(user, "churn", ws.pk, write=write)
    assert found == ws and found.project == project
    assert (membership.role if membership else None) == READ[who]
    with pytest.raises(Http404, match=r"^No such workspace\.$"):
        get_workspace_for_user(user, "churn", ws.pk + 1000, write=write)


def test_reading_is_the_default(project: Any, bob: Any, carol: Any, small: Any) -> None:
    ws = workspace_services.workspace_request(actor=bob, project=project, name="nb", size=small)
    assert get_workspace_for_user(carol, "churn", ws.pk)[0] == ws


def test_a_workspace_of_another_project_is_not_found_through_this_one(
    project: Any, alice: Any, bob: Any, small: Any
) -> None:
    """A member of both projects asks for project B's workspace under project
    A's address: not found, word for word, though the workspace exists."""
    from projects.services import membership_add, project_create
    from tests.factories import charter_signed_off

    other = project_create(actor=alice, name="Other")
    membership_add(actor=alice, project=other, user=bob, role="data_scientist")
    charter_signed_off(other, by=alice, author=alice)
    theirs = workspace_services.workspace_request(actor=bob, project=other, name="nb", size=small)
    assert get_workspace_for_user(bob, other.slug, theirs.pk)[0] == theirs
    with pytest.raises(Http404, match=r"^No such workspace\.$"):
        get_workspace_for_user(bob, "churn", theirs.pk)
