"""Compute accounting through its public API, for a resource that is not a
workspace (a training job, a serving endpoint): the same quotas and budgets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from compute import consumers
from compute.consumers import Holding
from compute.models import UsageInterval
from compute.selectors import quota_usage, resource_cost, spend_month_to_date
from compute.services import Demand, quota_decide, quota_set, usage_close, usage_open
from workspaces.models import Workspace, WorkspaceState

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
JOB = "experiments.trainingjob"  # a kind of resource compute accounting has never heard of


@pytest.fixture
def running_notebook(project: Any, bob: Any, small: Any) -> Workspace:
    """A running notebook: 2 vCPUs and one running slot of the project's quota."""
    return Workspace.objects.create(
        project=project,
        owner=bob,
        name="explore",
        provider="local",
        size=small,
        state=WorkspaceState.RUNNING,
    )


@pytest.fixture
def jobs() -> Iterator[list[Holding]]:
    """A second kind of consumer, registered the way a stage registers one."""
    held: list[Holding] = []

    def holdings(*, project_id: int | None = None, user_id: int | None = None) -> list[Holding]:
        return [
            h for h in held if project_id in (None, h.project_id) and user_id in (None, h.user_id)
        ]

    consumers.register(JOB, holdings)
    yield held
    consumers._CONSUMERS.pop(JOB)


def test_a_job_demand_is_decided_against_the_project_quota_with_the_workspaces(
    project: Any, bob: Any, admin_user: Any, small: Any, running_notebook: Workspace
) -> None:
    quota_set(actor=admin_user, project=project, max_vcpus=8, max_gpus=0, max_running=5)
    fits = Demand(size=small, quota_nodes=3, resource=(JOB, 1))  # 6 vCPUs
    assert quota_decide(project=project, user=bob, demand=fits, now=NOW).within
    too_much = Demand(size=small, quota_nodes=4, resource=(JOB, 1))  # 8 vCPUs
    decision = quota_decide(project=project, user=bob, demand=too_much, now=NOW)
    assert decision.exceeded == ["Project vCPUs: 2 in use + 8 requested > 8"]
    assert decision.hourly == small.hourly_price


def test_what_a_job_holds_counts_against_a_workspace_request(
    project: Any,
    bob: Any,
    admin_user: Any,
    small: Any,
    running_notebook: Workspace,
    jobs: list[Holding],
) -> None:
    quota_set(actor=admin_user, project=project, max_vcpus=8, max_gpus=0, max_running=5)
    jobs.append(Holding(JOB, 1, project.pk, bob.pk, vcpus=6, gpus=0, running=0))
    assert quota_usage(project=project).vcpus == 8
    assert quota_usage(project=project, exclude=(JOB, 1)).vcpus == 2
    notebook = Demand(size=small, running=1)
    decision = quota_decide(project=project, user=bob, demand=notebook, now=NOW)
    assert decision.exceeded == ["Project vCPUs: 8 in use + 2 requested > 8"]


def test_a_jobs_metered_usage_counts_against_the_project_budget(
    project: Any, bob: Any, small: Any, running_notebook: Workspace
) -> None:
    project.monthly_budget = Decimal(1)
    project.save()
    job = running_notebook.project  # any row stands in for the job: compute sees (label, pk)
    usage_open(
        resource=job,
        name="train-v3",
        project_id=project.pk,
        user_id=bob.pk,
        size=small,
        nodes=2,
        now=NOW - timedelta(hours=10),
    )
    # Opening twice meters once.
    usage_open(
        resource=job,
        name="train-v3",
        project_id=project.pk,
        user_id=bob.pk,
        size=small,
        nodes=2,
        now=NOW - timedelta(hours=9),
    )
    usage_close(resource=job, now=NOW)
    interval = UsageInterval.objects.get()
    assert (interval.resource_type, interval.resource_id) == ("projects.project", project.pk)
    expected = (small.hourly_price * 2 * 10).quantize(Decimal("0.01"))
    assert (
        resource_cost(resource_type="projects.project", resource_id=project.pk, now=NOW) == expected
    )
    assert spend_month_to_date(project=project, now=NOW).quantize(Decimal("0.01")) == expected
    decision = quota_decide(project=project, user=bob, demand=Demand(size=small), now=NOW)
    assert decision.exceeded == [f"Project budget: {expected:.2f} of 1.00 spent this month"]
