"""Writes to workspaces, each audited in its transaction.

Every state change of a workspace is a function here: the ones a person
triggers (``workspace_request``, ``workspace_start``, ...) and the ones a
Celery task records (``workspace_claim``, ``workspace_mark_running``, ...).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from celery import Task
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.notifications import notify
from audit.services import audit_record
from background.leases import LeasedWork, lease_seconds, lease_waiting
from charter.gates import require_signed_charter
from cloud import get_provider
from cloud.base import ProviderConfigurationError, ProviderError
from cloud.local import LocalProvider
from compute.models import HOURS_PER_MONTH, ComputeSize
from compute.selectors import sizes_offered
from compute.services import Demand, QuotaDecision, quota_decide, usage_close, usage_open
from governance.approvals import ApprovalKind, register
from governance.models import ApprovalRequest, ApprovalState
from governance.services import approval_request_create, approval_withdraw
from projects.models import Membership, Project, Role
from projects.tokens import project_token_revoke
from workspaces import tasks
from workspaces.models import (
    NO_INSTANCE_ALLOWLIST,
    IdleShutdown,
    Workspace,
    WorkspaceKind,
    WorkspaceState,
    instance_allowlist_supported,
)

COMPUTE_KIND = "compute"
IDLE_MINUTES_RANGE = (15, 4320)  # Azure ML's own bounds for idle shutdown
MAX_NODES = 100
MAX_CIDRS = 50
S = WorkspaceState
# States in which a notebook's project token is revoked: it stops, goes, or failed.
TOKEN_REVOKED_IN = frozenset({S.STOPPING, S.STOPPED, S.DELETING, S.DELETED, S.FAILED})


class WorkspaceConflict(Exception):
    """The action does not fit the workspace's state; HTTP 409."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


# --- validation ----------------------------------------------------------------


def cidrs_normalize(values: Iterable[str]) -> list[str]:
    """Validate addresses and CIDR ranges; return them normalized, without duplicates."""
    result: list[str] = []
    errors = []
    items = [str(v).strip() for v in values if str(v).strip()]
    if len(items) > MAX_CIDRS:
        raise ValidationError({"allowed_ips": f"At most {MAX_CIDRS} entries."})
    for item in items:
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError:
            errors.append(f"{item!r} is not an IP address or CIDR range (e.g. 203.0.113.7/32).")
            continue
        if str(network) not in result:
            result.append(str(network))
    if errors:
        raise ValidationError({"allowed_ips": errors})
    return result


NO_ENTRA_OBJECT_ID = (
    "A notebook on Azure ML is assigned to its owner's Microsoft Entra ID account, and "
    "the portal does not know yours yet: sign in once with Microsoft (single sign-on), "
    "or ask a platform admin to record your Entra ID object id."
)


def _check_for_provider(*, provider: str, kind: str, owner: Any, cidrs: list[str]) -> None:
    """Refuse what the provider cannot do, before anything is queued."""
    if cidrs and not instance_allowlist_supported(provider):
        raise ValidationError({"allowed_ips": NO_INSTANCE_ALLOWLIST})
    if provider == "azure" and kind == WorkspaceKind.NOTEBOOK and not owner.entra_object_id:
        raise ValidationError(NO_ENTRA_OBJECT_ID)
    if provider == "local" and kind == WorkspaceKind.NOTEBOOK and not owner.is_staff:
        available, reason = local_isolation_status()
        if not available:
            raise ValidationError(
                "This machine cannot run notebooks in a sandbox, so only platform admins "
                f"may start one here ({reason})."
            )


def local_isolation_status() -> tuple[bool, str]:
    """Whether the local provider can sandbox user code, and why (not)."""
    provider = get_provider("local")
    if not isinstance(provider, LocalProvider):  # pragma: no cover - a misconfiguration
        return False, "the local provider is not configured"
    return provider.isolation_status()


def _check_idle_minutes(minutes: int) -> None:
    low, high = IDLE_MINUTES_RANGE
    if not low <= minutes <= high:
        raise ValidationError(
            {"idle_shutdown_minutes": f"Between {low} and {high} minutes (3 days)."}
        )


def _size_offered(size: ComputeSize) -> None:
    if not sizes_offered().filter(pk=size.pk).exists():
        raise ValidationError({"size": f"{size.name} is not offered."})


def _membership(actor: User, project: Project) -> Membership | None:
    return Membership.objects.filter(project=project, user=actor).first()


