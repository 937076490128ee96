"""A sweep over the user's own code: the API checks a space of any parameter
names the script takes (400 with the reasons otherwise, nothing written),
and a real worker runs the script from a local git repository once per
trial, with the trial's parameters as ``--name=value`` and its child run in
``MLFLOW_RUN_ID``; the best trial is the one whose logged metric is best."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from experiments.job_models import Job, JobState
from experiments.models import LatestMetric, Run, RunStatus, RunTag
from experiments.sweep_models import Sweep
from experiments.sweep_selectors import sweep_progress
from tests.conftest import start_worker, stop_worker
from tests.experiments import jobs_data
from tests.experiments.test_jobs_code import git, make_repository
from tests.workspaces.test_worker import wait_for

# Logs its score at each step (the runner reads the history for pruning) and
# a best score that depends on both parameters: x near 0.3 and the "wide" shape.
TRAIN = b"""\
import argparse
import os

import mlflow
import pandas as pd

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--shape", required=True)
args = parser.parse_args()
rows = len(pd.read_parquet(os.environ["SG_INPUT_TRAIN"]))
bonus = 1.0 if args.shape == "wide" else 0.0
score = bonus - (args.x - 0.3) ** 2
print(f"trial {os.environ['SG_TRIAL_NUMBER']}: x={args.x} shape={args.shape} rows={rows}")
with mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"]):
    for step in range(3):
        mlflow.log_metric("score", score - 0.1 * (2 - step), step=step)
