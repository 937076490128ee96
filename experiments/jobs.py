"""Writes to training jobs, each a transaction with its audit event.

The ones a person triggers (``job_create``, ``job_cancel``, ``job_rerun``) and
the ones a task of the ``training`` queue records (``job_claim``,
``job_mark_running``, ``job_mark_finished``, ...). A new job needs the
project's signed-off charter and is counted against the project's and the
user's quotas and budgets through compute accounting; over quota, a platform
admin decides (the ``job_compute`` approval kind).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone
from packaging.requirements import InvalidRequirement, Requirement

from accounts.models import User
from audit.services import audit_record
from background.leases import LeasedWork, lease_seconds, lease_waiting
from charter.gates import require_signed_charter
from charter.rules import METRICS
from compute.consumers import Holding
from compute.models import ComputeSize, UsageInterval
from compute.selectors import sizes_offered
from compute.services import Demand, QuotaDecision, quota_decide, usage_close, usage_open
from datasets.models import Snapshot, Split, SplitStatus
from experiments import job_code, tasks
from experiments.errors import MlflowError
from experiments.job_models import FINISHED_STATES, Job, JobKind, JobState
from experiments.models import Experiment, Lifecycle, RunStatus
from experiments.services import experiment_create, now_ms, run_create, run_log_inputs
from governance.approvals import ApprovalKind, register
from governance.models import ApprovalRequest, ApprovalState
from governance.services import approval_request_create, approval_withdraw
from projects.models import Membership, Project

S = JobState
APPROVAL_KIND = "job_compute"
TEMPLATES_DIR = Path(__file__).with_name("job_templates")
TEMPLATES = {
    "baseline": "baseline.py",
    "sweep": "sweep_runner.py",
    "automl": "automl.py",
    "validate": "validate.py",
    "batch_score": "batch_score.py",
}
# A sweep over the user's own code: its runner, put beside the code under this name.
SWEEP_RUNNER_NAME = ".stagegate_sweep_runner.py"
FAMILIES = ("gbm", "linear")
# The baseline's library: scikit-learn's estimators, or LightGBM's (gradient boosting).
MODELS = ("sklearn", "lightgbm")
KINDS = tuple(JobKind.values)
COMMAND_MAX = 2000
WALL_CLOCK_RANGE = (60, 7 * 24 * 3600)
NAME_RE = re.compile(r"^[\w .:()-]{1,100}$")
# States in which a job holds (or is about to hold) its compute.
HOLDING_STATES = (S.QUEUED, S.RUNNING, S.CANCELLING)
SPLIT_TAG = "stagegate.split"
JOB_TAG = "stagegate.job"


class JobConflict(Exception):
    """The action does not fit the job's state; HTTP 409."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


# --- reading what a job needs ----------------------------------------------------


def template_path(template: str) -> Path:
    return TEMPLATES_DIR / TEMPLATES[template]


def template_digest(template: str) -> str:
    """The sha256 of the template's code: the job keeps it, so a run can be
    traced to the exact code it ran."""
    return hashlib.sha256(template_path(template).read_bytes()).hexdigest()


def _require_writer(actor: User, project: Project) -> None:
    membership = Membership.objects.filter(project=project, user=actor).first()
    if membership is None or not membership.can_write:
        raise PermissionDenied("Only members who may change the project start jobs.")


def _baseline_command(
    *,
    task: str,
    target: str,
    metric: str,
    family: str,
    model: str = "sklearn",
    template: str = "baseline",
) -> str:
    return " ".join(
        [
            "python",
            TEMPLATES[template],
            f"--task={shlex.quote(task)}",
            f"--target={shlex.quote(target)}",
            f"--metric={shlex.quote(metric)}",
            f"--family={shlex.quote(family)}",
            *([f"--model={shlex.quote(model)}"] if model != "sklearn" else []),
        ]
    )