def _require_writer(actor: User, project: Project) -> Membership:
    membership = _membership(actor, project)
    if membership is None or not membership.can_write:
        raise PermissionDenied("Only members who may change the project request compute.")
    return membership


def workspace_may_manage(*, user: User, workspace: Workspace) -> bool:
    """The owner and the project's leads start, stop, resize and delete it."""
    if workspace.owner_id == user.pk:
        return _membership(user, workspace.project) is not None
    return Membership.objects.filter(
        project_id=workspace.project_id, user=user, role=Role.LEAD
    ).exists()


def _require_manager(actor: User, workspace: Workspace, *, staff_may: bool = False) -> None:
    if staff_may and getattr(actor, "is_staff", False):
        return
    if not workspace_may_manage(user=actor, workspace=workspace):
        raise PermissionDenied("Only its owner and the project's leads manage this workspace.")


def workspace_demand(workspace: Workspace, size: ComputeSize) -> Demand:
    """What the workspace at ``size`` asks of the quotas: a notebook one machine
    and one running slot, a cluster its size times its maximum nodes."""
    return Demand(
        size=size,
        quota_nodes=workspace.quota_nodes,
        billed_nodes=workspace.nodes,
        running=1 if workspace.kind == WorkspaceKind.NOTEBOOK else 0,
        resource=("workspaces.workspace", workspace.pk) if workspace.pk else None,
    )


def _quota_decide(workspace: Workspace, size: ComputeSize) -> QuotaDecision:
    return quota_decide(
        project=workspace.project, user=workspace.owner, demand=workspace_demand(workspace, size)
    )


# --- transitions a person triggers ---------------------------------------------------------


def tracking_purpose(workspace_id: int) -> str:
    """What the workspace's project token is held for."""
    return f"workspace:{workspace_id}"


