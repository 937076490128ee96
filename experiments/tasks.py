"""Celery tasks of training jobs (queue "training"): thin, idempotent.

One task, ``job_advance``, carries a job from queued to its end: it claims
the job's row and lease (``experiments.jobs.job_claim``), submits the job to
the provider once (the provider holds it by the job's deterministic name, so
a redelivered task polls instead of submitting again), polls its state,
keeps the end of its log on the row for the page, enforces the wall-clock
limit, and at the end keeps the whole log as the run's artifact ``job.log``,
revokes the job's tracking token and records the outcome. Between polls it
gives the lease back and schedules itself again. A worker killed mid-job
stops beating; ``portal.leases_recover`` sends the task again and the next
worker carries on polling the same provider job.
"""

from __future__ import annotations

import io
import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

import background
from background.leases import lease_kept, lease_owner_for
from cloud import get_provider
from cloud.base import (
    AutoMLSpec,
    ClusterSpec,
    JobSpec,
    JobState,
    JobStatus,
    Provider,
    ProviderError,
    SizeSpec,
    SweepSpec,
    TransientProviderError,
    job_cluster_name,
)

if TYPE_CHECKING:
    from experiments.job_models import Job

logger = logging.getLogger(__name__)

TASK_OPTIONS = background.task_options(soft_time_limit=240, time_limit=300, max_retries=None)
LOG_TAIL_LINES = 200
MAX_LOG_BYTES = 50 * 1024 * 1024


def poll_seconds() -> float:
    return float(getattr(settings, "JOBS_POLL_SECONDS", 1.0))


def _provider(job: Job) -> Provider:
    return get_provider(job.provider)


def _size(job: Job) -> SizeSpec:
    return SizeSpec(job.size.name, job.size.vcpus, float(job.size.memory_gb), job.size.gpus)


def split_inputs(job: Job) -> dict[str, str]:
    """The split's train and test parts (and a batch scoring's snapshot) as
    files the job may read."""
    from datasets.storage import default_store, object_key

    if job.split is None:
        return {}
    store = default_store()
    inputs = {}
    for part, sha in (("train", job.split.train_sha256), ("test", job.split.test_sha256)):
        path = store.local_path(object_key(sha))
        if path is None:
            raise ProviderError("The split is not stored on this machine's disk.")
        inputs[part] = path
    if job.template == "batch_score" and job.snapshot is not None:
        # Batch scoring reads a whole snapshot of the project, besides the split.
        path = store.local_path(job.snapshot.storage_key)
        if path is None:
            raise ProviderError("The snapshot is not stored on this machine's disk.")
        inputs["snapshot"] = path
    return inputs


def code_dir(job: Job) -> str:
    """The folder with the job's code on this machine: the template's, or its
    stored code unpacked; a repository is fetched first (once: the digest is
    kept on the job, so a redelivered task or a re-run uses the same code)."""
    from experiments import job_code, jobs
    from experiments.job_models import JobKind

    if job.kind == JobKind.TEMPLATE:
        return str(jobs.TEMPLATES_DIR)
    try:
        if not job.code_digest:
            stored = job_code.repository_fetch(job.repository_url, job.repository_ref)
            jobs.job_code_fetched(job_id=job.pk, digest=stored.digest, commit=stored.commit)
            job.refresh_from_db(fields=["code_digest", "repository_commit"])
        if job.template == "sweep":
            from experiments.sweeps import sweep_code_folder

            return str(sweep_code_folder(job.code_digest))
        return str(job_code.code_folder(job.code_digest))
    except job_code.CodeRefused as exc:
        raise ProviderError(f"The job's code could not be fetched: {exc}") from exc