def _template_command(
    template: str, *, task: str, target: str, metric: str, family: str, config: dict[str, Any]
) -> str:
    """The command of a sweep's or an AutoML run's job: its runner, the
    charter's question and the configuration its service checked."""
    words = [
        "python",
        TEMPLATES[template],
        f"--task={shlex.quote(task)}",
        f"--target={shlex.quote(target)}",
        f"--metric={shlex.quote(metric)}",
    ]
    if template == "sweep":
        words.append(f"--family={shlex.quote(family)}")
    words.append(f"--config={shlex.quote(json.dumps(config, sort_keys=True))}")
    return " ".join(words)


def requirements_clean(requirements: Sequence[str] | str) -> list[str]:
    """The job's requirements, one per line: package names with versions from
    the index (``lightgbm==4.7.0``, ``polars>=1``); no URLs, paths or pip
    options, which could make the builder fetch or run anything else."""
    lines = requirements.splitlines() if isinstance(requirements, str) else list(requirements)
    clean: list[str] = []
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") or "://" in line or line.startswith((".", "/")):
            raise ValidationError(
                {
                    "requirements": f"“{line[:80]}”: name a package (and versions), not an option or a path."
                }
            )
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise ValidationError(
                {"requirements": f"“{line[:80]}” is not a requirement: {exc}"}
            ) from exc
        if requirement.url:
            raise ValidationError(
                {"requirements": f"“{line[:80]}”: packages come from the index, not from a URL."}
            )
        if str(requirement) not in clean:
            clean.append(str(requirement))
    if len(clean) > settings.JOBS_MAX_REQUIREMENTS:
        raise ValidationError(
            {"requirements": f"At most {settings.JOBS_MAX_REQUIREMENTS} requirements."}
        )
    return clean


def _command_clean(command: str) -> str:
    command = (command or "").strip()
    if not command:
        raise ValidationError(
            {"command": "Give the command that runs the code (e.g. python train.py)."}
        )
    if len(command) > COMMAND_MAX or "\x00" in command:
        raise ValidationError({"command": f"A command of at most {COMMAND_MAX} characters."})
    return command


def _code_for(
    *,
    kind: str,
    template: str,
    archive: IO[bytes] | None,
    repository_url: str,
    repository_ref: str,
    code_digest: str,
) -> str:
    """The job's code digest: the template's, the uploaded archive's, a re-run's
    own (the same code again), or blank for a repository the worker fetches."""
    if code_digest:
        if not job_code.SHA256_RE.match(code_digest):
            raise ValidationError({"code": "Not a code digest."})
        return code_digest
    if kind == JobKind.TEMPLATE:
        return template_digest(template)
    if kind == JobKind.REPOSITORY:
        try:
            job_code.check_repository(repository_url, repository_ref)
        except job_code.CodeRefused as exc:
            raise ValidationError({"repository_url": str(exc)}) from exc
        return ""
    if archive is None:
        raise ValidationError({"archive": "Upload the code as a zip or tar.gz archive."})
    try:
        return job_code.archive_store(archive).digest
    except job_code.CodeRefused as exc:
        raise ValidationError({"archive": str(exc)}) from exc


def job_holdings(*, project_id: int | None = None, user_id: int | None = None) -> list[Holding]:
    """What unfinished jobs hold, for compute accounting (one query)."""
    rows = Job.objects.filter(state__in=HOLDING_STATES)
    if project_id is not None:
        rows = rows.filter(project_id=project_id)
    if user_id is not None:
        rows = rows.filter(created_by_id=user_id)
    return [
        Holding("experiments.job", pk, project, user, vcpus, gpus, 0)
        for pk, project, user, vcpus, gpus in rows.values_list(
            "pk", "project_id", "created_by_id", "size__vcpus", "size__gpus"
        )
    ]


def _demand(job: Job) -> Demand:
    return Demand(
        size=job.size,
        resource=("experiments.job", job.pk) if job.pk else None,
    )


# --- transitions -------------------------------------------------------------------