def _transition(
    workspace: Workspace,
    state: str,
    *,
    actor: User | None,
    action: str,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Move a locked workspace to ``state`` and audit it (caller holds the transaction)."""
    now = now or timezone.now()
    previous = workspace.state
    if previous == S.RUNNING and state != S.RUNNING:
        usage_close(resource=workspace, now=now)
    workspace.state = state
    workspace.state_changed_at = now
    workspace.task_id = ""
    fields = ["state", "state_changed_at", "task_id"]
    if reason is not None:
        workspace.state_reason = reason[:500]
        fields.append("state_reason")
    workspace.save(update_fields=fields)
    if state in TOKEN_REVOKED_IN:
        # The notebook's token for the tracking server ends with it; a start
        # issues a new one (workspaces/tasks.py).
        project_token_revoke(purpose=tracking_purpose(workspace.pk))
    if state == S.RUNNING and previous != S.RUNNING:
        usage_open(
            resource=workspace,
            name=workspace.name,
            project_id=workspace.project_id,
            user_id=workspace.owner_id,
            size=workspace.size,
            nodes=workspace.nodes,
            now=now,
        )
    audit_record(
        action=action,
        actor=actor,
        project=workspace.project,
        obj=workspace,
        payload={
            "from": previous,
            "to": state,
            **({"reason": reason} if reason else {}),
            **(payload or {}),
        },
    )


def _page(ws: Workspace) -> str:
    return f"/projects/{ws.project.slug}/workspaces/{ws.pk}/"


def _locked(workspace_id: int) -> Workspace:
    return (
        Workspace.objects.select_for_update(of=("self",))
        .select_related("project", "size", "owner", "requested_size")
        .get(pk=workspace_id)
    )


def _queue(task: Task, workspace_id: int) -> None:
    transaction.on_commit(lambda: task.delay(workspace_id=workspace_id))


def _dispatch(task: Task, workspace_id: int) -> None:
    """Send the task of a new operation (caller holds the transaction): the
    row waits for a worker under a fresh lease, and its attempts count anew."""
    Workspace.objects.filter(pk=workspace_id).update(task_id="", attempts=0, **lease_waiting())
    _queue(task, workspace_id)


def _ask_admin(
    *, actor: User, workspace: Workspace, size: ComputeSize, decision: QuotaDecision, what: str
) -> ApprovalRequest:
    workspace.quota_exceeded = decision.exceeded
    workspace.save(update_fields=["quota_exceeded"])
    request = approval_request_create(
        actor=actor,
        kind=COMPUTE_KIND,
        project=workspace.project,
        subject=workspace,
        summary=_summary(workspace=workspace, size=size, decision=decision, what=what),
        requires_staff=True,
    )
    workspace.approval = request
    workspace.save(update_fields=["approval"])
    return request


def workspace_request(
    *,
    actor: User,
    project: Project,
    name: str,
    size: ComputeSize,
    kind: str = WorkspaceKind.NOTEBOOK,
    idle_shutdown_minutes: int = 60,
    allowed_ips: Iterable[str] = (),
    min_nodes: int = 0,
    max_nodes: int = 1,
) -> Workspace:
    """Request a notebook workspace or a compute cluster.

    Within the project's and the owner's quotas and budgets it is approved at
    once and provisioning is queued after commit; beyond them a platform
    admin decides (an approval request with the cost estimate and what is
    exceeded). A new request needs the project's signed-off charter
    (:class:`charter.gates.CharterNotSignedOff` otherwise); starting or resizing
    a workspace the project already has does not ask again. On Azure ML, a notebook needs its owner's Entra ID object id,
    and no workspace takes an IP allowlist; both are refused here, before
    any task runs.
    """
    _require_writer(actor, project)
    name = (name or "").strip()
    if not name or len(name) > 60:
        raise ValidationError({"name": "Give a name of 1 to 60 characters."})
    if kind not in WorkspaceKind.values:
        raise ValidationError({"kind": "notebook or cluster."})
    _check_idle_minutes(idle_shutdown_minutes)
    cidrs = cidrs_normalize(allowed_ips)
    if kind == WorkspaceKind.CLUSTER:
        if not (0 <= min_nodes <= max_nodes and 1 <= max_nodes <= MAX_NODES):
            raise ValidationError(
                {"max_nodes": f"0 ≤ min_nodes ≤ max_nodes, and 1 ≤ max_nodes ≤ {MAX_NODES}."}
            )
    else:
        min_nodes, max_nodes = 0, 1
    _size_offered(size)
    provider = settings.CLOUD_PROVIDER
    _check_for_provider(
        provider=provider,
        kind=kind,
        owner=actor,
        cidrs=cidrs,
    )
    with transaction.atomic():
        require_signed_charter(project, purpose=f"requesting a {WorkspaceKind(kind).label.lower()}")
        if (
            Workspace.objects.filter(project=project, name=name)
            .exclude(state__in=[S.DELETED, S.REJECTED])
            .exists()
        ):
            raise ValidationError({"name": f"This project already has a workspace “{name}”."})
        workspace = Workspace.objects.create(
            project=project,
            owner=actor,
            name=name,
            kind=kind,
            provider=provider,
            size=size,
            idle_shutdown_seconds=idle_shutdown_minutes * 60,
            allowed_ips=cidrs,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
        )
        try:
            workspace.ensure_provider_name()
        except ProviderConfigurationError as exc:
            raise ValidationError(
                f"Workspaces on {provider} are not set up on this portal ({exc}); "
                "ask a platform admin."
            ) from exc
        audit_record(
            action="workspace.requested",
            actor=actor,
            project=project,
            obj=workspace,
            payload={
                "name": name,
                "kind": kind,
                "provider": provider,
                "provider_name": workspace.provider_name,
                "size": size.name,
                "hourly_price": size.hourly_price,
                "idle_shutdown_minutes": idle_shutdown_minutes,
                "allowed_ips": cidrs,
                "min_nodes": min_nodes,
                "max_nodes": max_nodes,
            },
        )
        decision = _quota_decide(workspace, size)
        if decision.within:
            _transition(
                workspace,
                S.APPROVED,
                actor=actor,
                action="workspace.approved",
                payload={"by": "quota", "hourly_estimate": decision.hourly},
            )
            _dispatch(tasks.workspace_provision, workspace.pk)
        else:
            _ask_admin(actor=actor, workspace=workspace, size=size, decision=decision, what="New")
            _transition(
                workspace,
                S.PENDING_APPROVAL,
                actor=actor,
                action="workspace.approval_requested",
                payload={"exceeded": decision.exceeded, "hourly_estimate": decision.hourly},
            )
    return workspace


def _conflict(workspace: Workspace, allowed: Iterable[str], verb: str) -> None:
    if workspace.state not in allowed:
        raise WorkspaceConflict(
            f"Cannot {verb} a workspace that is {workspace.get_state_display().lower()}.",
            workspace.state,
        )


def workspace_start(*, actor: User, workspace: Workspace) -> Workspace:
    """Start a stopped (or failed) notebook again: a request again, checked against quota."""
    _require_manager(actor, workspace)
    with transaction.atomic():
        ws = _locked(workspace.pk)
        if ws.kind == WorkspaceKind.CLUSTER:
            raise WorkspaceConflict("A cluster scales its nodes itself.", ws.state)
        _conflict(ws, (S.STOPPED, S.FAILED), "start")
        decision = _quota_decide(ws, ws.size)
        if decision.within:
            _transition(
                ws,
                S.APPROVED,
                actor=actor,
                action="workspace.start_requested",
                reason="",
                payload={"by": "quota"},
            )
            _dispatch(tasks.workspace_provision, ws.pk)
        else:
            _ask_admin(actor=actor, workspace=ws, size=ws.size, decision=decision, what="Start")
            _transition(
                ws,
                S.PENDING_APPROVAL,
                actor=actor,
                action="workspace.approval_requested",
                reason="",
                payload={"exceeded": decision.exceeded},
            )
    return ws


def workspace_stop(
    *, actor: User | None, workspace: Workspace, reason: str = "", idle_seconds: float | None = None
) -> Workspace:
    """Stop a running notebook; metering stops now. ``idle_seconds`` marks an idle shutdown."""
    if actor is not None:
        _require_manager(actor, workspace, staff_may=True)
    with transaction.atomic():
        ws = _locked(workspace.pk)
        if ws.kind == WorkspaceKind.CLUSTER:
            raise WorkspaceConflict("A cluster scales down to its minimum by itself.", ws.state)
        _conflict(ws, (S.RUNNING,), "stop")
        now = timezone.now()
        if idle_seconds is not None:
            minutes = int(idle_seconds // 60)
            reason = reason or (
                f"Stopped after {minutes} idle minute{'' if minutes == 1 else 's'} "
                f"(idle shutdown after {ws.idle_shutdown_minutes})."
            )
            IdleShutdown.objects.create(
                workspace=ws,
                project=ws.project,
                hourly_price=ws.size.hourly_price,
                idle_seconds=int(idle_seconds),
                stopped_at=now,
            )
            notify(
                users=[ws.owner],
                text=f"{ws.project.name}: workspace “{ws.name}” stopped: {reason}",
                url=_page(ws),
            )
        elif not reason:
            reason = f"Stopped by {actor.get_username()}." if actor else "Stopped."
        _transition(
            ws,
            S.STOPPING,
            actor=actor,
            action="workspace.idle_stopped" if idle_seconds is not None else "workspace.stopping",
            reason=reason,
            payload={"idle_seconds": int(idle_seconds)} if idle_seconds is not None else None,
            now=now,
        )
        _dispatch(tasks.workspace_stop_task, ws.pk)
    return ws


def workspace_resize(*, actor: User, workspace: Workspace, size: ComputeSize) -> Workspace:
    """Change a notebook's size: a request again, checked against quota with
    the new size in place of the old one."""
    _require_manager(actor, workspace)
    with transaction.atomic():
        ws = _locked(workspace.pk)
        if ws.kind == WorkspaceKind.CLUSTER:
            raise WorkspaceConflict(
                "A cluster's size is fixed; delete it and request a new one.", ws.state
            )
        _conflict(ws, (S.RUNNING, S.STOPPED), "resize")
        if size.pk == ws.size_id:
            raise ValidationError({"size": f"The workspace already is {size.name}."})
        if ws.requested_size_id is not None:
            raise WorkspaceConflict(
                "A resize of this workspace is already waiting for an admin.", ws.state
            )
        _size_offered(size)
        decision = _quota_decide(ws, size)
        ws.requested_size = size
        ws.save(update_fields=["requested_size"])
        payload = {"from_size": ws.size.name, "to_size": size.name}
        if decision.within:
            _transition(
                ws,
                S.RESIZING,
                actor=actor,
                action="workspace.resizing",
                reason="",
                payload={**payload, "by": "quota"},
            )
            _dispatch(tasks.workspace_resize_task, ws.pk)
        else:
            _ask_admin(actor=actor, workspace=ws, size=size, decision=decision, what="Resize")
            audit_record(
                action="workspace.approval_requested",
                actor=actor,
                project=ws.project,
                obj=ws,
                payload={**payload, "exceeded": decision.exceeded},
            )
    return ws


def workspace_delete(*, actor: User, workspace: Workspace) -> Workspace:
    """Delete the workspace and what the provider holds for it."""
    _require_manager(actor, workspace, staff_may=True)
    with transaction.atomic():
        ws = _locked(workspace.pk)
        _conflict(
            ws,
            (
                S.RUNNING,
                S.STOPPED,
                S.FAILED,
                S.APPROVED,
                S.PENDING_APPROVAL,
                S.REJECTED,
                S.REQUESTED,
            ),
            "delete",
        )
        approval = ws.approval
        if (
            ws.state == S.PENDING_APPROVAL
            and approval is not None
            and approval.state == ApprovalState.PENDING
            and approval.requested_by_id == actor.pk
        ):
            approval_withdraw(actor=actor, approval_id=approval.pk)
            ws.refresh_from_db()
            if ws.state == S.DELETED:
                return ws
        if ws.state in (S.PENDING_APPROVAL, S.REJECTED, S.REQUESTED) and not ws.provisioned:
            _transition(ws, S.DELETED, actor=actor, action="workspace.deleted", reason="Deleted.")
            return ws
        _transition(
            ws,
            S.DELETING,
            actor=actor,
            action="workspace.deleting",
            reason=f"Deleted by {actor.get_username()}.",
        )
        _dispatch(tasks.workspace_delete_task, ws.pk)
    return ws


def workspace_allowed_ips_set(
    *, actor: User, workspace: Workspace, cidrs: Iterable[str]
) -> Workspace:
    """Replace the workspace's IP allowlist; the provider applies it after commit."""
    _require_manager(actor, workspace)
    allowed = cidrs_normalize(cidrs)
    with transaction.atomic():
        ws = _locked(workspace.pk)
        if ws.state in (S.DELETING, S.DELETED):
            raise WorkspaceConflict("The workspace is deleted.", ws.state)
        if allowed and not ws.instance_allowlist_supported:
            raise ValidationError({"allowed_ips": NO_INSTANCE_ALLOWLIST})
        before = list(ws.allowed_ips)
        if before == allowed:
            return ws
        ws.allowed_ips = allowed
        ws.save(update_fields=["allowed_ips"])
        audit_record(
            action="workspace.allowed_ips_changed",
            actor=actor,
            project=ws.project,
            obj=ws,
            payload={"before": before, "after": allowed},
        )
        if ws.provisioned:
            _queue(tasks.workspace_allowed_ips_apply, ws.pk)
    return ws


def azure_network_apply(*, provider: Any) -> list[str]:
    """Apply ``AZURE_WORKSPACE_ALLOWED_IPS`` as the Azure ML workspace's IP
    rules and audit what was applied (an admin's act, by command: no actor).

    The rules cover the whole Azure ML workspace, never one person's
    notebook, so no user request changes them. Raises ``ProviderError`` when
    Azure refuses (nothing is audited then: nothing changed).
    """
    apply = getattr(provider, "workspace_network_apply", None)
    if apply is None:
        raise ProviderError(f"The {provider.name} provider has no workspace network rules.")
    rules = list(apply())
    with transaction.atomic():
        audit_record(
            action="azure.network_applied",
            actor=None,
            object_type="azure.workspace",
            object_id=settings.AZURE_ML_WORKSPACE,
            payload={
                "workspace": settings.AZURE_ML_WORKSPACE,
                "rules": rules,
                "default_action": "Deny" if rules else "Allow",
            },
        )
    return rules


# --- outcomes a task records ------------------------------------------------------------

# Operation -> (the state it works in, the states it may be claimed from).
OPERATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "provision": (S.PROVISIONING, (S.APPROVED,)),
    "stop": (S.STOPPING, ()),
    "resize": (S.RESIZING, ()),
    "delete": (S.DELETING, ()),
}


