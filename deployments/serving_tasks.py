"""Celery tasks of real-time serving (queue "provisioning").

``deployment_start`` claims a pending deployment (its lease, like a
workspace's operation), makes sure the endpoint exists on the provider,
fetches the version's MLflow model files from the artifact store into a
folder of the worker's, starts the scoring process and waits for its health
check, then hands over to ``serving.deployment_mark_running`` (traffic,
metering). ``serving_health_check`` (beat) asks the provider about every
running deployment: a new deployment failing twice in a row is rolled back
by itself, and a canary whose baking period ended is promoted.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
import time
from datetime import timedelta
from pathlib import Path

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

import background
from background.leases import dispatch_grace_seconds, lease_claim, lease_kept, lease_owner_for
from cloud.base import (
    DeploymentSpec,
    EndpointSpec,
    ProviderError,
    ResourceState,
    SizeSpec,
)
from deployments import serving
from deployments.gate import version_split
from deployments.serving_models import Deployment, DeploymentState, Endpoint, RolloutState
from experiments.artifacts import ArtifactStore, artifact_path_of
from experiments.models import ModelVersion

logger = logging.getLogger(__name__)

TASK_OPTIONS = background.task_options(soft_time_limit=540, time_limit=600, max_retries=0)
BEAT_OPTIONS = background.task_options(soft_time_limit=110, time_limit=120, max_retries=0)


def model_folder(version: ModelVersion) -> Path:
    """The version's MLflow model files, as a folder on this machine."""
    rel = artifact_path_of(version.storage_location)
    if rel is None:
        raise ProviderError(
            f"The model's files are not in the portal's artifact store ({version.storage_location})"
        )
    project_id = version.registered_model.project_id
    target = Path(settings.VAR_DIR) / "serving-models" / f"{project_id}-{version.pk}"
    if (target / "MLmodel").is_file():
        return target
    store = ArtifactStore(project_id)
    source = posixpath.join(store.root, rel) if rel else store.root
    if not store.fs.isfile(posixpath.join(source, "MLmodel")):
        raise ProviderError("The model version has no MLmodel file: it is not an MLflow model")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for path in store.fs.find(source):
        rest = posixpath.relpath(path, source)
        if rest.startswith("..") or ".upload-" in rest:
            continue
        local = partial / rest
        local.parent.mkdir(parents=True, exist_ok=True)
        store.fs.get_file(path, str(local))
    partial.rename(target)
    return target


def sensitive_columns(dep: Deployment) -> tuple[str, ...]:
    """Columns never written to the sample log: the endpoint's own, and those
    the data stage marked on the source of the version's split (read when the
    deployment starts, so a mark made since applies from its next start)."""
    names = {str(c) for c in dep.endpoint.sensitive_columns}
    split = version_split(dep.model_version)
    if split is not None:
        names |= {str(c) for c in split.parent.source.sensitive_columns}
    return tuple(sorted(names))


def azure_model_id(version: ModelVersion) -> str:
    """The version's model in an Azure ML workspace, which several projects
    may share: the project's id goes into the name (``p<id>-<name>``)."""
    model = version.registered_model
    return f"azureml:p{model.project_id}-{model.name}:{version.version}"


def _spec(dep: Deployment, model_dir: Path) -> DeploymentSpec:
    size = dep.size
    return DeploymentSpec(
        endpoint=dep.endpoint.provider_name,
        name=dep.name,
        size=SizeSpec(size.name, size.vcpus, float(size.memory_gb), size.gpus),
        model_dir=str(model_dir),
        model_id=azure_model_id(dep.model_version),
        sample_rate=dep.endpoint.sample_rate,
        sensitive_columns=sensitive_columns(dep),
    )


def ready_timeout(provider: object) -> float:
    """How long a new deployment may take to become healthy, from its
    submission (Azure ML's managed deployments take many minutes)."""
    return float(getattr(provider, "deployment_ready_timeout", settings.SERVING_READY_TIMEOUT))


def _hand_over(deployment_id: int) -> None:
    """Not healthy yet: give the lease up and ask ``deployment_watch`` to look
    again later, so no worker waits for minutes. If that message is lost,
    the lease runs out and recovery starts the deployment again (the
    provider's start is idempotent) with the same deadline."""
    wait = float(settings.SERVING_WATCH_SECONDS)
    now = timezone.now()
    Deployment.objects.filter(pk=deployment_id, state=DeploymentState.STARTING).update(
        lease_owner="",
        dispatched_at=now,
        heartbeat_at=None,
        lease_expires_at=now + timedelta(seconds=wait + dispatch_grace_seconds()),
    )
    deployment_watch.apply_async(kwargs={"deployment_id": deployment_id}, countdown=wait)


