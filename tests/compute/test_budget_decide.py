"""Budgets in quota_decide, at their edges: what is counted (this project's
or this user's spend, this month as of the decision's ``now``), when the
budget is reached, and the words of the refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from compute.selectors import spend_month_to_date
from compute.services import Demand, quota_decide, quota_set, usage_close, usage_open
from projects.services import membership_add, project_create

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)


def _spend(resource: Any, *, project: Any, user: Any, size: Any, hours: int, end: datetime) -> None:
    usage_open(
        resource=resource,
        name=f"r{resource.pk}",
        project_id=project.pk,
        user_id=user.pk,
        size=size,
        nodes=1,
        now=end - timedelta(hours=hours),
    )
    usage_close(resource=resource, now=end)


@pytest.fixture
def other(alice: Any, bob: Any) -> Any:
    project = project_create(actor=alice, name="Other")
    membership_add(actor=alice, project=project, user=bob, role="data_scientist")
    return project


def test_the_project_budget_is_reached_at_equality(project: Any, bob: Any, small: Any) -> None:
    _spend(project, project=project, user=bob, size=small, hours=10, end=NOW)
    spent = spend_month_to_date(project=project, now=NOW)
    assert spent == small.hourly_price * 10
    project.monthly_budget = spent + Decimal("0.01")
    project.save()
    assert quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW).within
    project.monthly_budget = spent
    project.save()
    decision = quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW)
    assert decision.exceeded == [f"Project budget: {spent:.2f} of {spent:.2f} spent this month"]


def test_only_this_project_s_spend_counts_against_its_budget(
    project: Any, other: Any, bob: Any, small: Any
) -> None:
    _spend(other, project=other, user=bob, size=small, hours=10, end=NOW)
    project.monthly_budget = small.hourly_price
    project.save()
    assert quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW).within
    other.monthly_budget = small.hourly_price
    other.save()
    assert not quota_decide(project=other, user=bob, demand=Demand(size=small), now=NOW).within


def test_last_month_s_spend_does_not_count(project: Any, bob: Any, small: Any) -> None:
    """As of the decision's ``now``: spend in November counts on 15 November
    and not on 15 December (nor today, whatever today is)."""
    _spend(project, project=project, user=bob, size=small, hours=10, end=NOW)
    project.monthly_budget = small.hourly_price
    project.save()
    assert not quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW).within
    december = NOW + timedelta(days=30)
    assert quota_decide(project=project, user=bob, demand=Demand(size=small), now=december).within


def test_a_user_s_budget_counts_their_spend_across_projects(
    project: Any, other: Any, alice: Any, bob: Any, admin_user: Any, small: Any
) -> None:
    _spend(project, project=project, user=bob, size=small, hours=4, end=NOW)
    _spend(other, project=other, user=bob, size=small, hours=6, end=NOW)
    spent = small.hourly_price * 10
    quota_set(actor=admin_user, user=bob, monthly_budget=spent)
    decision = quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW)
    assert decision.exceeded == [f"Your budget: {spent:.2f} of {spent:.2f} spent this month"]
    # Alice spent nothing: bob's spend is not hers.
    quota_set(actor=admin_user, user=alice, monthly_budget=small.hourly_price)
    assert quota_decide(project=project, user=alice, demand=Demand(size=small), now=NOW).within
    # A cent more of budget and bob is within; in December his November spend is gone.
    quota_set(actor=admin_user, user=bob, monthly_budget=spent + Decimal("0.01"))
    assert quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW).within
    quota_set(actor=admin_user, user=bob, monthly_budget=small.hourly_price)
    december = NOW + timedelta(days=30)
    assert quota_decide(project=project, user=bob, demand=Demand(size=small), now=december).within


def test_a_project_quota_s_budget_overrides_the_project_s_own(
    project: Any, bob: Any, admin_user: Any, small: Any
) -> None:
    _spend(project, project=project, user=bob, size=small, hours=10, end=NOW)
    spent = small.hourly_price * 10
    project.monthly_budget = Decimal(10**6)
    project.save()
    assert quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW).within
    quota_set(actor=admin_user, project=project, monthly_budget=spent)
    decision = quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW)
    assert decision.exceeded == [f"Project budget: {spent:.2f} of {spent:.2f} spent this month"]