def workspace_claim(
    *,
    workspace_id: int,
    operation: str,
    task_id: str,
    worker: str = "",
    attempt: bool = True,
    owner: str = "",
) -> Workspace | None:
    """Claim the workspace for one task run and take its lease: a conditional
    update, so a duplicate or late task finds nothing to do. The same task (a
    retry, or a redelivery after its worker died) claims it again. With
    ``attempt``, the run counts as an attempt at the provider call and is
    audited. ``owner`` holds the lease (``background.leases.lease_owner_for``)."""
    working, sources = OPERATIONS[operation]
    mine = Q(state=working) & (Q(task_id="") | Q(task_id=task_id))
    now = timezone.now()
    with transaction.atomic():
        claimed = Workspace.objects.filter(
            Q(pk=workspace_id) & (mine | Q(state__in=sources))
        ).update(
            state=working,
            task_id=task_id,
            lease_owner=(owner or f"{worker}:{task_id}")[:255],
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
        )
        if not claimed:
            return None
        ws = _locked(workspace_id)
        if attempt:
            ws.attempts += 1
            ws.save(update_fields=["attempts"])
            audit_record(
                action=f"workspace.{operation}_attempt",
                project=ws.project,
                obj=ws,
                payload={"attempt": ws.attempts, "task_id": task_id, "worker": worker},
            )
    return ws