def _progress(deployment_id: int, *, submit: bool) -> str:
    """Submit the deployment (``submit``), then wait for it a while: running,
    failed, or handed over to a later ``deployment_watch``."""
    dep = Deployment.objects.select_related(
        "endpoint", "size", "model_version__registered_model"
    ).get(pk=deployment_id)
    endpoint: Endpoint = dep.endpoint
    try:
        provider = serving.serving_provider(endpoint.provider)
        status = provider.endpoint_create(
            EndpointSpec(endpoint.provider_name, key_sha256=endpoint.key_sha256)
        )
        if submit:
            model_dir = model_folder(dep.model_version)
            provider.deployment_start(_spec(dep, model_dir))
            if dep.submitted_at is None:
                dep.submitted_at = timezone.now()
                Deployment.objects.filter(pk=dep.pk).update(submitted_at=dep.submitted_at)
        deadline = (dep.submitted_at or timezone.now()) + timedelta(seconds=ready_timeout(provider))
        slice_end = time.monotonic() + float(settings.SERVING_START_SLICE_SECONDS)
        while True:
            current = provider.deployment_status(endpoint.provider_name, dep.name)
            if current.state == ResourceState.RUNNING:
                break
            if current.state != ResourceState.CREATING:
                raise ProviderError(current.detail or f"The deployment is {current.state}")
            if timezone.now() > deadline:
                raise ProviderError("The deployment did not become healthy in time")
            if time.monotonic() >= slice_end:
                _hand_over(deployment_id)
                return "watching"
            time.sleep(0.5)
    except ProviderError as exc:
        serving.deployment_mark_failed(deployment_id=deployment_id, reason=str(exc))
        return "failed"
    except Exception as exc:
        logger.exception("deployment %s failed to start", deployment_id)
        serving.deployment_mark_failed(
            deployment_id=deployment_id, reason=f"Unexpected error: {type(exc).__name__}"
        )
        return "failed"
    serving.deployment_mark_running(deployment_id=deployment_id, scoring_url=status.url)
    return "running"


@shared_task(**TASK_OPTIONS)
def deployment_start(self: Task, *, deployment_id: int) -> str:
    owner = lease_owner_for(self)
    if not lease_claim(
        Deployment.objects.filter(pk=deployment_id, state=DeploymentState.PENDING),
        owner=owner,
        state=DeploymentState.STARTING,
        task_id=str(self.request.id or "")[:255],
    ):
        return "not claimed"
    with lease_kept(Deployment, deployment_id, owner=owner):
        return _progress(deployment_id, submit=True)


@shared_task(**TASK_OPTIONS)
def deployment_watch(self: Task, *, deployment_id: int) -> str:
    """Look again at a deployment that was not healthy yet (``_hand_over``)."""
    owner = lease_owner_for(self)
    if not lease_claim(
        Deployment.objects.filter(pk=deployment_id, state=DeploymentState.STARTING, lease_owner=""),
        owner=owner,
        task_id=str(self.request.id or "")[:255],
    ):
        return "not claimed"
    with lease_kept(Deployment, deployment_id, owner=owner):
        return _progress(deployment_id, submit=False)


@shared_task(**TASK_OPTIONS)
def deployment_stop(self: Task, *, deployment_id: int) -> str:
    """Stop a deployment on its provider (``serving.deployment_stop`` asked)."""
    owner = lease_owner_for(self)
    if not lease_claim(
        Deployment.objects.filter(pk=deployment_id, state=DeploymentState.STOPPING),
        owner=owner,
        task_id=str(self.request.id or "")[:255],
    ):
        return "not claimed"
    with lease_kept(Deployment, deployment_id, owner=owner):
        dep = Deployment.objects.select_related("endpoint").get(pk=deployment_id)
        try:
            provider = serving.serving_provider(dep.endpoint.provider)
            provider.deployment_stop(dep.endpoint.provider_name, dep.name)
        except ProviderError as exc:
            # The lease runs out and recovery tries again, up to its limit.
            logger.warning("deployment %s did not stop: %s", deployment_id, exc)
            Deployment.objects.filter(pk=deployment_id).update(detail=str(exc)[:4000])
            return "retry"
        serving.deployment_mark_stopped(deployment_id=deployment_id)
    return "stopped"


@shared_task(**BEAT_OPTIONS)
def serving_health_check(self: Task) -> int:
    """Check every running deployment once; roll back or promote as due."""
    checked = 0
    running = Deployment.objects.filter(state=DeploymentState.RUNNING).select_related("endpoint")
    for dep in running:
        try:
            provider = serving.serving_provider(dep.endpoint.provider)
            status = provider.deployment_status(dep.endpoint.provider_name, dep.name)
            healthy, detail = status.state == ResourceState.RUNNING, status.detail
        except ProviderError as exc:
            healthy, detail = False, str(exc)
        serving.deployment_health_record(deployment_id=dep.pk, healthy=healthy, detail=detail)
        checked += 1
    for endpoint_id in Endpoint.objects.filter(rollout=RolloutState.BAKING).values_list(
        "pk", flat=True
    ):
        serving.endpoint_bake_check(endpoint_id=endpoint_id)
    return checked