def search_specs(job: Job) -> tuple[SweepSpec | None, AutoMLSpec | None]:
    """A sweep's or AutoML job's search for a provider that runs it natively
    (Azure ML); the local provider runs the job's command, which searches itself,
    and so does every provider for a sweep over the user's own code."""
    from experiments.jobs import _baseline_command

    config = job.parameters.get("config") or {}
    task, target, metric = (job.parameters.get(k, "") for k in ("task", "target", "metric"))
    if job.template == "sweep" and config.get("command"):
        # Over the user's code the trials take --name=value, not the --params of
        # a native sweep: the job runs its runner as its command everywhere.
        return None, None
    if job.template == "sweep" and config:
        objective = config.get("objective") or {}
        metric = objective.get("metric", metric)
        trial = _baseline_command(task=task, target=target, metric=metric, family=config["family"])
        sweep = SweepSpec(
            trial_command=trial,
            space=config["space"],
            metric=metric,
            direction=objective.get("direction", "maximize"),
            sampler=config["sampler"],
            max_trials=config["max_trials"],
            parallel=config["parallel"],
            early_termination=(config.get("early_termination") or {}).get("policy", "none"),
            time_budget_seconds=config.get("time_budget_seconds", 0),
            seed=config.get("seed", 0),
        )
        return sweep, None
    if job.template == "automl" and config:
        automl = AutoMLSpec(
            task=task,
            target=target,
            metric=config.get("metric", metric),
            families=tuple(config.get("families") or ()),
            time_budget_seconds=config["time_budget_seconds"],
        )
        return None, automl
    return None, None


def job_compute(provider: Provider, job: Job) -> str:
    """The cluster the job runs on, named by the provider's salt (Azure)."""
    return job_cluster_name(job.pk, str(getattr(provider, "name_salt", "") or ""))


def _submit(provider: Provider, job: Job) -> JobStatus:
    from projects.tokens import project_token_issue

    code = code_dir(job)
    compute = job_compute(provider, job)
    provider.cluster_create(ClusterSpec(name=compute, size=_size(job), max_nodes=1))
    now = timezone.now()
    token = project_token_issue(
        project=job.project,
        user=job.created_by,
        purpose=f"job:{job.pk}",
        expires_at=now + timedelta(seconds=job.wall_clock_max_seconds + 600),
    )
    run = job.run
    environment = {
        "MLFLOW_RUN_ID": run.uuid if run else "",
        "MLFLOW_EXPERIMENT_ID": str(run.experiment_id) if run else "",
    }
    sweep, automl = search_specs(job)
    spec = JobSpec(
        name=job.provider_name,
        command=job.command,
        compute=compute,
        code_dir=code,
        requirements=tuple(job.requirements),
        environment=environment,
        inputs=split_inputs(job),
        tracking_url=f"{settings.PORTAL_BASE_URL.rstrip('/')}/mlflow/{job.project.slug}",
        tracking_token=token,
        # Where no sandbox is available, only a platform admin's job runs without one.
        allow_unsandboxed=job.created_by.is_staff,
        sweep=sweep,
        automl=automl,
    )
    return provider.job_submit(spec)


def _exit_code(status: JobStatus) -> int | None:
    if status.state == JobState.SUCCEEDED:
        return 0
    found = re.search(r"exit code (-?\d+)", status.detail)
    return int(found.group(1)) if found else None


def run_artifact_folder(uri: str) -> str | None:
    """Where a run's artifacts are in the project's store: ``1/<run id>/artifacts``
    for ``mlflow-artifacts:/1/<run id>/artifacts``."""
    from experiments.artifacts import ARTIFACT_SCHEME, clean_path

    if not uri.startswith(ARTIFACT_SCHEME + "/") or uri.startswith(ARTIFACT_SCHEME + "//"):
        return None
    return clean_path(uri[len(ARTIFACT_SCHEME) :].lstrip("/"))


def _keep_log(provider: Provider, job: Job) -> str:
    """The job's whole output as the run's artifact ``job.log``; returns its tail."""
    from experiments.artifacts import ArtifactStore

    try:
        text = provider.job_logs(job.provider_name, tail=1_000_000)
    except ProviderError as exc:
        return f"(the log could not be read: {exc})"
    run = job.run
    folder = run_artifact_folder(run.artifact_uri) if run else None
    if folder is not None:
        data = text.encode("utf-8", "replace")[-MAX_LOG_BYTES:]
        ArtifactStore(job.project_id).write(f"{folder}/job.log", io.BytesIO(data), MAX_LOG_BYTES)
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def _finish(provider: Provider, job: Job, state: str, reason: str, exit_code: int | None) -> str:
    from experiments import jobs
    from projects.tokens import project_token_revoke

    tail = _keep_log(provider, job) if job.submitted else None
    project_token_revoke(purpose=f"job:{job.pk}")
    jobs.job_mark_finished(
        job_id=job.pk, state=state, reason=reason, exit_code=exit_code, log_tail=tail
    )
    try:
        provider.cluster_delete(job_compute(provider, job))
    except ProviderError as exc:
        logger.warning("job %s: its compute was not removed: %s", job.pk, exc)
    return state


