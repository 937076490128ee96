"""Time training jobs on the local provider, with a real Celery worker.

Usage (PostgreSQL and Redis from the test environment):

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/jobs.py --runs 5

Three measurements, each through the portal's services, a real worker (solo
pool, queue "training") and the tracking API served by this process:

* queue → first log line: ``job_create`` of a baseline template job (the
  base environment: nothing to build) commits and queues it; the clock stops
  when the job's first output line is in the provider's ``job.log`` (polled
  every 10 ms), and again when it is on the job's row (``log_tail``, what the
  page and the API show). The audit trail gives queued → running.
* a cold environment build: a job with one small requirement that the base
  lacks (``sgtiny``, a wheel built here and found through pip's
  ``--find-links``: no network), a new version each run so that each builds
  its environment; the build time is the one the provider writes first in
  the job's log. One more job with an already built version shows the reuse.
* sweep overhead per trial: a sweep of the baseline (``--trials`` trials,
  one at a time, no early termination); its job's wall time minus the sum of
  its trials' runs (each from the child run's creation to its end, the
  trial's process inside), divided by the trials.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("STAGEGATE_VAR_DIR", tempfile.mkdtemp(prefix="stagegate-bench-"))
if "FIELD_ENCRYPTION_KEYS" not in os.environ:
    from cryptography.fernet import Fernet

    os.environ["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()


def wait(check: Callable[[], Any], timeout: float, what: str, step: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"timed out waiting for {what}")


def row(name: str, values: list[float]) -> str:
    return (
        f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f} s "
        f"| {max(values):.2f} s | {len(values)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--size", default="Standard_D2s_v3")
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.management import call_command
    from django.test.testcases import LiveServerThread

    call_command("migrate", verbosity=0)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1", "localhost"]
    server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    base_url = f"http://127.0.0.1:{server.port}"

    from accounts.models import User
    from audit.models import AuditEvent
    from cloud import get_provider
    from compute import services as compute_services
    from compute.models import ComputeSize
    from experiments import jobs, sweeps
    from experiments.job_models import Job, JobState
    from experiments.models import Run
    from projects.services import project_create
    from tests.conftest import start_worker, stop_worker
    from tests.experiments import jobs_data
    from tests.experiments.test_jobs_envs import WHEEL_NAME as WHEEL
    from tests.experiments.test_jobs_envs import tiny_wheel
    from tests.factories import charter_signed_off

    wheels = Path(os.environ["STAGEGATE_VAR_DIR"]) / "bench-wheels"
    versions = [f"0.{n + 1}" for n in range(args.builds)]
    for version in versions:
        tiny_wheel(wheels, version)
    lead, _ = User.objects.get_or_create(username="bench-lead")
    admin, _ = User.objects.get_or_create(username="bench-admin", is_staff=True)
    project = project_create(actor=lead, name="Bench jobs", slug=f"bench-jobs-{int(time.time())}")
    charter_signed_off(project, by=admin, author=lead)
    for target in ({"project": project}, {"user": lead}):
        compute_services.quota_set(actor=admin, max_vcpus=64, max_gpus=0, max_running=50, **target)
    split = jobs_data.ready_split(project=project, actor=lead)
    size = ComputeSize.objects.get(name=args.size)
    provider: Any = get_provider("local")

    def provider_log(job: Job) -> Path:
        return Path(provider.root) / "_jobs" / job.provider_name / "job.log"

    def first_line(job: Job, *, skip: str = "") -> float:
        """Seconds from now until the job's own first output line is on disk."""
        started = time.monotonic()

        def seen() -> bool:
            path = provider_log(Job.objects.get(pk=job.pk)) if job.provider_name else None
            if path is None or not path.exists():
                return False
            lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
            return any(not (skip and x.startswith(skip)) for x in lines)

        wait(seen, 300, f"job {job.pk}'s first line")
        return time.monotonic() - started

    def finished(job: Job) -> Job:
        wait(lambda: Job.objects.get(pk=job.pk).finished, 600, f"job {job.pk} to end", 0.1)
        done = Job.objects.select_related("run").get(pk=job.pk)
        if done.state != JobState.SUCCEEDED:
            raise SystemExit(f"job {done.pk}: {done.state} {done.state_reason}\n{done.log_tail}")
        return done

    worker = start_worker(
        "bench-jobs",
        queues="training",
        env_extra={
            "PORTAL_BASE_URL": base_url,
            "LOCAL_ENVS_PIP_ARGS": f"--no-index --find-links={wheels}",
        },
    )
    first, on_row, running = [], [], []
    builds, cold_first, warm_first = [], [], []
    try:
        finished(jobs.job_create(actor=lead, project=project, split=split, size=size))  # warm-up
        for run in range(args.runs):
            started = time.monotonic()
            job = jobs.job_create(actor=lead, project=project, split=split, size=size)
            job.provider_name = Job.objects.get(pk=job.pk).provider_name
            first.append(time.monotonic() - started + first_line(job))
            pk = job.pk
            wait(lambda: Job.objects.get(pk=pk).log_tail.strip(), 300, "the row's log")  # noqa: B023
            on_row.append(time.monotonic() - started)
            events = {
                e.action: e.created_at
                for e in AuditEvent.objects.filter(
                    object_type="experiments.job", object_id=str(job.pk)
                )
            }
            running.append((events["job.running"] - events["job.queued"]).total_seconds())
            finished(job)
            print(f"baseline {run}: first line {first[-1]:.2f} s, on the row {on_row[-1]:.2f} s")

        built = re.compile(r": (built|reused) \(build took ([0-9.]+) s\)")
        for version in [*versions, versions[0]]:
            started = time.monotonic()
            job = jobs.job_create(
                actor=lead,
                project=project,
                split=split,
                size=size,
                requirements=[f"{WHEEL}=={version}"],
            )
            job.provider_name = Job.objects.get(pk=job.pk).provider_name
            seconds = time.monotonic() - started + first_line(job, skip="environment ")
            done = finished(job)
            found = built.search(done.log_tail)
            assert found, done.log_tail
            if found.group(1) == "built":
                builds.append(float(found.group(2)))
                cold_first.append(seconds)
            else:
                warm_first.append(seconds)
            print(f"{WHEEL}=={version}: {found.group(0)}, first line {seconds:.2f} s")

        sweep = sweeps.sweep_create(
            actor=lead,
            project=project,
            split=split,
            size=size,
            space={"learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3}},
            sampler="random",
            max_trials=args.trials,
            parallel=1,
            early_termination="none",
            time_budget_minutes=20,
            wall_clock_minutes=30,
        )
        done = finished(sweep.job)
        assert done.run is not None and done.started_at and done.ended_at
        children = list(
            Run.objects.filter(tags__key="mlflow.parentRunId", tags__value=done.run.uuid)
        )
        assert len(children) == args.trials, done.log_tail
        trial_seconds = [((r.end_time or 0) - (r.start_time or 0)) / 1000 for r in children]
        wall = (done.ended_at - done.started_at).total_seconds()
    finally:
        stop_worker(worker)
        server.terminate()

    print()
    print("| step | median | min | max | runs |")
    print("|---|---|---|---|---|")
    print(row("queued → the job's first log line (provider's log)", first))
    print(row("queued → first log line on the job's row (page, API)", on_row))
    print(row("queued → running recorded (audit)", running))
    print(row("cold environment build (one requirement, offline)", builds))
    print(row("queued → first line of the job, cold environment", cold_first))
    print(row("queued → first line of the job, environment reused", warm_first))
    print(row("a sweep trial's run (child run created → ended)", trial_seconds))
    overhead = (wall - sum(trial_seconds)) / len(trial_seconds)
    print(
        f"\nsweep of {len(trial_seconds)} trials: job ran {wall:.2f} s, trials' runs "
        f"{sum(trial_seconds):.2f} s, overhead per trial {overhead:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