"""


def url(project: Any) -> str:
    return f"/api/projects/{project.slug}/sweeps/"


@pytest.fixture
def split(project: Any, alice: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return jobs_data.ready_split(
        project=project, actor=alice, callbacks=django_capture_on_commit_callbacks
    )


def test_a_space_over_user_code_takes_any_names_and_refuses_bad_ones_with_reasons(
    api_for: Any, project: Any, bob: Any, split: Any, settings: Any, tmp_path: Path
) -> None:
    repo = make_repository(tmp_path / "repos", {"train.py": TRAIN})
    settings.JOBS_GIT_LOCAL_ROOTS = [str(tmp_path / "repos")]
    api = api_for(bob)
    base = {
        "split": split.pk,
        "size": jobs_data.size().name,
        "kind": "repository",
        "repository_url": repo.as_uri(),
        "repository_ref": "main",
        "command": "python train.py",
        "metric": "score",
        "direction": "maximize",
        "max_trials": 4,
        "parallel": 1,
        "early_termination": "none",
    }
    bad = api.post(
        url(project),
        {
            **base,
            "space": {
                "x-1": {"type": "uniform", "low": 0, "high": 1},
                "depth": {"type": "int", "low": 1.5, "high": 4},
                "shape": {"type": "choice", "values": ["wide", "wide"]},
                "lr": {"type": "loguniform", "low": 0, "high": 1},
            },
        },
        format="json",
    )
    assert bad.status_code == 400, bad.content
    reasons = " ".join(bad.json()["space"])
    assert "'x-1': a parameter name is a letter or _" in reasons
    assert "depth: low and high of an int distribution are whole numbers." in reasons
    assert "shape: the values repeat." in reasons
    assert "lr: a log-uniform distribution needs low above 0." in reasons
    no_command = api.post(
        url(project),
        {**base, "command": "", "space": {"x": {"type": "uniform", "low": 0, "high": 1}}},
        format="json",
    )
    assert no_command.status_code == 400 and "command" in no_command.json()
    bad_metric = api.post(
        url(project),
        {**base, "metric": "score;rm", "space": {"x": {"type": "uniform", "low": 0, "high": 1}}},
        format="json",
    )
    assert bad_metric.status_code == 400 and "metric" in bad_metric.json()
    # The baseline keeps its own names: an arbitrary one is refused there.
    baseline = api.post(
        url(project),
        {
            "split": split.pk,
            "size": base["size"],
            "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
        },
        format="json",
    )
    assert baseline.status_code == 400
    assert "the gbm model has no such parameter" in " ".join(baseline.json()["space"])
    assert not Sweep.objects.exists() and not Job.objects.exists()

    made = api.post(
        url(project),
        {
            **base,
            "space": {
                "x": {"type": "uniform", "low": -1, "high": 1},
                "shape": {"type": "choice", "values": ["wide", "narrow"]},
            },
        },
        format="json",
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["config"]["command"] == "python train.py"
    assert body["config"]["objective"] == {"metric": "score", "direction": "maximize"}
    assert "family" not in body["config"]
    job = Job.objects.get(pk=body["job"])
    assert job.kind == "repository" and job.template == "sweep"
    words = shlex.split(job.command)
    assert words[:2] == ["python", ".stagegate_sweep_runner.py"]
    assert json.loads(words[2].removeprefix("--config="))["command"] == "python train.py"
    # No provider is handed it as a native sweep: the runner is the job's command.
    from experiments.tasks import search_specs

    assert search_specs(job) == (None, None)


@pytest.fixture
def storage() -> Path:
    """The object store the worker uses too (see test_jobs_worker.py)."""
    return Path(django_settings.STAGEGATE_STORAGE_URL.removeprefix("file://"))


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_sweep_of_a_users_script_from_a_repository_finds_the_best_logged_metric(
    project: Any,
    alice: Any,
    bob: Any,
    provider_jobs: Path,
    live_server: Any,
    tmp_path: Path,
    settings: Any,
) -> None:
    from experiments import sweeps

    repo = make_repository(tmp_path / "repos", {"train.py": TRAIN})
    commit = git(repo, "rev-parse", "HEAD")
    settings.JOBS_GIT_LOCAL_ROOTS = [str(tmp_path / "repos")]
    split = jobs_data.ready_split(project=project, actor=alice)
    worker = start_worker(
        "sweeps-user-code",
        queues="training",
        env_extra={
            "PORTAL_BASE_URL": live_server.url,
            "JOBS_GIT_LOCAL_ROOTS": str(tmp_path / "repos"),
        },
    )
    try:
        sweep = sweeps.sweep_create(
            actor=bob,
            project=project,
            split=split,
            size=jobs_data.size(),
            kind="repository",
            repository_url=repo.as_uri(),
            repository_ref="main",
            command="python train.py",
            space={
                "x": {"type": "choice", "values": [0.3, 0.9]},
                "shape": {"type": "choice", "values": ["wide", "narrow"]},
            },
            sampler="grid",
            metric="score",
            direction="maximize",
            max_trials=4,
            parallel=1,
            early_termination="none",
            time_budget_minutes=5,
            wall_clock_minutes=10,
        )
        wait_for(lambda: Job.objects.get(pk=sweep.job_id).finished, 300, "the sweep to end")
    finally:
        stop_worker(worker)
    job = Job.objects.select_related("run").get(pk=sweep.job_id)
    assert job.state == JobState.SUCCEEDED, (job.state_reason, job.log_tail)
    assert job.repository_commit == commit and job.run is not None
    children = list(Run.objects.filter(tags__key="mlflow.parentRunId", tags__value=job.run.uuid))
    assert len(children) == 4, job.log_tail
    assert all(r.status == RunStatus.FINISHED for r in children), job.log_tail
    # Each trial got its parameters as options and logged into its own run.
    seen = set()
    for run in children:
        params = dict(run.params.values_list("key", "value"))
        seen.add((params["x"], params["shape"]))
        score = LatestMetric.objects.get(run=run, key__name="score").value
        bonus = 1.0 if params["shape"] == "wide" else 0.0
        assert score == pytest.approx(bonus - (float(params["x"]) - 0.3) ** 2)
    assert seen == {("0.3", "wide"), ("0.3", "narrow"), ("0.9", "wide"), ("0.9", "narrow")}
    # The best trial is the one whose logged metric is best: x=0.3, wide, score 1.
    best = next(
        r
        for r in children
        if dict(r.params.values_list("key", "value"))["shape"] == "wide"
        and dict(r.params.values_list("key", "value"))["x"] == "0.3"
    )
    tags = dict(RunTag.objects.filter(run=job.run).values_list("key", "value"))
    assert tags["stagegate.sweep.best_run_id"] == best.uuid
    assert LatestMetric.objects.get(run=job.run, key__name="score").value == pytest.approx(1.0)
    # The script's own output is the trial's log, beside the job's outputs.
    number = RunTag.objects.get(run=best, key="stagegate.sweep.trial").value
    trial_log = provider_jobs / job.provider_name / "outputs" / "trials" / f"trial-{number}"
    assert (
        f"trial {number}: x=0.3 shape=wide rows={split.train_rows}"
        in (trial_log / "trial.log").read_text()
    )
    progress = sweep_progress(sweep=sweep)
    assert progress.best is not None and progress.best.run_id == best.uuid
    assert progress.done == 4 and progress.counts == {"finished": 4}


def test_the_new_sweep_page_takes_an_archive_and_a_command(
    client_for: Any, project: Any, bob: Any, split: Any
) -> None:
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.experiments.test_sweeps_pages import form_data

    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("train.py", TRAIN)
    browser = client_for(bob)
    new = f"/projects/{project.slug}/sweeps/new/"
    page = browser.get(new).content.decode()
    assert 'enctype="multipart/form-data"' in page and 'name="command"' in page
    space = {"x": {"type": "uniform", "low": 0, "high": 1}}

    def upload() -> SimpleUploadedFile:
        return SimpleUploadedFile("code.zip", data.getvalue(), content_type="application/zip")

    fields = form_data(
        split, jobs_data.size(), kind="archive", space=json.dumps(space), metric="score"
    )
    missing = browser.post(new, {**fields, "command": "", "archive": upload()})
    assert "Give the command that runs the code" in missing.content.decode()
    assert not Sweep.objects.exists()
    made = browser.post(new, {**fields, "command": "python train.py", "archive": upload()})
    assert made.status_code == 302, made.content.decode()[:2000]
    sweep = Sweep.objects.select_related("job").get()
    assert sweep.job.kind == "archive" and len(sweep.job.code_digest) == 64
    assert sweep.config["command"] == "python train.py" and sweep.config["space"] == space
    shown = browser.get(made["Location"]).content.decode()
    assert "uploaded archive; each trial runs <code>python train.py --name=value" in shown


PROGRESS_ONLY = """\
import json
import os
import sys