def workspace_release(*, workspace_id: int, working: str, task_id: str, delay: float) -> bool:
    """Give the lease back before the task waits ``delay`` seconds for its
    next poll or retry: the row waits for a worker again (the same task id
    may claim it), and if that message is lost (a worker that dies during
    the countdown takes it along on the embedded broker), the lease runs out
    and recovery sends it again. Bookkeeping, like the claim: not audited."""
    return bool(
        Workspace.objects.filter(pk=workspace_id, state=working, task_id=task_id).update(
            **lease_waiting(delay=delay)
        )
    )


# Which task carries on an operation left in each state.
RESUMABLE: dict[str, Task] = {
    S.APPROVED: tasks.workspace_provision,
    S.PROVISIONING: tasks.workspace_provision,
    S.STOPPING: tasks.workspace_stop_task,
    S.RESIZING: tasks.workspace_resize_task,
    S.DELETING: tasks.workspace_delete_task,
}


def _operation_give_up(workspace: Workspace, reason: str) -> None:
    workspace_mark_failed(workspace_id=workspace.pk, reason=reason, working=workspace.state)


# What the recovery beat (background.leases, ``portal.leases_recover``) knows
# of workspace operations; registered in WorkspacesConfig.ready(). A row in a
# working state whose lease ran out lost its task: it is sent again (any task
# may then claim it), and failed after BACKGROUND_MAX_ATTEMPTS.
OPERATIONS_WORK = LeasedWork(
    name="workspace_operation",
    model=Workspace,
    active=lambda: Workspace.objects.filter(state__in=list(RESUMABLE)),
    requeue={"task_id": ""},
    redispatch=lambda row: RESUMABLE[row.state].delay(workspace_id=row.pk),
    fail=_operation_give_up,
)


