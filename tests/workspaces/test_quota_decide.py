"""quota_decide itself: whose holdings count, where the limits lie, the estimate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from compute import services as compute_services
from compute.models import HOURS_PER_MONTH
from compute.services import Demand, quota_decide
from tests.factories import MembershipFactory, ProjectFactory, charter_signed_off
from workspaces import services

pytestmark = pytest.mark.django_db


def _quotas(admin: Any, project: Any, user: Any, **limits: Any) -> None:
    compute_services.quota_set(actor=admin, project=project, **limits)
    compute_services.quota_set(actor=admin, user=user, **limits)


def test_holdings_count_for_their_own_project_and_owner(
    project: Any, alice: Any, bob: Any, charlie: Any, admin_user: Any, small: Any
) -> None:
    other: Any = ProjectFactory(slug="other", created_by=charlie)
    MembershipFactory(project=other, user=charlie, role="lead")
    charter_signed_off(other)
    _quotas(admin_user, other, charlie, max_vcpus=100, max_gpus=0, max_running=100)
    for i in range(3):  # 6 vCPUs held in another project, by someone else
        services.workspace_request(actor=charlie, project=other, name=f"o{i}", size=small)
    _quotas(admin_user, project, bob, max_vcpus=2, max_gpus=0, max_running=1)
    assert quota_decide(project=project, user=bob, demand=Demand(size=small, running=1)).within
    held = services.workspace_request(actor=bob, project=project, name="mine", size=small)
    # What the resource being decided holds itself is not counted twice.
    again = Demand(size=small, running=1, resource=("workspaces.workspace", held.pk))
    assert quota_decide(project=project, user=bob, demand=again).within
    assert quota_decide(
        project=project, user=bob, demand=Demand(size=small, running=1)
    ).exceeded == [
        "Project vCPUs: 2 in use + 2 requested > 2",
        "Project running workspaces: 1 + 1 > 1",
        "Your vCPUs: 2 in use + 2 requested > 2",
        "Your running workspaces: 1 + 1 > 1",
    ]


def test_gpu_limit_is_inclusive(project: Any, bob: Any, admin_user: Any, gpu: Any) -> None:
    _quotas(admin_user, project, bob, max_vcpus=100, max_gpus=1, max_running=100)
    assert quota_decide(project=project, user=bob, demand=Demand(size=gpu)).within
    two = Demand(size=gpu, quota_nodes=2)
    assert quota_decide(project=project, user=bob, demand=two).exceeded == [
        "Project GPUs: 0 in use + 2 requested > 1",
        "Your GPUs: 0 in use + 2 requested > 1",
    ]


def test_the_estimate_is_price_times_billed_nodes(project: Any, bob: Any, small: Any) -> None:
    decision = quota_decide(
        project=project, user=bob, demand=Demand(size=small, quota_nodes=4, billed_nodes=3)
    )
    assert decision.hourly == small.hourly_price * 3
    assert decision.monthly == (small.hourly_price * 3 * HOURS_PER_MONTH).quantize(Decimal("0.01"))
