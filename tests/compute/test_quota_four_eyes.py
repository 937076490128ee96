"""Four eyes on quotas: an admin who is a member of a project does not change
its quota, nor an admin their own; another admin does."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from compute.models import Quota
from compute.services import quota_set
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture
def member_admin(project: Any) -> Any:
    user: Any = UserFactory(username="insider", is_staff=True)
    MembershipFactory(project=project, user=user, role="lead")
    return user


def test_an_admin_who_is_a_member_cannot_raise_the_projects_quota(
    project: Any, admin_user: Any, member_admin: Any
) -> None:
    with pytest.raises(PermissionDenied, match="member of this project; another platform admin"):
        quota_set(actor=member_admin, project=project, max_gpus=8)
    assert not Quota.objects.filter(project=project, max_gpus=8).exists()
    refused = AuditEvent.objects.get(action="quota.change_refused")
    assert refused.actor_username == "insider"
    assert refused.payload["subject"] == "project:churn"

    quota = quota_set(actor=admin_user, project=project, max_gpus=8)
    assert quota.max_gpus == 8


def test_an_admin_does_not_change_their_own_quota(
    db: Any, admin_user: Any, member_admin: Any
) -> None:
    with pytest.raises(PermissionDenied, match="your own quota"):
        quota_set(actor=admin_user, user=admin_user, max_vcpus=512)
    assert quota_set(actor=member_admin, user=admin_user, max_vcpus=512).max_vcpus == 512


def test_the_api_answers_403_and_says_why(project: Any, member_admin: Any, api_for: Any) -> None:
    response = api_for(member_admin).put(
        "/api/quotas/projects/churn/",
        {"max_vcpus": 64, "max_gpus": 4, "max_running": 9},
        format="json",
    )
    assert response.status_code == 403
    assert "another platform admin changes its quota" in response.json()["detail"]
