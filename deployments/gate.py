"""Writes of the gate: validation of model versions and deployment requests.

Each service is keyword-only, runs in a transaction and is audited.

- ``validation_run`` starts a validation job (template ``validate`` on the
  project's compute, through ``experiments.jobs.job_create``) for a
  registered version, with its inputs pinned by digest; ``validation_record``
  stores what the job reported (``deployments.gate_tasks`` reads it back).
- ``deployment_request_create`` asks for a deployment of a version. It goes
  through the two-step governance chain of the ``deployment`` approval kind:
  the project's validator, then its business approver, four eyes throughout.
  A version whose latest validation did not pass (or that has none) is
  blocked until a platform admin overrides with a written justification
  (``deployment_request_override``).
- On the last approval the version takes the ``champion`` alias, the one
  before keeps ``previous``, and :func:`deployment_request_approved` runs:
  the one place serving hooks into.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from charter.gates import require_signed_charter
from charter.rules import METRICS
from compute.models import ComputeSize
from compute.selectors import sizes_offered
from datasets.models import Split, SplitStatus
from deployments import gate_tasks
from deployments.gate_models import (
    DeploymentRequest,
    RequestState,
    Rollout,
    Target,
    ValidationReport,
    ValidationState,
)
from experiments import jobs
from experiments.models import ModelAlias, ModelVersion, Param, RunTag
from experiments.services import alias_set
from governance.approvals import ApprovalKind, Step, register
from governance.services import approval_request_create, approval_withdraw
from projects.models import Membership, Project, Role

APPROVAL_KIND = "deployment"
CHAMPION, PREVIOUS = "champion", "previous"
MAX_SEGMENT_COLUMNS = 5
LATENCY_BUDGET_MS = 200.0
CANARY_RANGE = (1, 50)
BAKING_RANGE = (5, 7 * 24 * 60)
MIN_JUSTIFICATION = 20
# A month of a real-time endpoint: one instance around the clock.
HOURS_A_MONTH = Decimal(730)
# A month of batch scoring: one hour a day.
BATCH_HOURS_A_MONTH = Decimal(30)


def _membership(actor: User, project: Project) -> Membership | None:
    return Membership.objects.filter(project=project, user=actor).first()


def _require_writer(actor: User, project: Project, what: str) -> None:
    membership = _membership(actor, project)
    if membership is None or not membership.can_write:
        raise PermissionDenied(f"Only members who may change the project {what}.")


def better(direction: str, value: float, than: float) -> bool:
    """Whether ``value`` is at least as good as ``than`` in the charter's direction."""
    return value <= than if direction == "lower" else value >= than


# --- validation ----------------------------------------------------------------------


def version_split(version: ModelVersion) -> Split | None:
    """The split the version was trained on: its run's ``stagegate.split`` tag."""
    if version.run_id is None:
        return None
    tag = RunTag.objects.filter(run_id=version.run_id, key=jobs.SPLIT_TAG).first()
    if tag is None or not tag.value.isdigit():
        return None
    return Split.objects.select_related("parent__source").filter(pk=int(tag.value)).first()


def champion_of(version: ModelVersion) -> ModelVersion | None:
    """The version holding the ``champion`` alias of the same model, if another."""
    alias = (
        ModelAlias.objects.filter(registered_model_id=version.registered_model_id, alias=CHAMPION)
        .select_related("version")
        .first()
    )
    if alias is None or alias.version_id == version.pk:
        return None
    return alias.version


def _segment_columns(raw: list[str] | str, split: Split) -> list[str]:
    if isinstance(raw, str):
        raw = raw.split(",")
    columns = [c.strip() for c in raw if c and c.strip()]
    if len(columns) > MAX_SEGMENT_COLUMNS:
        raise ValidationError({"segments": f"At most {MAX_SEGMENT_COLUMNS} segment columns."})
    known = {c["name"] for c in split.parent.columns}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValidationError(
            {"segments": "The split has no column " + ", ".join(f"“{c}”" for c in unknown) + "."}
        )
    return list(dict.fromkeys(columns))