def _transition(
    job: Job,
    state: str,
    *,
    actor: User | None,
    action: str,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Move a locked job to ``state`` and audit it (caller holds the transaction)."""
    now = now or timezone.now()
    previous = job.state
    job.state = state
    job.state_changed_at = now
    fields = ["state", "state_changed_at"]
    if reason is not None:
        job.state_reason = reason[:500]
        fields.append("state_reason")
    if state in FINISHED_STATES:
        job.task_id = ""
        job.lease_owner = ""
        job.lease_expires_at = None
        job.ended_at = job.ended_at or now
        fields += ["task_id", "lease_owner", "lease_expires_at", "ended_at"]
    job.save(update_fields=fields)
    audit_record(
        action=action,
        actor=actor,
        project=job.project,
        obj=job,
        payload={
            "from": previous,
            "to": state,
            **({"reason": reason} if reason else {}),
            **(payload or {}),
        },
    )


def _locked(job_id: int) -> Job:
    return (
        Job.objects.select_for_update(of=("self",))
        .select_related("project", "size", "created_by", "run__experiment", "split")
        .get(pk=job_id)
    )


def _dispatch(job_id: int, *, delay: float = 0.0) -> None:
    """Send the job's task after commit; the row waits for a worker under a lease."""
    Job.objects.filter(pk=job_id).update(task_id="", **lease_waiting(delay=delay))
    transaction.on_commit(lambda: tasks.job_advance.delay(job_id=job_id))


def _experiment_for(*, actor: User, project: Project, name: str) -> Experiment:
    experiment = Experiment.objects.filter(project=project, name=name).first()
    if experiment is None:
        try:
            experiment = experiment_create(actor=actor, project=project, name=name)
        except MlflowError as exc:
            # Made meanwhile by a job started at the same moment: use it.
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = Experiment.objects.get(project=project, name=name)
    if experiment.lifecycle_stage != Lifecycle.ACTIVE:
        raise ValidationError({"experiment": f"The experiment “{name}” is deleted."})
    return experiment


def job_create(
    *,
    actor: User,
    project: Project,
    split: Split,
    size: ComputeSize,
    template: str = "baseline",
    family: str = "gbm",
    wall_clock_minutes: int = 60,
    experiment_name: str = "",
    name: str = "",
    rerun_of: Job | None = None,
    config: dict[str, Any] | None = None,
    arguments: dict[str, str] | None = None,
    kind: str = JobKind.TEMPLATE,
    command: str = "",
    repository_url: str = "",
    repository_ref: str = "",
    archive: IO[bytes] | None = None,
    requirements: Sequence[str] | str = (),
    model: str = "sklearn",
    code_digest: str = "",
    repository_commit: str = "",
    snapshot: Snapshot | None = None,
) -> Job:
    """Start a job on a ready split of the project: a built-in template, or
    the user's code from a git repository (fetched by the worker) or an
    uploaded archive, run by ``command`` with ``requirements`` installed on
    top of the base environment.

    ``config`` is the checked configuration of the ``sweep`` and ``automl``
    templates (``experiments.sweeps``); the job keeps it in its parameters.
    ``arguments`` are more ``--name=value`` options of the template's
    command (the validation template's model URIs), quoted, and kept in the
    job's parameters. ``snapshot`` is a snapshot of the project the job reads
    besides the split (batch scoring's input, ``SG_INPUT_SNAPSHOT``).

    Creates the run it logs into (in ``experiment_name``, by default one
    experiment per template or kind of code), tags it with the job and the
    split and records the split's parts as the run's inputs. Within quota the
    job is queued at once; beyond it a platform admin decides, and the job
    waits for compute.
    """
    _require_writer(actor, project)
    if kind not in KINDS:
        raise ValidationError({"kind": "Choose a template, a repository or an archive."})
    is_template = kind == JobKind.TEMPLATE
    if is_template and template not in TEMPLATES:
        raise ValidationError({"template": f"No built-in template “{template}”."})
    if is_template and family not in FAMILIES:
        raise ValidationError({"family": "Choose gbm (gradient boosting) or linear."})
    if is_template and model not in MODELS:
        raise ValidationError({"model": "Choose scikit-learn or LightGBM."})
    if is_template and model == "lightgbm" and family != "gbm":
        raise ValidationError({"model": "LightGBM is gradient boosting: choose the gbm family."})
    seconds = int(wall_clock_minutes) * 60
    low, high = WALL_CLOCK_RANGE
    if not low <= seconds <= high:
        raise ValidationError(
            {"wall_clock_minutes": f"Between {low // 60} and {high // 60} minutes."}
        )
    wanted = requirements_clean(requirements)
    # A sweep over the user's code: the runner is the job's command, and runs
    # the user's command once per trial (experiments.sweeps).
    user_sweep = not is_template and template == "sweep" and config is not None
    if not is_template:
        command = _command_clean(command)
    split = Split.objects.select_related("parent__source").get(pk=split.pk)
    if split.parent.source.project_id != project.pk:
        raise ValidationError({"split": "That split belongs to another project."})
    if split.status != SplitStatus.READY:
        raise ValidationError({"split": "That split is not ready yet."})
    if snapshot is not None and snapshot.source.project_id != project.pk:
        raise ValidationError({"snapshot": "That snapshot belongs to another project."})
    if not sizes_offered().filter(pk=size.pk).exists():
        raise ValidationError({"size": f"{size.name} is not offered."})
    repository_url = (repository_url or "").strip() if kind == JobKind.REPOSITORY else ""
    repository_ref = (repository_ref or "").strip() if kind == JobKind.REPOSITORY else ""
    if is_template:
        default_name = f"{template} ({'LightGBM' if model == 'lightgbm' else family})"
    elif repository_url:
        default_name = repository_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")[:60]
    else:
        default_name = "uploaded code"
    name = (name or "").strip() or default_name
    if not NAME_RE.match(name):
        raise ValidationError({"name": "1 to 100 letters, digits, spaces and . : - _ ( )"})
    experiment_name = (experiment_name or "").strip() or (
        f"job-{template}" if is_template else f"job-{kind}"
    )
    with transaction.atomic():
        charter = require_signed_charter(project, purpose="starting a training job")
        task, target, metric = (
            charter.question_type,
            charter.target_variable,
            charter.success_metric,
        )
        if is_template:
            if task not in ("classification", "regression") or not target:
                raise ValidationError(
                    {
                        "template": "The baseline template answers classification and "
                        "regression questions with a target; the charter asks for "
                        f"{task or 'nothing yet'}."
                    }
                )
            if metric not in METRICS:
                raise ValidationError({"template": "The charter names no success metric."})
            columns = {c["name"] for c in split.parent.columns}
            if target not in columns:
                raise ValidationError(
                    {"split": f"The split has no column “{target}” (the target)."}
                )
            if template in ("sweep", "automl"):
                command = _template_command(
                    template,
                    task=task,
                    target=target,
                    metric=metric,
                    family=family,
                    config=config or {},
                )
            else:
                command = " ".join(
                    [
                        _baseline_command(
                            task=task,
                            target=target,
                            metric=metric,
                            family=family,
                            model=model,
                            template=template,
                        ),
                        *(f"--{k}={shlex.quote(v)}" for k, v in (arguments or {}).items()),
                    ]
                )
            parameters: dict[str, Any] = {
                "task": task,
                "target": target,
                "metric": metric,
                "family": family,
                "model": model,
                "charter_version": charter.number,
                **({"config": config} if config is not None else {}),
                **(arguments or {}),
            }
        else:
            parameters = {"charter_version": charter.number}
            if user_sweep:
                config = {**(config or {}), "command": command}
                parameters["config"] = config
                command = " ".join(
                    [
                        "python",
                        SWEEP_RUNNER_NAME,
                        f"--config={shlex.quote(json.dumps(config, sort_keys=True))}",
                    ]
                )
        code_sha = _code_for(
            kind=kind,
            template=template,
            archive=archive,
            repository_url=repository_url,
            repository_ref=repository_ref,
            code_digest=code_digest,
        )
        experiment = _experiment_for(actor=actor, project=project, name=experiment_name)
        job = Job.objects.create(
            project=project,
            created_by=actor,
            rerun_of=rerun_of,
            name=name,
            kind=kind,
            template=template if is_template or user_sweep else "",
            code_digest=code_sha,
            repository_url=repository_url,
            repository_ref=repository_ref,
            repository_commit=repository_commit if code_sha else "",
            command=command,
            requirements=wanted,
            parameters=parameters,
            snapshot=snapshot or split.parent,
            split=split,
            size=size,
            wall_clock_max_seconds=seconds,
            provider=settings.CLOUD_PROVIDER,
        )
        tags = {
            JOB_TAG: str(job.pk),
            SPLIT_TAG: str(split.pk),
            "stagegate.snapshot": str(split.parent_id),
        }
        if code_sha:
            tags["stagegate.code_digest"] = code_sha
        if repository_url:
            tags["stagegate.repository"] = repository_url
        run = run_create(
            actor=actor,
            experiment=experiment,
            run_name=f"{name} #{job.pk}",
            tags=tags,
        )
        run_log_inputs(
            actor=actor,
            run=run,
            datasets=[
                {
                    "name": f"{split.parent.source.name} v{split.parent.version} split "
                    f"{split.number} {part}",
                    "digest": digest[:36],
                    "source_type": "stagegate",
                    "source": f"split:{split.pk}:{part}",
                    "context": part,
                }
                for part, digest in (("train", split.train_sha256), ("test", split.test_sha256))
            ],
        )
        from cloud.base import job_name

        job.run = run
        # Azure ML job names are permanent per workspace: the install's salt
        # keeps them apart from another install's (as for workspaces).
        salt = str(settings.AZURE_NAME_SALT) if job.provider == "azure" else ""
        job.provider_name = job_name(job.pk, salt)
        job.save(update_fields=["run", "provider_name"])
        audit_record(
            action="job.created",
            actor=actor,
            project=project,
            obj=job,
            payload={
                "name": name,
                "kind": kind,
                **({"template": template, "model": model} if is_template else {}),
                **(
                    {"repository_url": repository_url, "repository_ref": repository_ref}
                    if repository_url
                    else {}
                ),
                "command": command,
                "requirements": wanted,
                "code_digest": job.code_digest,
                "split": split.pk,
                "size": size.name,
                "wall_clock_max_seconds": seconds,
                "run_id": run.uuid,
                **({"rerun_of": rerun_of.pk} if rerun_of else {}),
            },
        )
        decision = quota_decide(project=project, user=actor, demand=_demand(job))
        if decision.within:
            _transition(job, S.QUEUED, actor=actor, action="job.queued", payload={"by": "quota"})
            _dispatch(job.pk)
        else:
            _ask_admin(actor=actor, job=job, decision=decision)
            _transition(
                job,
                S.WAITING_FOR_COMPUTE,
                actor=actor,
                action="job.approval_requested",
                reason="Over quota: a platform admin decides.",
                payload={"exceeded": decision.exceeded},
            )
    return job


def job_code_fetched(*, job_id: int, digest: str, commit: str) -> bool:
    """The worker fetched the job's repository: its code is ``digest`` now
    (the commit ``commit``), for this run and every re-run."""
    from experiments.models import RunTag

    with transaction.atomic():
        job = _locked(job_id)
        if job.code_digest:
            return False
        job.code_digest = digest
        job.repository_commit = commit[:40]
        job.save(update_fields=["code_digest", "repository_commit"])
        if job.run_id is not None:
            for key, value in (("stagegate.code_digest", digest), ("stagegate.commit", commit)):
                RunTag.objects.update_or_create(
                    run_id=job.run_id, key=key, defaults={"value": value}
                )
        audit_record(
            action="job.code_fetched",
            actor=None,
            project=job.project,
            obj=job,
            payload={
                "repository_url": job.repository_url,
                "repository_ref": job.repository_ref,
                "commit": commit,
                "code_digest": digest,
            },
        )
    return True


def _ask_admin(*, actor: User, job: Job, decision: QuotaDecision) -> ApprovalRequest:
    words = "; ".join(decision.exceeded)
    request = approval_request_create(
        actor=actor,
        kind=APPROVAL_KIND,
        project=job.project,
        subject=job,
        summary=(
            f"Training job “{job.name}” on {job.size.name} ({job.size.vcpus} vCPUs, "
            f"about {decision.hourly:.2f} {job.size.currency}/hour); {words}"
        )[:500],
        requires_staff=True,
        url=_page(job),
    )
    job.approval = request
    job.quota_exceeded = decision.exceeded
    job.save(update_fields=["approval", "quota_exceeded"])
    return request


def _page(job: Job) -> str:
    return f"/projects/{job.project.slug}/jobs/{job.pk}/"


def _may_manage(actor: User, job: Job) -> None:
    _require_writer(actor, job.project)


def job_cancel(*, actor: User, job: Job) -> Job:
    """Cancel a job: one that never reached the provider ends at once; a
    submitted one is cancelling until the provider has killed its processes."""
    _may_manage(actor, job)
    with transaction.atomic():
        job = _locked(job.pk)
        if job.finished or job.state == S.CANCELLING:
            raise JobConflict(
                f"The job is {JobState(job.state).label.lower()}; it cannot be cancelled.",
                job.state,
            )
        if job.approval_id and job.state == S.WAITING_FOR_COMPUTE:
            request = ApprovalRequest.objects.get(pk=job.approval_id)
            if request.state == ApprovalState.PENDING:
                job.approval = None
                job.save(update_fields=["approval"])
                approval_withdraw(actor=request.requested_by, approval_id=request.pk)
        reason = f"Cancelled by {actor.get_username()}."
        if not job.submitted:
            _finish_run(job, RunStatus.KILLED)
            _transition(job, S.CANCELLED, actor=actor, action="job.cancelled", reason=reason)
        else:
            _transition(job, S.CANCELLING, actor=actor, action="job.cancelling", reason=reason)
            _dispatch(job.pk)
    return job


def job_rerun(
    *,
    actor: User,
    job: Job,
    size: ComputeSize | None = None,
    family: str | None = None,
    model: str | None = None,
    command: str | None = None,
    split: Split | None = None,
) -> Job:
    """A new job with the same code (the same digest: a repository is not
    fetched again), requirements, inputs and limits, or a changed size, model
    family, library, command or split (newer data of the same source),
    logging into a new run of the same experiment."""
    split = split or job.split
    if split is None:
        raise ValidationError({"split": "The job has no split to run on again."})
    if job.kind == JobKind.REPOSITORY and not job.code_digest:
        raise ValidationError({"code": "The job's repository was never fetched: start it anew."})
    experiment_name = job.run.experiment.name if job.run else ""
    return job_create(
        actor=actor,
        project=job.project,
        split=split,
        size=size or job.size,
        template=job.template or "baseline",
        family=family or str(job.parameters.get("family", "gbm")),
        wall_clock_minutes=max(1, job.wall_clock_max_seconds // 60),
        experiment_name=experiment_name,
        name=job.name,
        rerun_of=job,
        config=job.parameters.get("config"),
        arguments={k: str(v) for k, v in job.parameters.items() if k not in _OWN_PARAMETERS}
        or None,
        kind=job.kind,
        command=command or str((job.parameters.get("config") or {}).get("command") or job.command),
        repository_url=job.repository_url,
        repository_ref=job.repository_ref,
        requirements=list(job.requirements),
        model=model or str(job.parameters.get("model", "sklearn")),
        code_digest="" if job.kind == JobKind.TEMPLATE else job.code_digest,
        repository_commit=job.repository_commit,
    )


# The parameters job_create records itself; any other is one of its ``arguments``.
_OWN_PARAMETERS = frozenset(
    {"task", "target", "metric", "family", "model", "charter_version", "config", "rerun_of"}
)


# --- what the tasks record ---------------------------------------------------------

WORKING = (S.QUEUED, S.WAITING_FOR_COMPUTE, S.RUNNING, S.CANCELLING)


def _active() -> QuerySet[Job]:
    """Jobs a task carries on: all unfinished ones, except those an admin
    has not approved yet."""
    return Job.objects.filter(state__in=WORKING).filter(
        Q(approval__isnull=True) | Q(approval__state=ApprovalState.APPROVED)
    )


def job_claim(*, job_id: int, task_id: str, owner: str) -> Job | None:
    """Claim the job for one task run and take its lease (a conditional
    update: a duplicate task finds nothing; the same task, redelivered,
    claims it again). Bookkeeping: not audited."""
    now = timezone.now()
    mine = Q(task_id="") | Q(task_id=task_id) | Q(lease_expires_at__lt=now)
    claimed = (
        _active()
        .filter(Q(pk=job_id) & mine)
        .update(
            task_id=task_id,
            lease_owner=owner[:255],
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
        )
    )
    if not claimed:
        return None
    return Job.objects.select_related(
        "project", "size", "created_by", "run__experiment", "split"
    ).get(pk=job_id)


def job_release(*, job_id: int, task_id: str, delay: float) -> bool:
    """Give the lease back before the next poll (see workspaces' release)."""
    return bool(
        Job.objects.filter(pk=job_id, task_id=task_id, state__in=WORKING).update(
            **lease_waiting(delay=delay)
        )
    )


def job_mark_submitted(*, job_id: int) -> bool:
    """The provider holds the job now: a redelivered task polls it."""
    return bool(Job.objects.filter(pk=job_id, state__in=WORKING).update(submitted=True))


def job_mark_waiting(*, job_id: int, detail: str) -> bool:
    with transaction.atomic():
        job = _locked(job_id)
        if job.state != S.QUEUED:
            return False
        _transition(
            job,
            S.WAITING_FOR_COMPUTE,
            actor=None,
            action="job.waiting_for_compute",
            reason=detail or "Waiting for a free slot.",
        )
    return True


def job_mark_running(*, job_id: int, now: datetime | None = None) -> bool:
    """The provider started the job: metering starts."""
    now = now or timezone.now()
    with transaction.atomic():
        job = _locked(job_id)
        if job.state not in (S.QUEUED, S.WAITING_FOR_COMPUTE):
            return False
        job.started_at = job.started_at or now
        job.save(update_fields=["started_at"])
        usage_open(
            resource=job,
            name=job.name,
            project_id=job.project_id,
            user_id=job.created_by_id,
            size=job.size,
            nodes=1,
            now=now,
        )
        _transition(job, S.RUNNING, actor=None, action="job.running", reason="", now=now)
    return True


def job_log_tail_set(*, job_id: int, tail: str) -> None:
    """The last lines of the job's output, for its page (not audited)."""
    Job.objects.filter(pk=job_id).update(log_tail=tail[-20_000:])


def _finish_run(job: Job, status: str) -> None:
    from experiments.models import Run

    if job.run_id is None:
        return
    Run.objects.filter(pk=job.run_id, status=RunStatus.RUNNING).update(
        status=status, end_time=now_ms()
    )


RUN_STATUS = {
    S.SUCCEEDED: RunStatus.FINISHED,
    S.FAILED: RunStatus.FAILED,
    S.CANCELLED: RunStatus.KILLED,
}


def job_mark_finished(
    *,
    job_id: int,
    state: str,
    reason: str = "",
    exit_code: int | None = None,
    log_tail: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record how the job ended: its state, exit code, the end of its log,
    the run's status, and its cost (metering stops)."""
    now = now or timezone.now()
    if state not in FINISHED_STATES:
        raise ValueError(state)
    with transaction.atomic():
        job = _locked(job_id)
        if job.finished:
            return False
        usage_close(resource=job, now=now)
        job.exit_code = exit_code
        job.cost = UsageInterval.objects.filter(
            resource_type="experiments.job", resource_id=job.pk, ended_at__isnull=False
        ).aggregate(total=Sum("cost"))["total"] or Decimal(0)
        fields = ["exit_code", "cost"]
        if log_tail is not None:
            job.log_tail = log_tail[-20_000:]
            fields.append("log_tail")
        job.save(update_fields=fields)
        _finish_run(job, RUN_STATUS[JobState(state)])
        _transition(
            job,
            state,
            actor=None,
            action=f"job.{state}",
            reason=reason,
            payload={
                "exit_code": exit_code,
                "cost": str(job.cost),
                "seconds": round(job.duration_seconds or 0.0, 1),
            },
            now=now,
        )
    return True


def job_mark_failed(*, job_id: int, reason: str) -> bool:
    return job_mark_finished(job_id=job_id, state=S.FAILED, reason=reason)


def _give_up(job: Job, reason: str) -> None:
    """Recovery gave up on the job: cancel whatever the provider still runs."""
    if job.submitted:
        tasks.provider_cancel_quietly(job)
    job_mark_failed(job_id=job.pk, reason=reason)


# What the recovery beat knows of jobs: an unfinished job whose lease ran
# out lost its task; it is sent again (a fresh task polls the provider, which
# holds the job by name: nothing runs twice), and failed after
# BACKGROUND_MAX_ATTEMPTS.
JOBS_WORK = LeasedWork(
    name="training_job",
    model=Job,
    active=_active,
    requeue={"task_id": ""},
    redispatch=lambda row: tasks.job_advance.delay(job_id=row.pk),
    fail=_give_up,
)


# --- the approval kind -------------------------------------------------------------


def _subject(request: Any) -> Job | None:
    job = Job.objects.select_for_update().filter(pk=int(request.subject_id)).first()
    if job is None or job.approval_id != request.pk:
        return None
    return _locked(job.pk)


def _on_approved(*, request: Any, actor: User) -> None:
    job = _subject(request)
    if job is None or job.state != S.WAITING_FOR_COMPUTE:
        return
    _transition(
        job,
        S.QUEUED,
        actor=actor,
        action="job.queued",
        reason="",
        payload={"by": "admin", "approval": request.pk},
    )
    _dispatch(job.pk)


def _undecided(request: Any, actor: User, verb: str) -> None:
    job = _subject(request)
    if job is None or job.finished:
        return
    why = f"Request {verb}" + (f": {request.comment}" if request.comment else ".")
    _finish_run(job, RunStatus.KILLED)
    _transition(job, S.CANCELLED, actor=actor, action=f"job.request_{verb}", reason=why)


def _describe(*, request: Any) -> dict[str, Any]:
    job = (
        Job.objects.select_related("size", "created_by", "project")
        .filter(pk=int(request.subject_id))
        .first()
    )
    if job is None:
        return {}
    return {
        "job": job.name,
        "template": job.template,
        "state": job.state,
        "owner": job.created_by.username,
        "size": job.size.name,
        "vcpus": job.size.vcpus,
        "gpus": job.size.gpus,
        "hourly_estimate": str(job.size.hourly_price),
        "currency": job.size.currency,
        "wall_clock_max_minutes": job.wall_clock_max_seconds // 60,
        "quota_exceeded": "; ".join(job.quota_exceeded),
        "page": _page(job),
    }


def _rows(subject: dict[str, Any]) -> list[tuple[str, str]]:
    if not subject:
        return []
    hourly = Decimal(subject["hourly_estimate"]).quantize(Decimal("0.01"))
    rows = [
        ("Request", f"Training job “{subject['job']}” for {subject['owner']}"),
        ("Size", f"{subject['size']} ({subject['vcpus']} vCPUs)"),
        (
            "Price",
            f"about {hourly} {subject['currency']} an hour, "
            f"at most {subject['wall_clock_max_minutes']} minutes",
        ),
        ("State", JobState(subject["state"]).label),
    ]
    if subject.get("quota_exceeded"):
        rows.append(("Why an admin decides", subject["quota_exceeded"]))
    return rows


register(
    ApprovalKind(
        name=APPROVAL_KIND,
        on_approved=_on_approved,
        on_rejected=lambda *, request, actor: _undecided(request, actor, "rejected"),
        on_withdrawn=lambda *, request, actor: _undecided(request, actor, "withdrawn"),
        describe=_describe,
        rows=_rows,
        label="Training job over quota",
    )
)
