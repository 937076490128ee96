"""Drift checks of running deployments: the log's window against the split the
version was trained on (docs/serving.md, Drift)."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from functools import lru_cache

import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse

from accounts.models import User
from accounts.notifications import notify
from audit.services import audit_record
from charter.selectors import charter_signed_off
from cloud.base import ProviderError
from datasets.models import Snapshot, Split, SplitStatus
from datasets.storage import default_store, object_key
from deployments import drift, serving
from deployments.drift_models import DriftReport
from deployments.gate import validation_run, version_split
from deployments.gate_models import ValidationReport
from deployments.serving_models import Deployment, DeploymentState, Endpoint
from experiments import jobs
from experiments.comparison import CHAMPION
from experiments.job_models import Job
from experiments.models import ModelAlias, ModelVersion, RunTag
from projects.models import Membership, Role

# Who hears of a drift alert.
ALERTED_ROLES = (Role.LEAD, Role.ML_ENGINEER)


@lru_cache(maxsize=4)
def _reference(train_sha256: str, target: str) -> drift.Reference:
    """The profile of a training part (by hash, so it never goes stale)."""
    with default_store().open(object_key(train_sha256)) as f:
        frame = pq.read_table(io.BytesIO(f.read())).to_pandas()
    return drift.reference_profile(frame, target=target if target in frame.columns else None)


def drift_check(*, deployment_id: int) -> DriftReport | None:
    """Compare the window of a running deployment's sample log with its
    version's training split and keep the report; None when the deployment
    is not running, its version names no split, or its provider keeps no
    log."""
    deployment = (
        Deployment.objects.select_related("endpoint__project", "model_version__registered_model")
        .filter(pk=deployment_id, state=DeploymentState.RUNNING)
        .first()
    )
    if deployment is None:
        return None
    split = version_split(deployment.model_version)
    if split is None or not split.train_sha256:
        return None
    provider = serving.serving_provider(deployment.endpoint.provider)
    read_log = getattr(provider, "deployment_sample_log", None)
    if read_log is None:
        return None
    try:
        data = read_log(
            deployment.endpoint.provider_name, deployment.name, settings.DRIFT_WINDOW_BYTES
        )
    except ProviderError:
        return None
    charter = charter_signed_off(project=deployment.endpoint.project)
    target = charter.target_variable if charter is not None else ""
    reference = _reference(split.train_sha256, target)
    inputs, predictions = drift.samples_read(data)
    report = drift.drift_report(reference, inputs, predictions=predictions)
    with transaction.atomic():
        # One check of a deployment at a time, so that two cannot both see
        # the episode start.
        Deployment.objects.select_for_update().filter(pk=deployment.pk).first()
        before = (
            DriftReport.objects.filter(
                deployment=deployment,
                model_version=deployment.model_version,
                judged_features__gt=0,
            )
            .order_by("-computed_at", "-pk")
            .values_list("dataset_drift", flat=True)
            .first()
        )
        row = _report_keep(deployment, split.train_sha256, report)
        if row.dataset_drift and not before:
            drift_alert(report=row, deployment=deployment)
    return row


def _report_keep(
    deployment: Deployment, train_sha256: str, report: drift.DriftReport
) -> DriftReport:
    return DriftReport.objects.create(
        deployment=deployment,
        model_version=deployment.model_version,
        train_sha256=train_sha256,
        reference_rows=report.reference_rows,
        current_rows=report.current_rows,
        judged_features=report.judged_features,
        drifted_features=report.drifted_features,
        drifted_share=report.drifted_share,
        drift_share=report.drift_share,
        dataset_drift=report.dataset_drift,
        prediction_status=report.prediction.status if report.prediction else "",
        features=[dataclasses.asdict(f) for f in report.features],
        prediction=dataclasses.asdict(report.prediction) if report.prediction else None,
        note=report.note,
    )


def drift_alert(*, report: DriftReport, deployment: Deployment) -> None:
    """Tell the project's lead and ML engineers that a deployment's inputs
    started to drift (once per episode: the caller calls it when a report
    alerts and the one before it did not), audited without an actor."""
    endpoint = deployment.endpoint
    project = endpoint.project
    drifted = [f["name"] for f in report.features if f.get("status") == "alert"]
    version = deployment.model_version
    recipients = User.objects.filter(
        memberships__project=project, memberships__role__in=ALERTED_ROLES, is_active=True
    ).distinct()
    shown = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
    notify(
        users=recipients,
        text=(
            f"{project.name}: the inputs of {endpoint.name} ({deployment.name}, "
            f"{version.registered_model.name} version {version.version}) drift: "
            f"{report.drifted_features} of {report.judged_features} features ({shown})"
        ),
        url=reverse("deployments:endpoint_drift", args=[project.slug, endpoint.name]),
    )
    audit_record(
        action="endpoint.drift_alerted",
        project=project,
        obj=endpoint,
        payload={
            "by": "drift check",
            "deployment": deployment.name,
            "model_version": version.version,
            "report": report.pk,
            "drifted_share": report.drifted_share,
            "drifted_features": drifted,
        },
    )


# --- retraining from an alert ---------------------------------------------------------

# Who may start a retraining job from the drift page.
RETRAIN_ROLES = frozenset({Role.LEAD, Role.ML_ENGINEER, Role.DATA_SCIENTIST})


def _require_trainer(actor: User, endpoint: Endpoint, what: str) -> None:
    membership = Membership.objects.filter(project=endpoint.project, user=actor).first()
    if membership is None or membership.role not in RETRAIN_ROLES:
        raise PermissionDenied(f"Only the project's lead, ML engineers and data scientists {what}.")


class RetrainRefused(Exception):
    """A retraining that cannot start (HTTP 409): the reason says why."""


@dataclass(frozen=True)
class RetrainPlan:
    """What "Retrain" would do: the champion's job run again on the newest
    ready split of its source; ``refusal`` says why it cannot."""

    champion: ModelVersion | None = None
    job: Job | None = None
    split: Split | None = None
    # A newer snapshot of the source that has no ready split yet.
    unsplit: Snapshot | None = None
    running: Job | None = None
    refusal: str = ""


def champion_job(version: ModelVersion) -> Job | None:
    """The training job whose run produced ``version`` (its run's job tag)."""
    if version.run_id is None:
        return None
    tag = RunTag.objects.filter(run_id=version.run_id, key=jobs.JOB_TAG).first()
    found = Job.objects.filter(project=version.registered_model.project_id)
    if tag is not None and tag.value.isdigit():
        return (
            found.select_related("split__parent__source", "size").filter(pk=int(tag.value)).first()
        )
    return (
        found.select_related("split__parent__source", "size").filter(run_id=version.run_id).first()
    )


def retrain_plan(endpoint: Endpoint) -> RetrainPlan:
    """The champion of the endpoint's model, the job behind it and the split
    a retraining would use."""
    alias = (
        ModelAlias.objects.filter(registered_model_id=endpoint.registered_model_id, alias=CHAMPION)
        .select_related("version__registered_model", "version__run")
        .first()
    )
    if alias is None:
        return RetrainPlan(
            refusal=f"{endpoint.registered_model.name} has no champion version to retrain."
        )
    champion = alias.version
    job = champion_job(champion)
    if job is None or job.split is None:
        return RetrainPlan(
            champion=champion,
            refusal=(
                f"Version {champion.version} of {champion.registered_model.name} was not trained "
                "by a training job of this portal, so there is no recipe to run again. "
                "Start a training job on the experiments page instead."
            ),
        )
    source = job.split.parent.source
    split = (
        Split.objects.filter(parent__source=source, status=SplitStatus.READY)
        .select_related("parent__source")
        .order_by("-parent__version", "-number")
        .first()
    )
    unsplit = (
        Snapshot.objects.filter(source=source, version__gt=split.parent.version if split else 0)
        .order_by("-version")
        .first()
    )
    running = Job.objects.filter(rerun_of=job, state__in=jobs.WORKING).order_by("-pk").first()
    refusal = ""
    if running is not None:
        refusal = f"A retraining of this recipe is already under way (job #{running.pk})."
    return RetrainPlan(
        champion=champion,
        job=job,
        split=split or job.split,
        unsplit=unsplit,
        running=running,
        refusal=refusal,
    )


def endpoint_retrain(*, actor: User, endpoint: Endpoint, report: DriftReport | None = None) -> Job:
    """Start a training job from the champion's recipe (the job that trained
    it: same code, settings, size and limits) on the newest ready split of
    the same source; its model can then go through the deployment gate."""
    _require_trainer(actor, endpoint, "start a retraining")
    plan = retrain_plan(endpoint)
    if plan.refusal or plan.job is None or plan.champion is None:
        raise RetrainRefused(plan.refusal or "Nothing to retrain.")
    with transaction.atomic():
        job = jobs.job_rerun(actor=actor, job=plan.job, split=plan.split)
        audit_record(
            action="endpoint.retrain_started",
            actor=actor,
            project=endpoint.project,
            obj=endpoint,
            payload={
                "job": job.pk,
                "recipe_job": plan.job.pk,
                "champion_version": plan.champion.version,
                "split": job.split_id,
                "report": report.pk if report else None,
            },
        )
    return job


# --- the charter's metric on labelled data ----------------------------------------------


def labelled_split(deployment: Deployment) -> Split | None:
    """The newest ready split of the source the deployment's version was
    trained on whose data has the charter's target: where ground truth
    arrived, to score the version on."""
    trained_on = version_split(deployment.model_version)
    charter = charter_signed_off(project=deployment.endpoint.project)
    if trained_on is None or charter is None or not charter.target_variable:
        return None
    splits = (
        Split.objects.filter(
            parent__source_id=trained_on.parent.source_id, status=SplitStatus.READY
        )
        .select_related("parent__source")
        .order_by("-parent__version", "-number")
    )
    target = charter.target_variable
    # Few versions of a source: read their columns rather than query JSON.
    return next(
        (s for s in splits[:50] if any(c.get("name") == target for c in s.parent.columns)), None
    )


def deployment_score_labelled(*, actor: User, deployment: Deployment) -> ValidationReport:
    """Score the deployment's version on the newest labelled data of its
    source with the charter's metric (a validation job, audited as one)."""
    _require_trainer(actor, deployment.endpoint, "score a model")
    split = labelled_split(deployment)
    if split is None:
        raise RetrainRefused(
            "No labelled data to score on: the source it was trained on has no ready split "
            "with the charter's target."
        )
    return validation_run(actor=actor, version=deployment.model_version, split=split)
