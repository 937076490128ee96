"""Celery tasks (queue "provisioning"): thin, idempotent, retried.

Each operation task claims its workspace with a conditional update
(``workspace_claim``) that takes the workspace's lease, keeps the lease alive
while it calls the provider (``background.leases.lease_kept``), gives it
back before waiting for a poll or a retry (``workspace_release``), calls the provider by the workspace's deterministic
name, and records the outcome through a service. A provider answer that the
work is still under way (CREATING, STOPPING, ...) re-schedules the same task
to poll; a ``TransientProviderError`` retries with exponential backoff and
jitter; after the last try, or on any other provider error,
``workspace_mark_failed`` records why. When the provider hands back a
long-running operation (``ResourceStatus.operation_url``), the row keeps it
and each poll asks the provider how it went first: a failed operation fails
the workspace with the provider's message.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from celery import Task, shared_task
from django.conf import settings

import background
from background.leases import lease_kept, lease_owner_for
from cloud import get_provider
from cloud.base import (
    ClusterSpec,
    Provider,
    ProviderError,
    ResourceState,
    ResourceStatus,
    SizeSpec,
    TransientProviderError,
    WorkspaceSpec,
)
from compute import selectors as compute_selectors
from compute import services as compute_services
from projects.tokens import project_token_issue
from workspaces.models import Workspace, WorkspaceKind, WorkspaceState

logger = logging.getLogger(__name__)

# max_retries None: the task counts polls and errors itself.
TASK_OPTIONS = background.task_options(soft_time_limit=240, time_limit=300, max_retries=None)
BEAT_OPTIONS = background.task_options(soft_time_limit=240, time_limit=300, max_retries=0)


def backoff_seconds(errors: int) -> float:
    """Exponential backoff with jitter after ``errors`` transient errors."""
    return background.backoff_seconds(errors, base=settings.WORKSPACES_RETRY_BASE_SECONDS)


def _provider(ws: Workspace) -> Provider:
    return get_provider(ws.provider)


def _size(ws: Workspace, *, requested: bool = False) -> SizeSpec:
    size = ws.requested_size if requested and ws.requested_size else ws.size
    return SizeSpec(size.name, size.vcpus, float(size.memory_gb), size.gpus)


def data_paths(ws: Workspace) -> tuple[str, ...]:
    """The newest snapshot of each of the project's data sources, as local
    files the workspace may read (only when snapshots are stored locally)."""
    from datasets.models import Snapshot
    from datasets.storage import default_store

    store = default_store()
    if not store.is_local:
        return ()
    paths: list[str] = []
    seen: set[int] = set()
    for source_id, key in (
        Snapshot.objects.filter(source__project_id=ws.project_id)
        .order_by("source_id", "-version")
        .values_list("source_id", "storage_key")
    ):
        if source_id in seen:
            continue
        seen.add(source_id)
        path = store.local_path(key)
        if path and os.path.exists(path):
            paths.append(path)
    return tuple(paths)


def _tracking(ws: Workspace) -> tuple[str, str]:
    """The project's tracking server and a new token scoped to it, for the
    notebook starting now (the one it held before is revoked)."""
    from workspaces.services import tracking_purpose

    token = project_token_issue(project=ws.project, user=ws.owner, purpose=tracking_purpose(ws.pk))
    return f"{settings.PORTAL_BASE_URL.rstrip('/')}/mlflow/{ws.project.slug}", token


def _workspace_spec(
    ws: Workspace, *, tracking_url: str = "", tracking_token: str = ""
) -> WorkspaceSpec:
    return WorkspaceSpec(
        name=ws.provider_name,
        size=_size(ws),
        owner_username=ws.owner.username,
        owner_object_id=ws.owner.entra_object_id,
        idle_shutdown_minutes=ws.idle_shutdown_minutes,
        allowed_ips=tuple(ws.allowed_ips),
        data_paths=data_paths(ws) if ws.provider == "local" else (),
        # Where no sandbox is available, only a platform admin's notebook runs
        # without one (the request was refused for anyone else).
        allow_unsandboxed=ws.owner.is_staff,
        tracking_url=tracking_url,
        tracking_token=tracking_token,
    )


def _cluster_spec(ws: Workspace) -> ClusterSpec:
    return ClusterSpec(
        name=ws.provider_name,
        size=_size(ws),
        min_nodes=ws.min_nodes,
        max_nodes=ws.max_nodes,
    )


@dataclass(frozen=True)
class Operation:
    name: str
    working: str
    done: ResourceState

    def call(self, provider: Provider, ws: Workspace) -> ResourceStatus:
        cluster = ws.kind == WorkspaceKind.CLUSTER
        if self.name == "provision":
            if cluster:
                return provider.cluster_create(_cluster_spec(ws))
            url, token = _tracking(ws)
            if ws.provisioned:
                return provider.workspace_start(
                    ws.provider_name, tracking_url=url, tracking_token=token
                )
            return provider.workspace_create(
                _workspace_spec(ws, tracking_url=url, tracking_token=token)
            )
        if self.name == "stop":
            return provider.workspace_stop(ws.provider_name)
        if self.name == "resize":
            return provider.workspace_resize(ws.provider_name, _size(ws, requested=True))
        if cluster:
            return provider.cluster_delete(ws.provider_name)
        return provider.workspace_delete(ws.provider_name)

    def poll(self, provider: Provider, ws: Workspace) -> ResourceStatus:
        if self.name == "resize":  # convergent: each call advances one step
            return self.call(provider, ws)
        if ws.kind == WorkspaceKind.CLUSTER:
            return provider.cluster_status(ws.provider_name)
        return provider.workspace_status(ws.provider_name)


OPERATIONS = {
    "provision": Operation("provision", WorkspaceState.PROVISIONING, ResourceState.RUNNING),
    "stop": Operation("stop", WorkspaceState.STOPPING, ResourceState.STOPPED),
    "resize": Operation("resize", WorkspaceState.RESIZING, ResourceState.RUNNING),
    "delete": Operation("delete", WorkspaceState.DELETING, ResourceState.DELETED),
}


def _record(op: Operation, ws: Workspace, status: ResourceStatus) -> None:
    from workspaces import services

    if op.done == ResourceState.RUNNING:
        services.workspace_mark_running(workspace_id=ws.pk, url=status.url, working=op.working)
    elif op.done == ResourceState.STOPPED:
        services.workspace_mark_stopped(workspace_id=ws.pk)
    else:
        services.workspace_mark_deleted(workspace_id=ws.pk)


def _operation_failure(provider: Provider, ws: Workspace, op: Operation) -> str:
    """How the long-running operation the row remembers failed, in the
    provider's words; "" while it runs or after it succeeded (then forgotten).

    A resource's state may not show a failed operation (a start that failed
    leaves an instance stopped), so the operation itself is asked first."""
    from workspaces import services

    read_operation = getattr(provider, "operation_status", None)
    if not ws.operation_url or read_operation is None:
        return ""
    outcome = read_operation(ws.operation_url)
    if not outcome.done:
        return ""
    if outcome.failed:
        return outcome.detail or f"the operation ended {outcome.status}"
    services.workspace_operation_set(workspace_id=ws.pk, url="", working=op.working)
    return ""


def run_operation(task: Task, name: str, workspace_id: int, polls: int = 0, errors: int = 0) -> str:
    from workspaces import services

    op = OPERATIONS[name]
    owner = lease_owner_for(task)
    ws = services.workspace_claim(
        workspace_id=workspace_id,
        operation=name,
        task_id=task.request.id or "",
        worker=task.request.hostname or "",
        attempt=polls == 0,
        owner=owner,
    )
    if ws is None:
        return "nothing to claim"
    with lease_kept(Workspace, workspace_id, owner=owner):
        return _run_claimed(task, op, ws, polls, errors)


def _retry(task: Task, op: Operation, ws: Workspace, countdown: float, **kwargs: Any) -> Exception:
    """Give the lease back for the countdown, then the retry to raise."""
    from workspaces import services

    services.workspace_release(
        workspace_id=ws.pk, working=op.working, task_id=task.request.id or "", delay=countdown
    )
    return task.retry(kwargs={"workspace_id": ws.pk, **kwargs}, countdown=countdown)


def _run_claimed(task: Task, op: Operation, ws: Workspace, polls: int, errors: int) -> str:
    from workspaces import services

    name, workspace_id = op.name, ws.pk
    try:
        provider = _provider(ws)
        ws.ensure_provider_name()
        failure = _operation_failure(provider, ws, op) if polls else ""
        if failure:
            services.workspace_mark_failed(
                workspace_id=workspace_id, reason=f"{name} failed: {failure}", working=op.working
            )
            return "failed"
        status = op.call(provider, ws) if polls == 0 else op.poll(provider, ws)
    except TransientProviderError as exc:
        if errors + 1 >= settings.WORKSPACES_MAX_ERRORS:
            services.workspace_mark_failed(
                workspace_id=workspace_id,
                reason=f"{name} failed after {errors + 1} tries: {exc}",
                working=op.working,
            )
            return "failed"
        logger.warning("workspace %s: %s: transient error, retrying: %s", workspace_id, name, exc)
        raise _retry(task, op, ws, backoff_seconds(errors), polls=0, errors=errors + 1) from exc
    except ProviderError as exc:
        services.workspace_mark_failed(
            workspace_id=workspace_id, reason=f"{name} failed: {exc}", working=op.working
        )
        return "failed"
    if status.operation_url and status.operation_url != ws.operation_url:
        services.workspace_operation_set(
            workspace_id=workspace_id, url=status.operation_url, working=op.working
        )
    if status.state == op.done:
        _record(op, ws, status)
        return status.state
    if status.state == ResourceState.FAILED or not _in_progress(status.state, op):
        services.workspace_mark_failed(
            workspace_id=workspace_id,
            reason=f"{name}: the provider reports {status.state}"
            + (f" ({status.detail})" if status.detail else ""),
            working=op.working,
        )
        return "failed"
    if polls + 1 > settings.WORKSPACES_MAX_POLLS:
        services.workspace_mark_failed(
            workspace_id=workspace_id,
            reason=f"{name}: still {status.state} after {polls} checks; gave up",
            working=op.working,
        )
        return "failed"
    raise _retry(task, op, ws, settings.WORKSPACES_POLL_SECONDS, polls=polls + 1, errors=errors)


def _in_progress(state: ResourceState, op: Operation) -> bool:
    if op.name in ("provision", "resize"):
        return state in (ResourceState.CREATING, ResourceState.STOPPING, ResourceState.STOPPED)
    if op.name == "stop":
        return state == ResourceState.STOPPING
    return state == ResourceState.DELETING


@shared_task(**TASK_OPTIONS)
def workspace_provision(self: Task, *, workspace_id: int, polls: int = 0, errors: int = 0) -> str:
    """Create (or start again) the workspace and wait until it runs."""
    return run_operation(self, "provision", workspace_id, polls, errors)


@shared_task(**TASK_OPTIONS)
def workspace_stop_task(self: Task, *, workspace_id: int, polls: int = 0, errors: int = 0) -> str:
    return run_operation(self, "stop", workspace_id, polls, errors)


@shared_task(**TASK_OPTIONS)
def workspace_resize_task(self: Task, *, workspace_id: int, polls: int = 0, errors: int = 0) -> str:
    return run_operation(self, "resize", workspace_id, polls, errors)


@shared_task(**TASK_OPTIONS)
def workspace_delete_task(self: Task, *, workspace_id: int, polls: int = 0, errors: int = 0) -> str:
    return run_operation(self, "delete", workspace_id, polls, errors)


@shared_task(**TASK_OPTIONS)
def workspace_allowed_ips_apply(self: Task, *, workspace_id: int, errors: int = 0) -> str:
    """Hand the allowlist to the provider (idempotent: it sets the whole list)."""
    ws = Workspace.objects.select_related("owner").filter(pk=workspace_id).first()
    if ws is None or not ws.provisioned or ws.kind != WorkspaceKind.NOTEBOOK:
        return "nothing to apply"
    try:
        ws.ensure_provider_name()
        _provider(ws).workspace_set_allowed_ips(ws.provider_name, tuple(ws.allowed_ips))
    except TransientProviderError as exc:
        if errors + 1 >= settings.WORKSPACES_MAX_ERRORS:
            logger.error("workspace %s: allowlist not applied: %s", workspace_id, exc)
            return "failed"
        raise self.retry(
            kwargs={"workspace_id": workspace_id, "errors": errors + 1},
            countdown=backoff_seconds(errors),
            exc=exc,
        ) from exc
    except ProviderError as exc:
        logger.error("workspace %s: allowlist not applied: %s", workspace_id, exc)
        return "failed"
    return "applied"


@shared_task(**BEAT_OPTIONS)
def workspaces_idle_shutdown(self: Task) -> list[int]:
    """Beat: stop notebooks idle longer than their setting; notice the ones the
    provider stopped by itself (its own idle shutdown or schedule)."""
    from workspaces import services

    stopped = []
    running = Workspace.objects.filter(
        state=WorkspaceState.RUNNING, kind=WorkspaceKind.NOTEBOOK
    ).select_related("owner", "project", "size")
    for ws in running:
        try:
            ws.ensure_provider_name()
            status = _provider(ws).workspace_status(ws.provider_name)
        except ProviderError as exc:
            logger.warning("workspace %s: status unknown: %s", ws.pk, exc)
            continue
        if status.state in (ResourceState.STOPPED, ResourceState.DELETED):
            services.workspace_found_stopped(workspace_id=ws.pk, detail=status.detail)
            continue
        if (
            status.state == ResourceState.RUNNING
            and status.idle_seconds is not None
            and status.idle_seconds >= ws.idle_shutdown_seconds
        ):
            try:
                services.workspace_stop(actor=None, workspace=ws, idle_seconds=status.idle_seconds)
            except services.WorkspaceConflict:
                continue  # someone changed it meanwhile
            stopped.append(ws.pk)
    return stopped


@shared_task(**BEAT_OPTIONS)
def workspaces_meter_usage(self: Task) -> dict[str, Any]:
    """Beat: keep open usage intervals within one day, and announce budget
    thresholds. (Operations whose task was lost are recovered by their lease:
    ``portal.leases_recover``.)"""
    rolled = compute_services.usage_roll_over()
    announced = {}
    for project in compute_selectors.projects_with_usage():
        crossed = compute_services.budget_alerts_check(project=project)
        if crossed:
            announced[project.slug] = crossed
    return {"rolled_over": rolled, "announced": announced}