def validation_run(
    *,
    actor: User,
    version: ModelVersion,
    segments: list[str] | str = (),  # type: ignore[assignment]
    risks: str = "",
    size: ComputeSize | None = None,
    split: Split | None = None,
) -> ValidationReport:
    """Validate a version as a job on the project's compute; returns the
    report, running until the job's result is read back.

    ``split``: score it on another ready split of the source it was trained
    on (newer labelled data, for the charter's metric over time) instead of
    its own."""
    version = ModelVersion.objects.select_related("registered_model__project").get(pk=version.pk)
    project = version.registered_model.project
    _require_writer(actor, project, "validate models")
    trained_on = version_split(version)
    if trained_on is None:
        raise ValidationError(
            {
                "version": "The version names no split it was trained on: validate a version "
                "registered from a training job's run."
            }
        )
    if split is not None:
        split = Split.objects.select_related("parent__source").get(pk=split.pk)
        if split.parent.source_id != trained_on.parent.source_id:
            raise ValidationError({"split": "Choose a split of the source it was trained on."})
        if split.status != SplitStatus.READY:
            raise ValidationError({"split": "That split is not ready yet."})
    split = split or trained_on
    columns = _segment_columns(segments, split)
    size = size or sizes_offered().order_by("hourly_price", "vcpus").first()
    if size is None:
        raise ValidationError({"size": "No compute size is offered."})
    risks = (risks or "").strip()[:5000]
    with transaction.atomic():
        charter = require_signed_charter(project, purpose="validating a model")
        champion = champion_of(version)
        name = version.registered_model.name
        arguments = {
            "model-uri": f"models:/{name}/{version.version}",
            "champion-uri": f"models:/{name}/{champion.version}" if champion else "",
            "segments": ",".join(columns),
            "train-sha256": split.train_sha256,
            "test-sha256": split.test_sha256,
            "latency-budget-ms": str(LATENCY_BUDGET_MS),
        }
        job = jobs.job_create(
            actor=actor,
            project=project,
            split=split,
            size=size,
            template="validate",
            experiment_name="job-validate",
            name=f"validate {name} v{version.version}"[:100],
            wall_clock_minutes=60,
            arguments=arguments,
        )
        report = ValidationReport.objects.create(
            project=project,
            version=version,
            job=job,
            split=split,
            requested_by=actor,
            segment_columns=columns,
            risks=risks,
            charter_version=charter.number,
            question=charter.objective or charter.business_problem,
            metric=charter.success_metric,
            threshold=charter.threshold,
            direction=_direction(charter.direction, charter.success_metric),
            champion=champion,
            snapshot_digest=split.parent.sha256,
            train_digest=split.train_sha256,
            test_digest=split.test_sha256,
            code_digest=job.code_digest,
            approach=_approach(version),
            parameters=_parameters(version),
        )
        audit_record(
            action="validation.started",
            actor=actor,
            project=project,
            obj=report,
            payload={
                "model": name,
                "version": version.version,
                "job": job.pk,
                "split": split.pk,
                "champion": champion.version if champion else None,
                "segments": columns,
            },
        )
        report_id = report.pk
        transaction.on_commit(lambda: gate_tasks.validation_collect.delay(report_id=report_id))
    return report


def _direction(direction: str, metric: str) -> str:
    if direction in ("higher", "lower"):
        return direction
    known = METRICS.get(metric)
    return str(known.direction) if known else "higher"


def _parameters(version: ModelVersion) -> dict[str, str]:
    if version.run_id is None:
        return {}
    return dict(Param.objects.filter(run_id=version.run_id).values_list("key", "value")[:200])


