"""Two users start jobs at the same moment near the project's vCPU quota, on
PostgreSQL: the quota row lock makes the decisions take turns, so together
they never hold more than the quota; the rest wait for a platform admin, who
may let one run beyond it."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from compute import services as compute_services
from compute.selectors import quota_usage
from experiments import jobs
from experiments.job_models import Job, JobState
from governance.services import approval_decide
from tests.experiments import jobs_data
from tests.experiments.jobs_data import ready_split
from tests.workspaces.test_quota_race import _all_at_once

S = JobState
THREADS = 8


@pytest.mark.django_db(transaction=True)
def test_two_users_jobs_together_stay_within_the_project_vcpus_and_an_admin_approves_more(
    project: Any, alice: Any, bob: Any, admin_user: Any
) -> None:
    split = ready_split(project=project, actor=alice)
    size = jobs_data.size()  # 2 vCPUs
    # Room for three 2-vCPU jobs in the project; each user alone could take all.
    compute_services.quota_set(
        actor=admin_user, project=project, max_vcpus=6, max_gpus=0, max_running=100
    )
    for user in (alice, bob):
        compute_services.quota_set(
            actor=admin_user, user=user, max_vcpus=1000, max_gpus=0, max_running=100
        )
    owners = [alice if i % 2 else bob for i in range(THREADS)]
    errors = _all_at_once(
        [
            partial(
                jobs.job_create,
                actor=owner,
                project=project,
                split=split,
                size=size,
                name=f"race {i}",
            )
            for i, owner in enumerate(owners)
        ]
    )
    assert errors == []
    states = list(Job.objects.values_list("state", flat=True))
    assert len(states) == THREADS
    assert states.count(S.QUEUED) == 3
    assert states.count(S.WAITING_FOR_COMPUTE) == THREADS - 3
    assert quota_usage(project=project).vcpus == 6
    # Both users' jobs count against the one project quota.
    queued_by = set(Job.objects.filter(state=S.QUEUED).values_list("created_by", flat=True))
    waiting = Job.objects.filter(state=S.WAITING_FOR_COMPUTE).order_by("pk")
    assert all(job.approval_id for job in waiting)
    assert all("Project vCPUs: 6 in use + 2 requested > 6" in job.quota_exceeded for job in waiting)
    assert queued_by <= {alice.pk, bob.pk}
    # Over quota, a platform admin decides: approved, it is queued beyond the quota.
    chosen = waiting.first()
    assert chosen is not None and chosen.approval_id is not None
    approval_decide(actor=admin_user, approval_id=chosen.approval_id, approve=True, comment="ok")
    chosen.refresh_from_db()
    assert chosen.state == S.QUEUED
    assert quota_usage(project=project).vcpus == 8
    assert Job.objects.filter(state=S.WAITING_FOR_COMPUTE).count() == THREADS - 4
