"""Training jobs run by a real Celery worker (queue "training") on the local
provider, in its sandbox: the baseline template on a split, cancel, the
portal's secrets out of reach, and kill -9 of the worker mid-job."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings

from audit.models import AuditEvent
from compute.models import UsageInterval
from experiments import jobs
from experiments.artifacts import ArtifactStore
from experiments.job_models import Job, JobState
from experiments.models import LatestMetric, LoggedModel, Param, RunStatus
from experiments.tasks import run_artifact_folder
from portal.celery import leases_recover
from projects.models import ProjectToken
from tests.conftest import start_worker, stop_worker
from tests.experiments import jobs_data
from tests.workspaces.test_worker import wait_for

S = JobState
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def storage() -> Path:
    """The object store the worker process uses too (the settings' own),
    instead of the tracking tests' private one: the job reads the split's
    files from it, and the worker keeps the log there."""
    return Path(settings.STAGEGATE_STORAGE_URL.removeprefix("file://"))


def state_of(job: Job) -> str:
    return str(Job.objects.get(pk=job.pk).state)


def processes_of(provider_jobs: Path, job: Job) -> list[psutil.Process]:
    """The job's supervisor and everything below it."""
    data = json.loads((provider_jobs / job.provider_name / "job.json").read_text())
    try:
        top = psutil.Process(int(data["pid"]))
        return [top, *top.children(recursive=True)]
    except (psutil.NoSuchProcess, TypeError, KeyError):
        return []


def queued_with_command(bob: Any, project: Any, split: Any, command: str) -> Job:
    """A job whose command is replaced before any worker runs: user code of
    the shape a repository job will have (no worker is running yet)."""
    job = jobs.job_create(actor=bob, project=project, split=split, size=jobs_data.size())
    Job.objects.filter(pk=job.pk).update(command=command)
    return Job.objects.get(pk=job.pk)


def test_the_baseline_trains_on_the_split_and_keeps_its_log_in_the_run(
    project: Any, alice: Any, bob: Any, provider_jobs: Path, live_server: Any
) -> None:
    """From inside the sandbox the job logs into its run through the tracking
    relay: the portal is the live server, which the worker is told about."""
    split = jobs_data.ready_split(project=project, actor=alice)
    worker = start_worker(
        "jobs-baseline", queues="training", env_extra={"PORTAL_BASE_URL": live_server.url}
    )
    try:
        job = jobs.job_create(actor=bob, project=project, split=split, size=jobs_data.size())
        wait_for(lambda: Job.objects.get(pk=job.pk).finished, 180, "the job to end")
    finally:
        stop_worker(worker)
    job = Job.objects.select_related("run").get(pk=job.pk)
    assert job.state == S.SUCCEEDED, (job.state_reason, job.log_tail)
    assert job.exit_code == 0
    found = re.search(r"roc_auc on the test part: ([0-9.]+)", job.log_tail)
    assert found, job.log_tail
    assert 0.7 < float(found.group(1)) <= 1.0  # the table's label is learnable
    assert job.started_at is not None and job.ended_at is not None
    assert job.started_at <= job.ended_at
    # Metered while it ran; the cost is the closed interval's.
    interval = UsageInterval.objects.get(resource_type="experiments.job", resource_id=job.pk)
    assert interval.ended_at is not None and job.cost == interval.cost
    # The run ended with it; the whole log is its artifact.
    assert job.run is not None and job.run.status == RunStatus.FINISHED
    folder = run_artifact_folder(job.run.artifact_uri)
    with ArtifactStore(project.pk).open(f"{folder}/job.log") as kept:
        assert found.group(0) in kept.read().decode()
    # The job got its run and experiment; its tracking token is revoked.
    environment = json.loads((provider_jobs / job.provider_name / "job.json").read_text())[
        "environment"
    ]
    assert environment["MLFLOW_RUN_ID"] == job.run.uuid
    assert environment["MLFLOW_EXPERIMENT_ID"] == str(job.run.experiment_id)
    token = ProjectToken.objects.get(purpose=f"job:{job.pk}")
    assert token.revoked_at is not None
    # The metric and the model reached the run from inside the sandbox.
    logged = LatestMetric.objects.get(run=job.run, key__name="roc_auc")
    assert logged.value == pytest.approx(float(found.group(1)), abs=1e-3)
    assert Param.objects.filter(run=job.run).exists()
    assert LoggedModel.objects.filter(source_run=job.run).exists()
    actions = AuditEvent.objects.filter(object_type="experiments.job", object_id=str(job.pk))
    assert list(actions.order_by("pk").values_list("action", flat=True)) == [
        "job.created",
        "job.queued",
        "job.running",
        "job.succeeded",
    ]


def test_cancel_kills_every_process_of_the_job(
    project: Any, alice: Any, bob: Any, provider_jobs: Path
) -> None:
    split = jobs_data.ready_split(project=project, actor=alice)
    job = queued_with_command(bob, project, split, "sleep 300 & sleep 301 & echo started; wait")
    worker = start_worker("jobs-cancel", queues="training")
    try:
        wait_for(lambda: "started" in Job.objects.get(pk=job.pk).log_tail, 60, "the job to run")
        procs = processes_of(provider_jobs, job)
        assert len(procs) >= 3  # the shell and its two sleeps, at least
        jobs.job_cancel(actor=bob, job=Job.objects.get(pk=job.pk))
        assert state_of(job) == S.CANCELLING
        wait_for(lambda: state_of(job) == S.CANCELLED, 60, "the job to be cancelled")
    finally:
        stop_worker(worker)
    gone, alive = psutil.wait_procs(procs, timeout=5)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    row = Job.objects.select_related("run").get(pk=job.pk)
    assert row.state_reason == "Cancelled by bob."
    assert row.run is not None and row.run.status == RunStatus.KILLED
    assert not UsageInterval.objects.filter(
        resource_type="experiments.job", resource_id=job.pk, ended_at__isnull=True
    ).exists()


def test_the_job_cannot_read_the_portals_secrets(
    project: Any, alice: Any, bob: Any, provider_jobs: Path
) -> None:
    var_dir = Path(settings.VAR_DIR)
    planted = var_dir / f"jobs-test-key-{secrets.token_hex(4)}"
    value = secrets.token_hex(16)
    planted.write_text(value)
    planted.chmod(0o600)
    keys = [
        planted,
        var_dir / "field_encryption_key",
        var_dir / "secret_key",
        Path(settings.AUDIT_SIGNING_KEY_FILE),
    ]
    tries = "; ".join(
        f"if cat {k} 2>/dev/null; then echo READ {k}; else echo DENIED {k}; fi" for k in keys
    )
    try:
        split = jobs_data.ready_split(project=project, actor=alice)
        job = queued_with_command(bob, project, split, f"env; echo ---; {tries}")
        worker = start_worker("jobs-secrets", queues="training")
        try:
            wait_for(lambda: Job.objects.get(pk=job.pk).finished, 60, "the job to end")
        finally:
            stop_worker(worker)
    finally:
        planted.unlink()
    row = Job.objects.get(pk=job.pk)
    assert row.state == S.SUCCEEDED, (row.state_reason, row.log_tail)
    environment, _, reads = row.log_tail.partition("---")
    names = {line.split("=", 1)[0] for line in environment.splitlines() if "=" in line}
    assert "SG_INPUT_TRAIN" in names and "MLFLOW_RUN_ID" in names  # it did print its environment
    leaked = {
        n
        for n in names
        if n.startswith(("DJANGO_", "DATABASE", "CELERY_", "AZURE_", "AUDIT_", "REDIS"))
        or "SECRET" in n
        or "ENCRYPTION" in n
        or "STORAGE_CONNECTION" in n
    }
    assert not leaked
    assert settings.SECRET_KEY not in row.log_tail
    assert value not in row.log_tail
    for key in keys:
        assert f"DENIED {key}" in reads, reads
        assert f"READ {key}" not in reads


@pytest.fixture
def short_leases(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.BACKGROUND_LEASE_SECONDS = 1.5
    settings.BACKGROUND_DISPATCH_GRACE_SECONDS = 2.0
    settings.BACKGROUND_MAX_ATTEMPTS = 6
    monkeypatch.setenv("BACKGROUND_LEASE_SECONDS", "1.5")
    monkeypatch.setenv("BACKGROUND_DISPATCH_GRACE_SECONDS", "2")
    monkeypatch.setenv("BACKGROUND_MAX_ATTEMPTS", "6")


def test_worker_killed_mid_job_ends_once_in_one_clear_state(
    project: Any, alice: Any, bob: Any, provider_jobs: Path, short_leases: None
) -> None:
    split = jobs_data.ready_split(project=project, actor=alice)
    job = queued_with_command(bob, project, split, "echo started; sleep 8; echo finished")
    doomed = start_worker("jobs-doomed", queues="training")
    survivor = None
    try:
        wait_for(lambda: "started" in Job.objects.get(pk=job.pk).log_tail, 60, "the job to run")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
        killed_at = time.monotonic()
        # The job's own process runs on, outside the worker.
        assert state_of(job) == S.RUNNING
        survivor = start_worker("jobs-survivor", queues="training")

        def ended() -> bool:
            leases_recover.apply()
            return Job.objects.get(pk=job.pk).finished

        wait_for(ended, 90, "the job to end")
        assert time.monotonic() - killed_at < 90
        for _ in range(3):  # nothing more to recover, nothing runs it again
            leases_recover.apply()
            time.sleep(1)
    finally:
        stop_worker(doomed)
        if survivor is not None:
            stop_worker(survivor)
    row = Job.objects.get(pk=job.pk)
    assert row.state == S.SUCCEEDED, (row.state_reason, row.log_tail)
    assert "finished" in row.log_tail and row.log_tail.count("started") == 1
    for action in ("job.running", "job.succeeded"):
        assert (
            AuditEvent.objects.filter(
                action=action, object_type="experiments.job", object_id=str(job.pk)
            ).count()
            == 1
        )
    assert [p.name for p in provider_jobs.iterdir()].count(row.provider_name) == 1
    assert not jobs.JOBS_WORK.active().filter(pk=job.pk).exists()