def _approach(version: ModelVersion) -> str:
    params = _parameters(version)
    estimator = params.get("estimator", "")
    if not estimator:
        return "Registered from a run; its parameters say no more about the approach."
    family = {"gbm": "gradient boosting", "linear": "a linear model"}.get(
        params.get("family", ""), params.get("family", "")
    )
    return (
        f"{params.get('task', 'A model').capitalize()} with {family} ({estimator}), "
        f"predicting “{params.get('target', '')}”; numbers scaled, categories one-hot encoded."
    )


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _segments(found: Any) -> tuple[list[dict[str, Any]], float | None]:
    rows: list[dict[str, Any]] = []
    gaps: list[float] = []
    for column in found if isinstance(found, list) else []:
        if not isinstance(column, dict):
            continue
        values = [
            {
                "value": str(r.get("value", ""))[:200],
                "rows": int(r.get("rows", 0) or 0),
                "metric": _float(r.get("value_metric")),
            }
            for r in (column.get("rows") or [])[:30]
            if isinstance(r, dict)
        ]
        gap = _float(column.get("gap"))
        if gap is not None:
            gaps.append(gap)
        rows.append(
            {
                "column": str(column.get("column", ""))[:200],
                "rows": values,
                "gap": gap,
                "error": str(column.get("error", ""))[:500],
            }
        )
    return rows, (max(gaps) if gaps else None)


def validation_record(
    *, report_id: int, result: dict[str, Any] | None, error: str = ""
) -> ValidationReport:
    """Store what the validation job reported (or why there is nothing)."""
    with transaction.atomic():
        report = (
            ValidationReport.objects.select_for_update()
            .select_related("project", "version__registered_model")
            .get(pk=report_id)
        )
        if report.finished:
            return report
        report.finished_at = timezone.now()
        if result is None:
            report.state = ValidationState.ERROR
            report.error = (error or "The validation job wrote no report.")[:5000]
        else:
            report.value = _float(result.get("value"))
            report.champion_value = _float(result.get("champion_value"))
            report.rows = int(result.get("rows") or 0) or None
            report.model_digest = str(result.get("model_sha256", ""))[:64]
            report.champion_digest = str(result.get("champion_sha256", ""))[:64]
            report.segments, report.segment_gap = _segments(result.get("segments"))
            integration = result.get("integration")
            report.integration = integration if isinstance(integration, dict) else {}
            report.integration_ok = bool(report.integration.get("ok"))
            if report.value is not None and report.threshold is not None:
                report.meets_threshold = better(report.direction, report.value, report.threshold)
            elif report.value is not None:
                report.meets_threshold = True  # the charter sets no threshold
            if report.value is not None and report.champion_value is not None:
                report.beats_champion = better(
                    report.direction, report.value, report.champion_value
                )
            report.metrics = {
                report.metric: report.value,
                **(
                    {f"champion {report.metric}": report.champion_value}
                    if report.champion_id
                    else {}
                ),
                "rows": report.rows,
            }
            if report.value is None:
                report.state = ValidationState.ERROR
                report.error = f"The {report.metric} of the version could not be computed."
            elif report.meets_threshold and report.integration_ok:
                report.state = ValidationState.PASSED
            else:
                report.state = ValidationState.FAILED
        report.save()
        audit_record(
            action=f"validation.{report.state}",
            actor=None,
            project=report.project,
            obj=report,
            payload={
                "version": report.version.version,
                "metric": report.metric,
                "value": report.value,
                "threshold": report.threshold,
                "champion_value": report.champion_value,
                "integration_ok": report.integration_ok,
                **({"error": report.error[:300]} if report.error else {}),
            },
        )
    return report


def latest_report(version: ModelVersion) -> ValidationReport | None:
    return (
        ValidationReport.objects.filter(version=version)
        .exclude(state=ValidationState.RUNNING)
        .order_by("-created_at", "-id")
        .first()
    )


# --- deployment requests -------------------------------------------------------------


def monthly_cost(size: ComputeSize | None, target: str) -> Decimal | None:
    """The estimated monthly cost of the target at the size's list price."""
    if size is None:
        return None
    hours = HOURS_A_MONTH if target == Target.REALTIME else BATCH_HOURS_A_MONTH
    return (size.hourly_price * hours).quantize(Decimal("0.01"))


def _summary(request: DeploymentRequest) -> str:
    v = request.version
    return (
        f"Deploy {v.registered_model.name} version {v.version} as "
        f"{Target(request.target).label.lower()} ({Rollout(request.rollout).label.lower()})"
    )