def workspace_operation_set(*, workspace_id: int, url: str, working: str) -> bool:
    """Remember the provider's long-running operation (or, with ``url=""``, that
    it settled) while the workspace is still in ``working``.

    Bookkeeping of the task at work, like its claim: not audited; the outcome
    the operation leads to is (``workspace_mark_*``).
    """
    return bool(
        Workspace.objects.filter(pk=workspace_id, state=working).update(operation_url=url[:1000])
    )


def _outcome(workspace_id: int, working: str) -> Workspace | None:
    ws = _locked(workspace_id)
    return ws if ws.state == working else None


def workspace_mark_running(
    *, workspace_id: int, url: str = "", working: str = S.PROVISIONING
) -> bool:
    """Record that the provider runs the workspace (after provisioning or resizing)."""
    with transaction.atomic():
        ws = _outcome(workspace_id, working)
        if ws is None:
            return False
        now = timezone.now()
        payload: dict[str, Any] = {"attempts": ws.attempts}
        if working == S.RESIZING and ws.requested_size is not None:
            payload.update(from_size=ws.size.name, to_size=ws.requested_size.name)
            ws.size = ws.requested_size
            ws.requested_size = None
            ws.approval = None
        ws.url = url
        ws.provisioned = True
        ws.operation_url = ""
        ws.save(
            update_fields=[
                "size",
                "requested_size",
                "approval",
                "url",
                "provisioned",
                "operation_url",
            ]
        )
        IdleShutdown.objects.filter(workspace=ws, resumed_at__isnull=True).update(resumed_at=now)
        _transition(
            ws,
            S.RUNNING,
            actor=None,
            action="workspace.running",
            reason="",
            payload=payload,
            now=now,
        )
    return True


def workspace_mark_stopped(
    *, workspace_id: int, reason: str = "", working: str = S.STOPPING
) -> bool:
    with transaction.atomic():
        ws = _outcome(workspace_id, working)
        if ws is None:
            return False
        ws.url = ""
        ws.operation_url = ""
        ws.save(update_fields=["url", "operation_url"])
        _transition(
            ws,
            S.STOPPED,
            actor=None,
            action="workspace.stopped",
            reason=reason or None,
        )
    return True


def workspace_mark_deleted(*, workspace_id: int) -> bool:
    with transaction.atomic():
        ws = _outcome(workspace_id, S.DELETING)
        if ws is None:
            return False
        ws.url = ""
        ws.operation_url = ""
        ws.save(update_fields=["url", "operation_url"])
        _transition(ws, S.DELETED, actor=None, action="workspace.deleted")
    return True