x = float(sys.argv[1].removeprefix("--x="))
if x < 0:
    sys.exit(0)  # logs nothing: the trial fails
with open(os.environ["SG_TRIAL_PROGRESS"], "a") as progress:
    for step in range(3):
        progress.write(json.dumps({"step": step, "value": step - abs(x - 2)}) + "\\n")
"""


def test_without_a_tracking_server_the_runner_ranks_by_the_progress_file(tmp_path: Path) -> None:
    """The runner alone (no job, no tracking): each trial's value is the last
    line of its progress file; a trial that logged nothing fails with why."""
    import os
    import subprocess
    import sys

    from experiments import jobs

    (tmp_path / "train.py").write_text(PROGRESS_ONLY)
    config = {
        "command": f"{shlex.quote(sys.executable)} train.py",
        "space": {"x": {"type": "choice", "values": [-1, 1, 2, 3]}},
        "sampler": "grid",
        "objective": {"metric": "score", "direction": "maximize"},
        "max_trials": 4,
        "parallel": 1,
        "early_termination": {"policy": "none"},
        "time_budget_seconds": 120,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, str(jobs.template_path("sweep")), f"--config={json.dumps(config)}"],
        cwd=tmp_path,
        env={**env, "SG_OUTPUT_DIR": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "logged no finite score" in done.stdout
    assert '"FAIL": 1' in done.stdout and '"COMPLETE": 3' in done.stdout
    best = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert best == {"params": {"x": 2}, "metrics": {"score": 2.0}}