def _page(request: DeploymentRequest) -> str:
    return f"/projects/{request.project.slug}/deployments/{request.pk}/"


def _open_chain(*, actor: User, request: DeploymentRequest) -> None:
    approval = approval_request_create(
        actor=actor,
        kind=APPROVAL_KIND,
        project=request.project,
        subject=request,
        summary=_summary(request),
        url=_page(request),
    )
    request.approval = approval
    request.state = RequestState.PENDING
    request.save(update_fields=["approval", "state"])


def deployment_request_create(
    *,
    actor: User,
    version: ModelVersion,
    target: str,
    rollout: str = Rollout.ALL_AT_ONCE,
    reason: str,
    canary_percent: int | None = None,
    baking_minutes: int | None = None,
    size: ComputeSize | None = None,
    user_impact: str = "",
) -> DeploymentRequest:
    """Ask for a deployment of ``version``; pending approval when its latest
    validation passed, blocked otherwise (an admin may override)."""
    version = ModelVersion.objects.select_related("registered_model__project").get(pk=version.pk)
    project = version.registered_model.project
    _require_writer(actor, project, "request deployments")
    errors: dict[str, str] = {}
    if target not in Target.values:
        errors["target"] = "Choose a real-time endpoint or batch scoring."
    if rollout not in Rollout.values:
        errors["rollout"] = "Choose all at once or canary."
    if rollout == Rollout.CANARY:
        low, high = CANARY_RANGE
        if canary_percent is None or not low <= int(canary_percent) <= high:
            errors["canary_percent"] = f"A canary takes {low} to {high} % of the traffic."
        low, high = BAKING_RANGE
        if baking_minutes is None or not low <= int(baking_minutes) <= high:
            errors["baking_minutes"] = f"A baking period of {low} to {high} minutes."
        if target == Target.BATCH:
            errors["rollout"] = "Batch scoring is deployed all at once."
    else:
        canary_percent = baking_minutes = None
    reason = (reason or "").strip()
    if len(reason) < 10:
        errors["reason"] = "Say in a sentence why this version should go live."
    if size is not None and not sizes_offered().filter(pk=size.pk).exists():
        errors["size"] = f"{size.name} is not offered."
    if errors:
        raise ValidationError(errors)
    size = size or sizes_offered().order_by("hourly_price", "vcpus").first()
    with transaction.atomic():
        require_signed_charter(project, purpose="requesting a deployment")
        report = latest_report(version)
        request = DeploymentRequest.objects.create(
            project=project,
            version=version,
            report=report,
            requested_by=actor,
            target=target,
            rollout=rollout,
            canary_percent=canary_percent,
            baking_minutes=baking_minutes,
            size=size,
            reason=reason[:5000],
            user_impact=(user_impact or "").strip()[:5000],
            state=RequestState.BLOCKED,
            previous_champion=champion_of(version),
        )
        passed = report is not None and report.state == ValidationState.PASSED
        audit_record(
            action="deployment.requested",
            actor=actor,
            project=project,
            obj=request,
            payload={
                "model": version.registered_model.name,
                "version": version.version,
                "target": target,
                "rollout": rollout,
                "canary_percent": canary_percent,
                "baking_minutes": baking_minutes,
                "validation": report.pk if report else None,
                "validation_state": report.state if report else "missing",
            },
        )
        if passed:
            _open_chain(actor=actor, request=request)
    return request


def blocked_because(request: DeploymentRequest) -> str:
    report = request.report
    if report is None:
        return "The version has no finished validation."
    if report.state == ValidationState.ERROR:
        return f"The validation could not be computed: {report.error}"
    reasons = []
    if report.meets_threshold is False:
        reasons.append(
            f"its {report.metric} of {report.value:.4g} does not reach the charter's "
            f"threshold of {report.threshold:g}"
        )
    if report.integration_ok is False:
        reasons.append("the integration check failed")
    return "The validation failed: " + ("; ".join(reasons) or "see the report") + "."


