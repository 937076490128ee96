"""Approvals: one mechanism for every gate, single-step or a chain of steps."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.notifications import notify
from audit.services import audit_record
from governance.approvals import ApprovalKind, kind_for
from governance.models import ApprovalRequest, ApprovalState
from projects.models import Membership, Project

# How many earlier steps a chain may have; bounds the four-eyes look-back.
MAX_STEPS = 5


class ApprovalConflict(Exception):
    """The request was already decided (or superseded); HTTP 409."""

    def __init__(self, state: str) -> None:
        super().__init__(f"This request is already {state}.")
        self.state = state


def _deciders(*, project: Project, required_role: str, requires_staff: bool) -> QuerySet[User]:
    if requires_staff:
        # Not an admin who is a member of the project (four eyes for admins too).
        return User.objects.filter(is_staff=True, is_active=True).exclude(
            memberships__project=project
        )
    return User.objects.filter(
        pk__in=Membership.objects.filter(project=project, role=required_role).values("user")
    )


def _open(
    *,
    actor: User,
    requester: User,
    kind: str,
    project: Project,
    subject_type: str,
    subject_id: str,
    summary: str,
    required_role: str,
    requires_staff: bool,
    url: str = "",
    step: int = 0,
    previous: ApprovalRequest | None = None,
) -> ApprovalRequest:
    request = ApprovalRequest.objects.create(
        kind=kind,
        project=project,
        subject_type=subject_type,
        subject_id=subject_id,
        summary=summary[:300],
        requested_by=requester,
        required_role=required_role,
        requires_staff=requires_staff,
        step=step,
        previous=previous,
    )
    audit_record(
        action="approval.requested",
        actor=actor,
        project=project,
        obj=request,
        payload={
            "kind": kind,
            "subject": f"{subject_type}:{subject_id}",
            "required_role": required_role,
            "requires_staff": requires_staff,
            "step": step,
        },
    )
    earlier = [r.decided_by_id for r in _earlier_steps(request)]
    notify(
        users=_deciders(
            project=project, required_role=required_role, requires_staff=requires_staff
        ).exclude(pk__in=[requester.pk, *earlier]),
        text=f"{project.name}: {requester} asks for your decision: {summary}",
        url=url or f"/approvals/{request.pk}/",
    )
    return request


def approval_request_create(
    *,
    actor: User,
    kind: str,
    project: Project,
    subject: models.Model,
    summary: str,
    required_role: str = "",
    requires_staff: bool = False,
    url: str = "",
    supersede_kind: bool = False,
) -> ApprovalRequest:
    """Open a request for a decision and notify those who may decide.

    For a kind with ``steps`` the first step's decider applies, and
    ``required_role``/``requires_staff`` are ignored. A pending request for
    the same subject is superseded by the new one; with ``supersede_kind``
    every pending request of this kind in the project is (a new charter
    version replaces the one still waiting).
    """
    steps = kind_for(kind).steps
    if steps:
        required_role, requires_staff = steps[0].role, steps[0].staff
    subject_type, subject_id = subject._meta.label_lower, str(subject.pk)
    with transaction.atomic():
        stale_requests = ApprovalRequest.objects.select_for_update().filter(
            project=project, kind=kind, state=ApprovalState.PENDING
        )
        if not supersede_kind:
            stale_requests = stale_requests.filter(subject_type=subject_type, subject_id=subject_id)
        for stale in stale_requests:
            stale.state = ApprovalState.SUPERSEDED
            stale.save(update_fields=["state"])
            audit_record(
                action="approval.superseded",
                actor=actor,
                project=project,
                obj=stale,
                payload={"kind": kind, "subject_id": stale.subject_id},
            )
        return _open(
            actor=actor,
            requester=actor,
            kind=kind,
            project=project,
            subject_type=subject_type,
            subject_id=subject_id,
            summary=summary,
            required_role=required_role,
            requires_staff=requires_staff,
            url=url,
        )


def _earlier_steps(request: ApprovalRequest) -> list[ApprovalRequest]:
    """The approved requests of the steps before this one, nearest first."""
    earlier: list[ApprovalRequest] = []
    current = request
    while current.previous_id is not None and len(earlier) < MAX_STEPS:
        current = ApprovalRequest.objects.get(pk=current.previous_id)
        earlier.append(current)
    return earlier


def approval_may_decide(*, user: User, request: ApprovalRequest) -> tuple[bool, str]:
    """Whether the user may decide this request, and why not."""
    if request.requested_by_id == user.pk:
        return False, "Nobody decides their own request."
    if any(r.decided_by_id == user.pk for r in _earlier_steps(request)):
        return False, "You decided an earlier step of this request; someone else decides this one."
    if request.requires_staff:
        if not user.is_staff:
            return False, "Only a platform admin decides this."
        if Membership.objects.filter(project_id=request.project_id, user=user).exists():
            return False, "You are a member of this project; another platform admin decides this."
        return True, ""
    if not Membership.objects.filter(
        project_id=request.project_id, user=user, role=request.required_role
    ).exists():
        return (
            False,
            f"Only a {request.required_role.replace('_', ' ')} of this project decides this.",
        )
    return True, ""


def _next_step(*, kind: ApprovalKind, request: ApprovalRequest, actor: User) -> ApprovalRequest:
    step = kind.steps[request.step + 1]
    return _open(
        actor=actor,
        requester=request.requested_by,
        kind=request.kind,
        project=request.project,
        subject_type=request.subject_type,
        subject_id=request.subject_id,
        summary=request.summary,
        required_role=step.role,
        requires_staff=step.staff,
        step=request.step + 1,
        previous=request,
    )


def approval_decide(
    *,
    actor: User,
    approval_id: int,
    approve: bool,
    comment: str = "",
    ip_address: str | None = None,
) -> ApprovalRequest:
    """Approve or reject a pending request, once.

    Four eyes: nobody decides their own request, whatever their roles, nor
    two steps of the same chain. Approving a step that is not the last opens
    the next step's request; the kind's ``on_approved`` runs after the last.
    A rejection at any step ends the chain. Raises PermissionDenied for
    someone who may not decide, ValidationError for a rejection without a
    comment, and ApprovalConflict when the request was already decided; each
    attempt is audited.
    """
    comment = comment.strip()
    verb = "approve" if approve else "reject"
    if not approve and not comment:
        raise ValidationError({"comment": "Say why you reject it."})
    conflict: str | None = None
    refused: str | None = None
    with transaction.atomic():
        request = (
            ApprovalRequest.objects.select_for_update()
            .select_related("project", "requested_by")
            .get(pk=approval_id)
        )
        may, why = approval_may_decide(user=actor, request=request)
        if not may:
            refused = why
        elif request.state != ApprovalState.PENDING:
            conflict = request.state
        if refused or conflict:
            audit_record(
                action="approval.decision_refused",
                actor=actor,
                project=request.project,
                obj=request,
                payload={"attempted": verb, "reason": refused or f"already {conflict}"},
                ip_address=ip_address,
            )
        else:
            request.state = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
            request.decided_by = actor
            request.decided_at = timezone.now()
            request.comment = comment
            request.save(update_fields=["state", "decided_by", "decided_at", "comment"])
            kind = kind_for(request.kind)
            more_steps = approve and request.step + 1 < len(kind.steps)
            audit_record(
                action=f"approval.{request.state}",
                actor=actor,
                project=request.project,
                obj=request,
                payload={
                    "kind": request.kind,
                    "comment": comment,
                    "subject": f"{request.subject_type}:{request.subject_id}",
                    "step": request.step,
                },
                ip_address=ip_address,
            )
            if more_steps:
                _next_step(kind=kind, request=request, actor=actor)
            else:
                (kind.on_approved if approve else kind.on_rejected)(request=request, actor=actor)
            notify(
                users=[request.requested_by],
                text=decision_text(request=request, actor=actor, more_steps=more_steps),
                url=f"/approvals/{request.pk}/",
            )
    if refused:
        raise PermissionDenied(refused)
    if conflict:
        raise ApprovalConflict(conflict)
    return request


NOTIFICATION_LENGTH = 300
SUMMARY_IN_NOTIFICATION = 120


def _shortened(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def decision_text(*, request: ApprovalRequest, actor: User, more_steps: bool) -> str:
    """What the requester reads about a decision, with the comment (a
    rejection's reason) in it, shortened to fit a notification."""
    if more_steps:
        steps = kind_for(request.kind).steps
        verb = f"approved step {request.step + 1} of {len(steps)} ({steps[request.step].label}) of"
    elif request.state == ApprovalState.APPROVED:
        verb = "approved"
    else:
        verb = "rejected"
    summary = _shortened(request.summary, SUMMARY_IN_NOTIFICATION)
    text = f"{request.project.name}: {actor} {verb} your request “{summary}”"
    comment = request.comment.strip()
    text += f": “{comment}”" if comment else "."
    return _shortened(text, NOTIFICATION_LENGTH)


def approval_withdraw(*, actor: User, approval_id: int) -> ApprovalRequest:
    """The requester takes back a pending request (at whatever step it is)."""
    with transaction.atomic():
        request = ApprovalRequest.objects.select_for_update().get(pk=approval_id)
        if request.requested_by_id != actor.pk:
            raise PermissionDenied("Only the requester withdraws a request.")
        if request.state != ApprovalState.PENDING:
            raise ApprovalConflict(request.state)
        request.state = ApprovalState.WITHDRAWN
        request.save(update_fields=["state"])
        kind_for(request.kind).on_withdrawn(request=request, actor=actor)
        audit_record(action="approval.withdrawn", actor=actor, project=request.project, obj=request)
    return request
