"""A user job from a local git repository, with a requirement that the base
environment lacks, run by a real Celery worker on the local provider in its
sandbox: the worker fetches the code (the repository's folder is allowed by
the operator's setting), builds the requirements' environment once (the
requirement is a wheel built here, found through pip's --find-links: no
network), and the job imports it, reads the split and logs into its run. A
re-run uses the same code without fetching, and the same environment."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from audit.models import AuditEvent
from experiments import jobs
from experiments.job_models import Job, JobState
from experiments.models import LatestMetric, RunTag
from tests.conftest import start_worker, stop_worker
from tests.experiments import jobs_data
from tests.experiments.test_jobs_code import git, make_repository
from tests.experiments.test_jobs_envs import tiny_wheel
from tests.workspaces.test_worker import wait_for

S = JobState
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TRAIN = b"""\
import os

import mlflow
import pandas as pd
import sgtiny

train = pd.read_parquet(os.environ["SG_INPUT_TRAIN"])
print(f"sgtiny {sgtiny.VALUE} sees {len(train)} train rows")
with mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"]):
    mlflow.log_metric("rows", len(train))
"""


@pytest.fixture
def storage() -> Path:
    """The object store the worker uses too (see test_jobs_worker.py)."""
    return Path(settings.STAGEGATE_STORAGE_URL.removeprefix("file://"))


def test_a_job_from_a_local_repository_with_a_requirement_the_base_lacks(
    project: Any,
    alice: Any,
    bob: Any,
    provider_jobs: Path,
    live_server: Any,
    tmp_path: Path,
    settings: Any,
) -> None:
    assert importlib.util.find_spec("sgtiny") is None
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    repo = make_repository(tmp_path / "repos", {"train.py": TRAIN, "README": b"a job\n"})
    commit = git(repo, "rev-parse", "HEAD")
    settings.JOBS_GIT_LOCAL_ROOTS = [str(tmp_path / "repos")]
    split = jobs_data.ready_split(project=project, actor=alice)
    worker = start_worker(
        "jobs-repository",
        queues="training",
        env_extra={
            "PORTAL_BASE_URL": live_server.url,
            "JOBS_GIT_LOCAL_ROOTS": str(tmp_path / "repos"),
            "LOCAL_ENVS_ROOT": str(tmp_path / "envs"),
            "LOCAL_ENVS_PIP_ARGS": f"--no-index --find-links={wheels}",
        },
    )
    try:
        job = jobs.job_create(
            actor=bob,
            project=project,
            split=split,
            size=jobs_data.size(),
            kind="repository",
            repository_url=repo.as_uri(),
            repository_ref="main",
            command="python train.py",
            requirements=["sgtiny==0.1"],
        )
        wait_for(lambda: Job.objects.get(pk=job.pk).finished, 240, "the job to end")
        # The repository moves on; a re-run keeps the code it ran.
        (repo / "train.py").write_bytes(b"raise SystemExit('not this code')\n")
        git(repo, "commit", "-q", "-am", "broken")
        again = jobs.job_rerun(actor=bob, job=Job.objects.get(pk=job.pk))
        wait_for(lambda: Job.objects.get(pk=again.pk).finished, 240, "the re-run to end")
    finally:
        stop_worker(worker)
    row = Job.objects.select_related("run").get(pk=job.pk)
    assert row.state == S.SUCCEEDED, (row.state_reason, row.log_tail)
    rows = split.train_rows
    assert f"sgtiny 42 sees {rows} train rows" in row.log_tail
    assert row.repository_commit == commit and len(row.code_digest) == 64
    tags = dict(RunTag.objects.filter(run=row.run).values_list("key", "value"))
    assert tags["stagegate.commit"] == commit
    assert tags["stagegate.code_digest"] == row.code_digest
    assert LatestMetric.objects.get(run=row.run, key__name="rows").value == rows
    # The environment was built for the first job and reused by the re-run.
    assert "environment " in row.log_tail and ": built (build took" in row.log_tail
    rerun = Job.objects.get(pk=again.pk)
    assert rerun.state == S.SUCCEEDED, (rerun.state_reason, rerun.log_tail)
    assert rerun.code_digest == row.code_digest and rerun.repository_commit == commit
    assert ": reused (build took" in rerun.log_tail
    assert f"sgtiny 42 sees {rows} train rows" in rerun.log_tail
    assert len(list((tmp_path / "envs").glob("*/env.json"))) == 1
    # Only the first job fetched the repository.
    fetched = AuditEvent.objects.filter(action="job.code_fetched")
    assert list(fetched.values_list("object_id", flat=True)) == [str(job.pk)]
    recorded = json.loads((provider_jobs / row.provider_name / "job.json").read_text())
    assert recorded["requirements"] == ["sgtiny==0.1"]
    assert recorded["python"].startswith(str((tmp_path / "envs").resolve()))


def test_a_failed_environment_build_fails_the_job_with_its_reason(
    project: Any,
    alice: Any,
    bob: Any,
    provider_jobs: Path,
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    split = jobs_data.ready_split(project=project, actor=alice)
    worker = start_worker(
        "jobs-envfail",
        queues="training",
        env_extra={
            "LOCAL_ENVS_ROOT": str(tmp_path / "envs"),
            "LOCAL_ENVS_PIP_ARGS": f"--no-index --find-links={wheels}",
        },
    )
    try:
        job = jobs.job_create(
            actor=bob,
            project=project,
            split=split,
            size=jobs_data.size(),
            requirements=["sgtiny==7"],
        )
        wait_for(lambda: Job.objects.get(pk=job.pk).finished, 120, "the job to end")
    finally:
        stop_worker(worker)
    row = Job.objects.get(pk=job.pk)
    assert row.state == S.FAILED
    assert "The environment could not be built" in row.state_reason
    assert "sgtiny==7" in row.state_reason
