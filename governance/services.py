"""Approvals: one mechanism for every gate."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import audit_record


class ApprovalConflict(Exception):
    """The request was already decided (or superseded); HTTP 409."""

    def __init__(self, state: str) -> None:
        super().__init__(f"This request is already {state}.")
        self.state = state


def approval_request_create(
    *,
    actor: Any,
    kind: str,
    project: Any,
    subject: Any,
    summary: str,
    required_role: str = "",
    requires_staff: bool = False,
    url: str = "",
    supersede_kind: bool = False,
) -> Any:
    """Open a request for a decision and notify those who may decide.

    A pending request for the same subject is superseded by the new one; with
    ``supersede_kind`` every pending request of this kind in the project is (a
    new charter version replaces the one still waiting).
    """
    from accounts.models import User
    from accounts.notifications import notify
    from governance.models import ApprovalRequest, ApprovalState
    from projects.models import Membership

    with transaction.atomic():
        stale_requests = ApprovalRequest.objects.select_for_update().filter(
            project=project, kind=kind, state=ApprovalState.PENDING
        )
        if not supersede_kind:
            stale_requests = stale_requests.filter(
                subject_type=subject._meta.label_lower, subject_id=str(subject.pk)
            )
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
        request = ApprovalRequest.objects.create(
            kind=kind,
            project=project,
            subject_type=subject._meta.label_lower,
            subject_id=str(subject.pk),
            summary=summary[:300],
            requested_by=actor,
            required_role=required_role,
            requires_staff=requires_staff,
        )
        audit_record(
            action="approval.requested",
            actor=actor,
            project=project,
            obj=request,
            payload={
                "kind": kind,
                "subject": f"{request.subject_type}:{request.subject_id}",
                "required_role": required_role,
                "requires_staff": requires_staff,
            },
        )
        if requires_staff:
            deciders = User.objects.filter(is_staff=True, is_active=True)
        else:
            deciders = User.objects.filter(
                pk__in=Membership.objects.filter(project=project, role=required_role).values("user")
            )
        notify(
            users=deciders.exclude(pk=actor.pk),
            text=f"{project.name}: {summary} — waiting for your decision",
            url=url or f"/approvals/{request.pk}/",
        )
    return request


def approval_may_decide(*, user: Any, request: Any) -> tuple[bool, str]:
    """Whether the user may decide this request, and why not."""
    from projects.models import Membership

    if request.requested_by_id == user.pk:
        return False, "Nobody decides their own request."
    if request.requires_staff:
        return (True, "") if user.is_staff else (False, "Only a platform admin decides this.")
    if not Membership.objects.filter(
        project_id=request.project_id, user=user, role=request.required_role
    ).exists():
        return (
            False,
            f"Only a {request.required_role.replace('_', ' ')} of this project decides this.",
        )
    return True, ""


def approval_decide(
    *, actor: Any, approval_id: int, approve: bool, comment: str = "", ip_address: str | None = None
) -> Any:
    """Approve or reject a pending request, once.

    Four eyes: nobody decides their own request, whatever their roles. Raises
    PermissionDenied for someone who may not decide, ValidationError for a
    rejection without a comment, and ApprovalConflict when the request was
    already decided; each attempt is audited.
    """
    from django.core.exceptions import PermissionDenied, ValidationError
    from django.utils import timezone

    from governance.approvals import kind_for
    from governance.models import ApprovalRequest, ApprovalState

    comment = comment.strip()
    verb = "approve" if approve else "reject"
    if not approve and not comment:
        raise ValidationError({"comment": "Say why you reject it."})
    conflict: str | None = None
    refused: str | None = None
    with transaction.atomic():
        request = (
            ApprovalRequest.objects.select_for_update()
            .select_related("project")
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
            (kind.on_approved if approve else kind.on_rejected)(request=request, actor=actor)
            audit_record(
                action=f"approval.{request.state}",
                actor=actor,
                project=request.project,
                obj=request,
                payload={
                    "kind": request.kind,
                    "comment": comment,
                    "subject": f"{request.subject_type}:{request.subject_id}",
                },
                ip_address=ip_address,
            )
            from accounts.notifications import notify

            notify(
                users=[request.requested_by],
                text=f"{request.project.name}: {request.summary} — {request.state} by {actor}",
                url=f"/approvals/{request.pk}/",
            )
    if refused:
        raise PermissionDenied(refused)
    if conflict:
        raise ApprovalConflict(conflict)
    return request


def approval_withdraw(*, actor: Any, approval_id: int) -> Any:
    """The requester takes back a pending request."""
    from django.core.exceptions import PermissionDenied

    from governance.approvals import kind_for
    from governance.models import ApprovalRequest, ApprovalState

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