def provider_cancel_quietly(job: Job) -> None:
    """Cancel what the provider runs of the job, if anything (recovery gave up)."""
    try:
        _provider(job).job_cancel(job.provider_name)
    except ProviderError as exc:
        logger.warning("job %s: cancel failed: %s", job.pk, exc)
    from projects.tokens import project_token_revoke

    project_token_revoke(purpose=f"job:{job.pk}")


def advance(job: Job) -> str:
    """One step of the job: submit, poll, enforce limits, finish. Returns
    the job's state, or "poll" when it should be asked again later."""
    from experiments import jobs
    from experiments.job_models import JobState as S

    provider = _provider(job)
    if job.state == S.CANCELLING:
        if job.submitted:
            provider.job_cancel(job.provider_name)
        return _finish(provider, job, S.CANCELLED, job.state_reason, None)
    if not job.submitted:
        try:
            provider.job_status(job.provider_name)  # held already: a lost worker submitted it
        except ProviderError:
            _submit(provider, job)
        if not jobs.job_mark_submitted(job_id=job.pk):
            # Cancelled (or given up) while it was being submitted: stop what
            # the provider started, the row has ended already.
            provider_cancel_quietly(job)
            return "cancelled meanwhile"
        job.submitted = True
    status = provider.job_status(job.provider_name)
    if status.state == JobState.QUEUED:
        jobs.job_mark_waiting(job_id=job.pk, detail=status.detail)
        return "poll"
    jobs.job_mark_running(job_id=job.pk)
    if status.state == JobState.RUNNING:
        job.refresh_from_db(fields=["started_at"])
        started = job.started_at or timezone.now()
        if timezone.now() - started > timedelta(seconds=job.wall_clock_max_seconds):
            provider.job_cancel(job.provider_name)
            minutes = job.wall_clock_max_seconds // 60
            return _finish(
                provider,
                job,
                S.FAILED,
                f"Stopped: it ran longer than its wall-clock limit of {minutes} minutes.",
                None,
            )
        jobs.job_log_tail_set(
            job_id=job.pk, tail=provider.job_logs(job.provider_name, tail=LOG_TAIL_LINES)
        )
        return "poll"
    if status.state == JobState.SUCCEEDED:
        return _finish(provider, job, S.SUCCEEDED, "", 0)
    if status.state == JobState.CANCELED:
        return _finish(provider, job, S.CANCELLED, "Cancelled on the compute.", None)
    code = _exit_code(status)
    reason = f"The job's command failed ({status.detail or 'no detail'})."
    return _finish(provider, job, S.FAILED, reason, code)


@shared_task(**TASK_OPTIONS)
def job_advance(self: Task, *, job_id: int, errors: int = 0) -> str:
    """Carry the job on until it ends (see the module's docstring)."""
    from experiments import jobs
    from experiments.job_models import Job

    task_id = self.request.id or ""
    owner = lease_owner_for(self)
    job = jobs.job_claim(job_id=job_id, task_id=task_id, owner=owner)
    if job is None:
        return "nothing to claim"
    try:
        with lease_kept(Job, job_id, owner=owner):
            outcome = advance(job)
    except TransientProviderError as exc:
        if errors + 1 >= settings.WORKSPACES_MAX_ERRORS:
            jobs.job_mark_failed(job_id=job_id, reason=f"Failed after {errors + 1} tries: {exc}")
            provider_cancel_quietly(job)
            return "failed"
        delay = background.backoff_seconds(errors, base=settings.WORKSPACES_RETRY_BASE_SECONDS)
        jobs.job_release(job_id=job_id, task_id=task_id, delay=delay)
        raise self.retry(kwargs={"job_id": job_id, "errors": errors + 1}, countdown=delay) from exc
    except ProviderError as exc:
        provider_cancel_quietly(job)
        jobs.job_mark_failed(job_id=job_id, reason=str(exc)[:500])
        return "failed"
    if outcome != "poll":
        return outcome
    delay = poll_seconds()
    jobs.job_release(job_id=job_id, task_id=task_id, delay=delay)
    raise self.retry(kwargs={"job_id": job_id, "errors": 0}, countdown=delay)