def deployment_request_override(
    *, actor: User, request: DeploymentRequest, justification: str
) -> DeploymentRequest:
    """A platform admin lets a blocked request go on to the approval chain,
    with a written justification (audited). An admin who is a member of the
    project does not override its requests (four eyes)."""
    if not actor.is_staff:
        raise PermissionDenied("Only a platform admin overrides a failed validation.")
    justification = (justification or "").strip()
    if len(justification) < MIN_JUSTIFICATION:
        raise ValidationError(
            {"justification": f"Write why, in at least {MIN_JUSTIFICATION} characters."}
        )
    with transaction.atomic():
        request = (
            DeploymentRequest.objects.select_for_update()
            .select_related("project", "version__registered_model")
            .get(pk=request.pk)
        )
        if request.requested_by_id == actor.pk or _membership(actor, request.project):
            raise PermissionDenied(
                "You are a member of this project; another platform admin overrides."
            )
        if request.state != RequestState.BLOCKED:
            raise ValidationError(
                {"state": f"The request is {RequestState(request.state).label.lower()}."}
            )
        request.override_by = actor
        request.override_justification = justification[:5000]
        request.override_at = timezone.now()
        request.save(update_fields=["override_by", "override_justification", "override_at"])
        audit_record(
            action="deployment.override",
            actor=actor,
            project=request.project,
            obj=request,
            payload={
                "justification": justification[:1000],
                "why_blocked": blocked_because(request),
            },
        )
        _open_chain(actor=request.requested_by, request=request)
    return request


def deployment_request_withdraw(*, actor: User, request: DeploymentRequest) -> DeploymentRequest:
    """The requester takes back a request that is blocked or awaiting approval."""
    with transaction.atomic():
        request = DeploymentRequest.objects.select_for_update().get(pk=request.pk)
        if request.requested_by_id != actor.pk:
            raise PermissionDenied("Only the requester withdraws a request.")
        if request.state == RequestState.PENDING:
            current = current_step(request)
            if current is not None:
                approval_withdraw(actor=actor, approval_id=current.pk)
                return DeploymentRequest.objects.get(pk=request.pk)
        if request.state not in (RequestState.BLOCKED, RequestState.PENDING):
            raise ValidationError({"state": "The request is decided already."})
        _end(request, RequestState.WITHDRAWN, actor=actor, action="deployment.withdrawn")
    return request


def chain_of(request: DeploymentRequest) -> list[Any]:
    """The approval requests of the request's chain, first step first."""
    from governance.models import ApprovalRequest

    return list(
        ApprovalRequest.objects.filter(
            kind=APPROVAL_KIND,
            subject_type=DeploymentRequest._meta.label_lower,
            subject_id=str(request.pk),
        )
        .exclude(state="superseded")
        .select_related("decided_by")
        .order_by("step", "created_at")
    )


def current_step(request: DeploymentRequest) -> Any:
    """The pending approval of the request's chain, if any."""
    from governance.models import ApprovalRequest, ApprovalState

    return (
        ApprovalRequest.objects.filter(
            kind=APPROVAL_KIND,
            subject_type=DeploymentRequest._meta.label_lower,
            subject_id=str(request.pk),
            state=ApprovalState.PENDING,
        )
        .order_by("-step")
        .first()
    )


def _end(
    request: DeploymentRequest, state: str, *, actor: User, action: str, **payload: Any
) -> None:
    request.state = state
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_at"])
    audit_record(action=action, actor=actor, project=request.project, obj=request, payload=payload)