def workspace_mark_failed(*, workspace_id: int, reason: str, working: str | None = None) -> bool:
    """Record that the provider could not do what was asked, and why."""
    with transaction.atomic():
        ws = _locked(workspace_id)
        if working is not None and ws.state != working:
            return False
        if ws.state in (S.DELETED, S.FAILED):
            return False
        ws.requested_size = None
        ws.url = ""
        ws.operation_url = ""
        ws.save(update_fields=["requested_size", "url", "operation_url"])
        reason = reason or "The provider failed without saying why."
        _transition(ws, S.FAILED, actor=None, action="workspace.failed", reason=reason)
        notify(
            users=[ws.owner],
            text=f"{ws.project.name}: workspace “{ws.name}” failed: {reason}",
            url=_page(ws),
        )
    return True


def workspace_found_stopped(*, workspace_id: int, detail: str = "") -> bool:
    """The provider reports stopped what the portal thought running (its own
    idle shutdown or schedule, or the process ended): record it, stop metering."""
    return workspace_mark_stopped(
        workspace_id=workspace_id,
        reason="Stopped outside the portal" + (f": {detail}" if detail else "") + ".",
        working=S.RUNNING,
    )


# --- the approval kind -----------------------------------------------------------------


def _subject(request: Any) -> Workspace | None:
    ws = Workspace.objects.select_for_update().filter(pk=int(request.subject_id)).first()
    if ws is None or ws.approval_id != request.pk:
        return None  # superseded by a later request for it, or gone
    return Workspace.objects.select_related("project", "size", "requested_size", "owner").get(
        pk=ws.pk
    )


def _on_approved(*, request: Any, actor: User) -> None:
    ws = _subject(request)
    if ws is None:
        return
    if ws.state == S.PENDING_APPROVAL:
        _transition(
            ws,
            S.APPROVED,
            actor=actor,
            action="workspace.approved",
            reason="",
            payload={"by": "admin", "approval": request.pk},
        )
        _dispatch(tasks.workspace_provision, ws.pk)
    elif ws.requested_size is not None and ws.state in (S.RUNNING, S.STOPPED):
        _transition(
            ws,
            S.RESIZING,
            actor=actor,
            action="workspace.resizing",
            reason="",
            payload={"by": "admin", "approval": request.pk, "to_size": ws.requested_size.name},
        )
        _dispatch(tasks.workspace_resize_task, ws.pk)


def _undecided(request: Any, actor: User, verb: str) -> None:
    ws = _subject(request)
    if ws is None:
        return
    why = f"Request {verb}" + (f": {request.comment}" if request.comment else ".")
    if ws.state == S.PENDING_APPROVAL:
        if ws.provisioned:
            target = S.STOPPED
        elif verb == "withdrawn":
            target = S.DELETED
        else:
            target = S.REJECTED
        _transition(ws, target, actor=actor, action=f"workspace.request_{verb}", reason=why)
    elif ws.requested_size is not None:
        ws.requested_size = None
        ws.approval = None
        ws.save(update_fields=["requested_size", "approval"])
        audit_record(
            action=f"workspace.resize_{verb}",
            actor=actor,
            project=ws.project,
            obj=ws,
            payload={"reason": why},
        )


def _on_rejected(*, request: Any, actor: User) -> None:
    _undecided(request, actor, "rejected")


def _on_withdrawn(*, request: Any, actor: User) -> None:
    _undecided(request, actor, "withdrawn")


