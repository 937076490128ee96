"""Training jobs' services: the charter gate, quotas and approval, access,
bad input, cancel before the provider holds the job, re-run, and the run
each job logs into."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from audit.models import AuditEvent
from charter.gates import CharterNotSignedOff
from compute.models import Quota
from compute.selectors import quota_usage
from experiments import jobs
from experiments.job_models import Job, JobState
from experiments.models import Run, RunInput, RunStatus, RunTag
from governance.models import ApprovalRequest, ApprovalState
from governance.services import approval_decide
from tests.experiments import jobs_data
from tests.experiments.jobs_data import ready_split
from tests.factories import ProjectFactory

S = JobState


@pytest.fixture
def small(db: Any) -> Any:
    return jobs_data.size()


@pytest.fixture
def split(project: Any, alice: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return ready_split(project=project, actor=alice, callbacks=django_capture_on_commit_callbacks)


def run_of(job: Job) -> Run:
    assert job.run is not None
    return job.run


def create(
    bob: Any, project: Any, split: Any, size: Any, callbacks: Any, **kwargs: Any
) -> tuple[Job, list[Any]]:
    with callbacks() as sent:
        job = jobs.job_create(actor=bob, project=project, split=split, size=size, **kwargs)
    job.refresh_from_db()
    return job, sent


def test_a_job_within_quota_is_queued_with_its_run_tagged_and_its_inputs_recorded(
    project: Any, bob: Any, split: Any, small: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job, sent = create(bob, project, split, small, django_capture_on_commit_callbacks)
    assert job.state == S.QUEUED
    assert len(sent) == 1  # the training task, after commit
    assert job.lease_expires_at is not None and job.lease_owner == ""
    assert job.provider_name == f"sg-job-{job.pk}"
    assert job.command == (
        "python baseline.py --task=classification --target=churned --metric=roc_auc --family=gbm"
    )
    assert len(job.code_digest) == 64 and job.code_digest == jobs.template_digest("baseline")
    assert job.parameters["charter_version"] == 1
    run = job.run
    assert run is not None and run.status == RunStatus.RUNNING
    assert run.experiment.name == "job-baseline"
    tags = dict(RunTag.objects.filter(run=run).values_list("key", "value"))
    assert tags["stagegate.job"] == str(job.pk)
    assert tags["stagegate.split"] == str(split.pk)
    assert tags["stagegate.code_digest"] == job.code_digest
    contexts = sorted(RunInput.objects.filter(run=run).values_list("context", "source"))
    assert contexts == [("test", f"split:{split.pk}:test"), ("train", f"split:{split.pk}:train")]
    actions = list(
        AuditEvent.objects.filter(object_type="experiments.job").values_list("action", flat=True)
    )
    assert sorted(actions) == ["job.created", "job.queued"]
    # It holds its size against the project's quota until it ends.
    assert quota_usage(project=project).vcpus == small.vcpus


def test_no_signed_charter_no_job_and_nothing_written(
    project_unsigned: Any,
    bob: Any,
    alice: Any,
    small: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    split = ready_split(
        project=project_unsigned, actor=alice, callbacks=django_capture_on_commit_callbacks
    )
    with pytest.raises(CharterNotSignedOff, match="Starting a training job needs a signed-off"):
        jobs.job_create(actor=bob, project=project_unsigned, split=split, size=small)
    assert not Job.objects.exists()


def test_bad_input_is_refused_with_a_reason_and_writes_nothing(
    project: Any,
    bob: Any,
    split: Any,
    small: Any,
    alice: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with pytest.raises(ValidationError) as exc:
        jobs.job_create(actor=bob, project=project, split=split, size=small, wall_clock_minutes=0)
    assert "Between 1 and 10080 minutes." in str(exc.value)
    with pytest.raises(ValidationError, match="No built-in template"):
        jobs.job_create(actor=bob, project=project, split=split, size=small, template="../x")
    with pytest.raises(ValidationError, match="gbm"):
        jobs.job_create(actor=bob, project=project, split=split, size=small, family="svm")
    other = ProjectFactory(name="Other", slug="other")
    from tests.factories import MembershipFactory

    MembershipFactory(project=other, user=alice, role="lead")
    foreign = ready_split(
        project=other, actor=alice, name="Elsewhere", callbacks=django_capture_on_commit_callbacks
    )
    with pytest.raises(ValidationError, match="another project"):
        jobs.job_create(actor=bob, project=project, split=foreign, size=small)
    assert not Job.objects.exists()


def test_read_only_members_and_outsiders_cannot_start_jobs(
    project: Any, carol: Any, charlie: Any, split: Any, small: Any
) -> None:
    for user in (carol, charlie):
        with pytest.raises(PermissionDenied):
            jobs.job_create(actor=user, project=project, split=split, size=small)
    assert not Job.objects.exists()


def test_over_quota_waits_for_an_admin_who_approves(
    project: Any,
    bob: Any,
    split: Any,
    small: Any,
    admin_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    Quota.objects.create(project=project, max_vcpus=1, max_gpus=0, max_running=5)
    job, sent = create(bob, project, split, small, django_capture_on_commit_callbacks)
    # The admins are notified; no task is sent until one decides.
    assert len(sent) == 1 and job.lease_expires_at is None and job.dispatched_at is None
    assert job.state == S.WAITING_FOR_COMPUTE
    assert job.state_reason == "Over quota: a platform admin decides."
    assert job.quota_exceeded == ["Project vCPUs: 0 in use + 2 requested > 1"]
    assert job.approval_id is not None
    request = ApprovalRequest.objects.get(pk=job.approval_id)
    assert request.kind == "job_compute" and request.requires_staff
    assert "Training job “baseline (gbm)” on Standard_D2s_v3" in request.summary
    # Waiting for a decision, it holds nothing and no task carries it on.
    assert quota_usage(project=project).vcpus == 0
    assert not jobs.job_claim(job_id=job.pk, task_id="t", owner="w")
    with django_capture_on_commit_callbacks(execute=False) as dispatched:
        approval_decide(actor=admin_user, approval_id=request.pk, approve=True, comment="ok")
    job.refresh_from_db()
    assert job.state == S.QUEUED
    assert len(dispatched) >= 1
    assert jobs.job_claim(job_id=job.pk, task_id="t", owner="w") is not None


def test_over_quota_rejected_is_cancelled_with_the_reason(
    project: Any,
    bob: Any,
    split: Any,
    small: Any,
    admin_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    Quota.objects.create(project=project, max_vcpus=1, max_gpus=0, max_running=5)
    job, _ = create(bob, project, split, small, django_capture_on_commit_callbacks)
    assert job.approval_id is not None
    approval_decide(actor=admin_user, approval_id=job.approval_id, approve=False, comment="no")
    job.refresh_from_db()
    assert job.state == S.CANCELLED
    assert job.state_reason == "Request rejected: no"
    assert run_of(job).status == RunStatus.KILLED
    assert ApprovalRequest.objects.get().state == ApprovalState.REJECTED


def test_cancel_before_the_provider_holds_it_ends_at_once_and_only_once(
    project: Any,
    bob: Any,
    carol: Any,
    split: Any,
    small: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job, _ = create(bob, project, split, small, django_capture_on_commit_callbacks)
    with pytest.raises(PermissionDenied):
        jobs.job_cancel(actor=carol, job=job)
    jobs.job_cancel(actor=bob, job=job)
    job.refresh_from_db()
    assert job.state == S.CANCELLED and job.state_reason == "Cancelled by bob."
    assert job.ended_at is not None and run_of(job).status == RunStatus.KILLED
    assert quota_usage(project=project).vcpus == 0
    with pytest.raises(jobs.JobConflict, match="cancelled; it cannot be cancelled"):
        jobs.job_cancel(actor=bob, job=job)


def test_cancel_while_waiting_for_approval_withdraws_the_request(
    project: Any, bob: Any, split: Any, small: Any, django_capture_on_commit_callbacks: Any
) -> None:
    Quota.objects.create(project=project, max_vcpus=1, max_gpus=0, max_running=5)
    job, _ = create(bob, project, split, small, django_capture_on_commit_callbacks)
    jobs.job_cancel(actor=bob, job=job)
    job.refresh_from_db()
    assert job.state == S.CANCELLED
    assert ApprovalRequest.objects.get().state == ApprovalState.WITHDRAWN


def test_rerun_is_a_new_job_with_the_same_code_and_inputs_in_the_same_experiment(
    project: Any, bob: Any, split: Any, small: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first, _ = create(
        bob, project, split, small, django_capture_on_commit_callbacks, experiment_name="churn"
    )
    with django_capture_on_commit_callbacks(execute=False):
        again = jobs.job_rerun(actor=bob, job=first, family="linear")
    assert again.rerun_of_id == first.pk and again.pk != first.pk
    assert again.code_digest == first.code_digest and again.split_id == first.split_id
    assert again.command.endswith("--family=linear")
    assert run_of(again).experiment_id == run_of(first).experiment_id
    assert again.run_id != first.run_id
