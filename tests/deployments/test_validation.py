"""Validation without a worker: what ``validation_run`` pins and asks the
job to do, and how a finished job's report is read back (from the run's
artifacts) or explained when the job failed; a lost collecting task is
recovered by the beat."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from deployments import gate, gate_tasks
from deployments.gate_models import ValidationReport, ValidationState
from experiments import jobs
from experiments.artifacts import ArtifactStore
from experiments.job_models import Job, JobState
from experiments.services import alias_set
from experiments.tasks import run_artifact_folder
from tests.deployments import gate_data
from tests.experiments import jobs_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained(project: Any, alice: Any, bob: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """A baseline job's run (never run: no worker) with its split tag."""
    split = jobs_data.ready_split(
        project=project, actor=alice, callbacks=django_capture_on_commit_callbacks
    )
    job = jobs.job_create(actor=bob, project=project, split=split, size=jobs_data.size())
    return job


def test_validation_pins_its_inputs_and_names_the_champion(
    project: Any, bob: Any, trained: Any
) -> None:
    champion = gate_data.version(project, bob, run=trained.run)
    alias_set(actor=bob, version=champion, alias="champion")
    version = gate_data.version(project, bob, run=trained.run)
    report = gate.validation_run(actor=bob, version=version, segments="plan, tenure")
    split = trained.split
    assert report.state == ValidationState.RUNNING and report.champion == champion
    assert report.segment_columns == ["plan", "tenure"]
    assert (report.train_digest, report.test_digest) == (split.train_sha256, split.test_sha256)
    assert report.metric == "roc_auc" and report.threshold == 0.8 and report.direction == "higher"
    job = report.job
    assert job is not None and job.template == "validate"
    assert job.code_digest == jobs.template_digest("validate")
    for option in [
        "python validate.py",
        "--model-uri=models:/churn/2",
        "--champion-uri=models:/churn/1",
        "--segments=plan,tenure",
        f"--test-sha256={split.test_sha256}",
    ]:
        assert option in job.command


def test_bad_segments_and_read_only_members_are_refused(
    project: Any, bob: Any, carol: Any, trained: Any
) -> None:
    version = gate_data.version(project, bob, run=trained.run)
    with pytest.raises(ValidationError, match="no column “region”"):
        gate.validation_run(actor=bob, version=version, segments=["region"])
    with pytest.raises(PermissionDenied):
        gate.validation_run(actor=carol, version=version)
    assert not ValidationReport.objects.exists()
    assert not Job.objects.filter(template="validate").exists()


def job_of(report: ValidationReport) -> int:
    assert report.job_id is not None
    return report.job_id


def finish(job: Job, state: str) -> None:
    jobs.job_mark_running(job_id=job.pk)
    jobs.job_mark_finished(
        job_id=job.pk, state=state, reason="exit code 1" * (state != "succeeded")
    )


def test_a_finished_jobs_report_is_read_back_from_its_run(
    project: Any, bob: Any, trained: Any, settings: Any, tmp_path: Any
) -> None:
    settings.STAGEGATE_STORAGE_URL = f"file://{tmp_path / 'store'}"
    version = gate_data.version(project, bob, run=trained.run)
    report = gate.validation_run(actor=bob, version=version, segments=["plan"])
    job = Job.objects.select_related("run").get(pk=job_of(report))
    assert job.run is not None
    folder = run_artifact_folder(job.run.artifact_uri)
    body = json.dumps(gate_data.result(0.88, ok=True)).encode()
    ArtifactStore(project.pk).write(f"{folder}/validation.json", io.BytesIO(body), 1 << 20)
    assert gate_tasks.collect(report.pk) is None  # the job still runs
    finish(job, JobState.SUCCEEDED)
    assert gate_tasks.collect(report.pk) == "passed"
    report.refresh_from_db()
    assert report.value == 0.88 and report.meets_threshold and report.integration_ok
    assert report.segments[0]["rows"][2] == {"value": "pro", "rows": 20, "metric": 0.85}


def test_a_failed_job_says_why_and_a_lost_task_is_recovered_by_the_beat(
    project: Any, bob: Any, trained: Any
) -> None:
    version = gate_data.version(project, bob, run=trained.run)
    report = gate.validation_run(actor=bob, version=version)
    job = Job.objects.get(pk=job_of(report))
    finish(job, JobState.FAILED)
    # Not stale yet: the collecting task may still come.
    assert gate_tasks.validations_recover.apply().get() == 0
    Job.objects.filter(pk=job.pk).update(ended_at=timezone.now() - timedelta(minutes=5))
    assert gate_tasks.validations_recover.apply().get() == 1
    report.refresh_from_db()
    assert report.state == ValidationState.ERROR
    assert report.error.startswith("The validation job failed")
    assert gate.latest_report(version) == report
    request = gate.deployment_request_create(
        actor=bob, version=version, target="batch", reason="It should go live anyway."
    )
    assert request.state == "blocked"
    assert gate.blocked_because(request).startswith("The validation could not be computed")


def test_a_job_that_wrote_no_report_is_an_error(project: Any, bob: Any, trained: Any) -> None:
    version = gate_data.version(project, bob, run=trained.run)
    report = gate.validation_run(actor=bob, version=version)
    finish(Job.objects.get(pk=job_of(report)), JobState.SUCCEEDED)
    assert gate_tasks.collect(report.pk) == "error"
    report.refresh_from_db()
    assert report.error == "The validation job wrote no report."