def _describe(*, request: Any) -> dict[str, Any]:
    ws = (
        Workspace.objects.select_related("size", "requested_size", "owner", "project")
        .filter(pk=int(request.subject_id))
        .first()
    )
    if ws is None:
        return {}
    size = ws.requested_size or ws.size
    hourly = size.hourly_price * max(ws.nodes, 1)
    return {
        "workspace": ws.name,
        "kind": ws.kind,
        "state": ws.state,
        "owner": ws.owner.username,
        "size": size.name,
        "current_size": ws.size.name if ws.requested_size else None,
        "vcpus": size.vcpus * ws.quota_nodes,
        "gpus": size.gpus * ws.quota_nodes,
        "hourly_estimate": str(hourly),
        "monthly_estimate_always_on": str((hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"))),
        "currency": size.currency,
        # One line, as the approval page shows it.
        "quota_exceeded": "; ".join(ws.quota_exceeded),
        "memory_gb": str(size.memory_gb * ws.quota_nodes),
        "gpu_type": size.gpu_type,
        "nodes": ws.nodes,
        "page": _page(ws),
    }


_LIMIT_WORDS = {
    "vCPUs": "vCPU quota",
    "GPUs": "GPU quota",
    "running workspaces": "limit on running workspaces",
}
_LIMIT = re.compile(
    r"^(?P<who>Project|Your) (?P<what>vCPUs|GPUs|running workspaces): (?P<used>\d+)"
    r"(?: in use)? \+ (?P<asked>\d+)(?: requested)? > (?P<limit>\d+)$"
)


def _exceeded_in_words(item: str) -> str:
    """ "Project vCPUs: 14 in use + 2 requested > 8" as a sentence; anything
    else (budgets) is already one."""
    found = _LIMIT.match(item)
    if found is None:
        return item
    whose = "the project's" if found["who"] == "Project" else "the requester's"
    total = int(found["used"]) + int(found["asked"])
    return (
        f"exceeds {whose} {_LIMIT_WORDS[found['what']]} "
        f"({total} of {found['limit']} with this request; {found['used']} in use)"
    )


_ASKED = {"New": "Requested", "Start": "Asked to start", "Resize": "Asked to resize"}


def _summary(*, workspace: Workspace, size: ComputeSize, decision: QuotaDecision, what: str) -> str:
    """One line for the inbox: "Requested a notebook workspace “nb” (2 vCPUs,
    8 GB, about $0.19/hour); exceeds the project's vCPU quota (10 of 8 ...)"."""
    kind = WorkspaceKind(workspace.kind).label.lower()
    nodes = max(workspace.quota_nodes, 1)
    memory = format((size.memory_gb * nodes).normalize(), "f")
    gpu = f", {size.gpus * nodes} × {size.gpu_type or 'GPU'}" if size.gpus else ""
    price = _money(str(decision.hourly.quantize(Decimal("0.01"))), size.currency)
    head = f"{_ASKED.get(what, what)} {'a' if what == 'New' else 'the'} {kind}"
    words = "; ".join(_exceeded_in_words(e) for e in decision.exceeded)
    return (
        f"{head} “{workspace.name}” ({size.vcpus * nodes} vCPUs, {memory} GB{gpu}, "
        f"about {price}/hour); {words}"
    )


def _money(amount: str, currency: str) -> str:
    value = Decimal(amount)
    shown = f"{value:,.2f}"
    return f"${shown}" if currency == "USD" else f"{shown} {currency}"


def _rows(subject: dict[str, Any]) -> list[tuple[str, str]]:
    """The compute request as an approver reads it."""
    if not subject:
        return []
    what = WorkspaceKind(subject["kind"]).label if subject["kind"] in WorkspaceKind.values else ""
    gpus = subject.get("gpus") or 0
    gpu = f", {gpus} × {subject.get('gpu_type') or 'GPU'}" if gpus else ", no GPU"
    memory = format(Decimal(subject["memory_gb"]).normalize(), "f")
    resources = f"{subject['vcpus']} vCPUs, {memory} GB memory{gpu}"
    nodes = subject.get("nodes") or 1
    size = subject["size"] + (f" × {nodes} nodes" if nodes > 1 else "")
    hourly = _money(subject["hourly_estimate"], subject["currency"])
    monthly = _money(subject["monthly_estimate_always_on"], subject["currency"])
    state = subject["state"]
    rows = [
        ("Request", f"{what} “{subject['workspace']}” for {subject['owner']}"),
        ("Size", f"{size} ({resources})"),
    ]
    if subject.get("current_size"):
        rows.append(("Now", f"Runs at {subject['current_size']}; this asks to resize it"))
    rows += [
        ("Price", f"about {hourly} an hour; about {monthly} a month if it runs all the time"),
        ("State", WorkspaceState(state).label if state in WorkspaceState.values else state),
    ]
    exceeded = [part for part in subject.get("quota_exceeded", "").split("; ") if part]
    if exceeded:
        words = "; ".join(_exceeded_in_words(part) for part in exceeded)
        rows.append(("Why an admin decides", words[0].upper() + words[1:]))
    return rows


register(
    ApprovalKind(
        name=COMPUTE_KIND,
        on_approved=_on_approved,
        on_rejected=_on_rejected,
        on_withdrawn=_on_withdrawn,
        describe=_describe,
        rows=_rows,
        label="Compute over quota",
    )
)