def deployment_request_approved(*, request: DeploymentRequest, actor: User) -> None:
    """Called once, in the approving transaction, after the last step of the
    gate approved ``request`` and the version took the ``champion`` alias
    (the one before it keeps ``previous``).

    A ``realtime`` request deploys the version behind its model's endpoint
    (``deployments.serving.endpoint_deploy``): all at once, or as a canary of
    ``request.canary_percent`` % that bakes for ``request.baking_minutes``
    before the health check promotes it. The scoring process starts in a task
    sent when the approval commits. An endpoint in the middle of another
    rollout refuses, and the approval is not given (the decider sees why).
    A ``batch`` request changes nothing here: it lets the project's writers
    start batch scorings of the version (``deployments.batch``).
    """
    if request.target != Target.REALTIME:
        return
    from deployments import serving

    canary = request.rollout == Rollout.CANARY
    try:
        serving.endpoint_deploy(
            actor=actor,
            model_version=request.version,
            canary_percent=int(request.canary_percent or 0) if canary else 0,
            bake_minutes=int(request.baking_minutes or 0) if canary else 0,
            size=request.size,
        )
    except serving.ServingRefused as exc:
        raise ValidationError(f"The endpoint cannot take this version now: {exc}") from exc


def _subject(approval: Any) -> DeploymentRequest | None:
    return (
        DeploymentRequest.objects.select_for_update()
        .select_related("project", "version__registered_model", "requested_by")
        .filter(pk=int(approval.subject_id))
        .first()
    )


def _on_approved(*, request: Any, actor: User) -> None:
    deployment = _subject(request)
    if deployment is None or deployment.state != RequestState.PENDING:
        return
    version = deployment.version
    current = champion_of(version)
    # The requester asked for the move (a member who may write); the approval allows it.
    mover = deployment.requested_by
    if current is not None:
        alias_set(actor=mover, version=current, alias=PREVIOUS)
    alias_set(actor=mover, version=version, alias=CHAMPION)
    deployment.previous_champion = current
    deployment.save(update_fields=["previous_champion"])
    _end(
        deployment,
        RequestState.APPROVED,
        actor=actor,
        action="deployment.approved",
        version=version.version,
        previous_champion=current.version if current else None,
        approval=request.pk,
    )
    deployment_request_approved(request=deployment, actor=actor)


def _on_ended(request: Any, actor: User, state: str) -> None:
    deployment = _subject(request)
    if deployment is None or deployment.state != RequestState.PENDING:
        return
    _end(
        deployment,
        state,
        actor=actor,
        action=f"deployment.{state}",
        approval=request.pk,
        comment=request.comment,
    )


def _describe(*, request: Any) -> dict[str, Any]:
    deployment = (
        DeploymentRequest.objects.select_related(
            "version__registered_model", "requested_by", "report"
        )
        .filter(pk=int(request.subject_id))
        .first()
    )
    if deployment is None:
        return {}
    report = deployment.report
    return {
        "model": deployment.version.registered_model.name,
        "version": deployment.version.version,
        "target": deployment.target,
        "rollout": deployment.rollout,
        "canary_percent": deployment.canary_percent,
        "baking_minutes": deployment.baking_minutes,
        "reason": deployment.reason,
        "requested_by": deployment.requested_by.username,
        "validation": report.state if report else "missing",
        "metric": report.metric if report else "",
        "value": report.value if report else None,
        "threshold": report.threshold if report else None,
        "overridden": bool(deployment.override_by_id),
        "page": _page(deployment),
    }


def _rows(subject: dict[str, Any]) -> list[tuple[str, str]]:
    if not subject:
        return []
    rows = [
        ("Request", f"{subject['model']} version {subject['version']}"),
        ("Where", Target(subject["target"]).label),
        ("How", Rollout(subject["rollout"]).label),
        ("Why", subject["reason"]),
        ("Validation", subject["validation"]),
        ("Evidence", f"See the approval page: {subject['page']}"),
    ]
    if subject.get("overridden"):
        rows.append(("Override", "A platform admin let it through despite its validation."))
    return rows


register(
    ApprovalKind(
        name=APPROVAL_KIND,
        on_approved=_on_approved,
        on_rejected=lambda *, request, actor: _on_ended(request, actor, RequestState.REJECTED),
        on_withdrawn=lambda *, request, actor: _on_ended(request, actor, RequestState.WITHDRAWN),
        describe=_describe,
        rows=_rows,
        label="Deployment of a model version",
        steps=(
            Step("Technical validation", role=Role.VALIDATOR),
            Step("Business sign-off", role=Role.BUSINESS_APPROVER),
        ),
    )
)
