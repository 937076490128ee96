"""Writes to projects and their memberships, each audited in its transaction."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.approvals import ApprovalKind, register
from governance.services import approval_request_create, audit_record
from portal.models import User
from projects.charter import CHARTER_FIELDS, EDITABLE_FIELDS, METRICS, charter_errors
from projects.models import CharterStatus, CharterVersion, Membership, Project, Role, Stage


def project_create(
    *, actor: User, name: str, slug: str, description: str = "", monthly_budget: Any = 0
) -> Project:
    """Create a project; its creator becomes its lead."""
    if Project.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": "A project with this slug already exists."})
    try:
        with transaction.atomic():
            project = Project.objects.create(
                name=name,
                slug=slug,
                description=description,
                monthly_budget=monthly_budget,
                created_by=actor,
            )
            Membership.objects.create(project=project, user=actor, role=Role.LEAD)
            audit_record(
                action="project.created",
                actor=actor,
                project=project,
                obj=project,
                payload={"name": name, "slug": slug},
            )
    except IntegrityError as exc:
        raise ValidationError({"slug": "A project with this slug already exists."}) from exc
    return project


def _require_lead(actor: User, project: Project) -> None:
    if not Membership.objects.filter(project=project, user=actor, role=Role.LEAD).exists():
        raise PermissionDenied("Only a project lead manages members.")


def membership_add(*, actor: User, project: Project, user: User, role: str) -> Membership:
    """Add a member with a role (leads only)."""
    _require_lead(actor, project)
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    with transaction.atomic():
        if Membership.objects.filter(project=project, user=user).exists():
            raise ValidationError({"username": f"{user.username} is already a member."})
        membership = Membership.objects.create(project=project, user=user, role=role)
        audit_record(
            action="membership.added",
            actor=actor,
            project=project,
            obj=membership,
            payload={"username": user.username, "role": role},
        )
    return membership


def membership_remove(*, actor: User, project: Project, user: User) -> None:
    """Remove a member (leads only); a project always keeps one lead."""
    _require_lead(actor, project)
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update().filter(project=project, user=user).first()
        )
        if membership is None:
            raise ValidationError({"username": f"{user.username} is not a member."})
        if (
            membership.role == Role.LEAD
            and Membership.objects.filter(project=project, role=Role.LEAD).count() == 1
        ):
            raise ValidationError({"username": "A project must keep at least one lead."})
        audit_record(
            action="membership.removed",
            actor=actor,
            project=project,
            obj=membership,
            payload={"username": user.username, "role": membership.role},
        )
        membership.delete()


def project_update(*, actor: User, project: Project, **changes: Any) -> Project:
    """Change a project's name, description or budget (leads only)."""
    _require_lead(actor, project)
    allowed = {"name", "description", "monthly_budget"}
    changed = {k: v for k, v in changes.items() if k in allowed and getattr(project, k) != v}
    if not changed:
        return project
    with transaction.atomic():
        for field, value in changed.items():
            setattr(project, field, value)
        project.save(update_fields=list(changed))
        audit_record(
            action="project.updated",
            actor=actor,
            project=project,
            obj=project,
            payload={"changed": sorted(changed)},
        )
    return project


# --- Charters -------------------------------------------------------------

CHARTER_KIND = "charter"


def _latest_charter(project: Project) -> CharterVersion | None:
    return project.charters.order_by("-number").first()


def charter_values(version: CharterVersion | None) -> dict[str, Any]:
    if version is None:
        return {}
    return {f: getattr(version, f) for f in CHARTER_FIELDS}


def charter_draft_save(*, actor: User, project: Project, values: dict[str, Any]) -> CharterVersion:
    """Write the project's charter draft, opening a new version when the
    latest one is frozen (submitted or signed off).

    ``values`` replaces the editable fields it names. A draft may be incomplete,
    but what it says must be consistent (a metric that fits the question type,
    a threshold in the metric's range).
    """
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Not a charter field."))
    with transaction.atomic():
        # Lock the project and work on its current row, not the caller's copy.
        project = Project.objects.select_for_update().get(pk=project.pk)
        latest = _latest_charter(project)
        merged = {**charter_values(latest), **values}
        errors = charter_errors(merged, complete=False)
        if errors:
            raise ValidationError(errors)
        metric = METRICS.get(merged.get("success_metric") or "")
        merged["direction"] = metric.direction if metric else ""
        if latest is not None and latest.is_draft:
            draft = latest
            opened = False
        else:
            draft = CharterVersion(
                project=project, number=(latest.number + 1) if latest else 1, created_by=actor
            )
            opened = True
        changed = sorted(f for f in CHARTER_FIELDS if getattr(draft, f) != merged.get(f))
        for field in CHARTER_FIELDS:
            if field in merged:
                setattr(draft, field, merged[field])
        draft.updated_at = timezone.now()
        draft.save()
        audit_record(
            action="charter.draft_opened" if opened else "charter.draft_saved",
            actor=actor,
            project=project,
            obj=draft,
            payload={"version": draft.number, "changed": changed},
        )
        if opened and latest is not None and latest.status == CharterStatus.APPROVED:
            # The signed-off version no longer describes the project.
            _project_stage_set(
                actor=actor,
                project=project,
                stage=Stage.CHARTER,
                reason=f"charter v{draft.number} needs a new sign-off",
            )
    return draft


def charter_submit(*, actor: User, project: Project) -> Any:
    """Freeze the draft and ask the project's business approvers to sign it off."""
    with transaction.atomic():
        # Lock the project and work on its current row, not the caller's copy.
        project = Project.objects.select_for_update().get(pk=project.pk)
        draft = project.charters.filter(status=CharterStatus.DRAFT).first()
        if draft is None:
            raise ValidationError(
                {"charter": "There is no draft to submit; edit the charter first."}
            )
        errors = charter_errors(charter_values(draft), complete=True)
        if errors:
            raise ValidationError(errors)
        # Older versions still waiting for a decision are out of date now.
        for old in project.charters.filter(status=CharterStatus.SUBMITTED):
            old.status = CharterStatus.SUPERSEDED
            old.save(update_fields=["status"])
        draft.status = CharterStatus.SUBMITTED
        draft.submitted_by = actor
        draft.submitted_at = timezone.now()
        draft.save(update_fields=["status", "submitted_by", "submitted_at"])
        audit_record(
            action="charter.submitted",
            actor=actor,
            project=project,
            obj=draft,
            payload={"version": draft.number},
        )
        request = approval_request_create(
            actor=actor,
            kind=CHARTER_KIND,
            project=project,
            subject=draft,
            summary=f"Sign off charter v{draft.number}",
            required_role=Role.BUSINESS_APPROVER,
            supersede_kind=True,
        )
    return request


def _charter_for_request(request: Any) -> CharterVersion:
    return CharterVersion.objects.select_for_update().get(pk=int(request.subject_id))


def _on_charter_approved(*, request: Any, actor: User) -> None:
    version = _charter_for_request(request)
    version.status = CharterStatus.APPROVED
    version.decided_by = actor
    version.decided_at = request.decided_at
    version.save(update_fields=["status", "decided_by", "decided_at"])
    project = version.project
    latest = _latest_charter(project)
    if project.stage == Stage.CHARTER and latest is not None and latest.pk == version.pk:
        _project_stage_set(
            actor=actor,
            project=project,
            stage=Stage.DATA,
            reason=f"charter v{version.number} signed off",
        )


def _on_charter_rejected(*, request: Any, actor: User) -> None:
    version = _charter_for_request(request)
    version.status = CharterStatus.REJECTED
    version.decided_by = actor
    version.decided_at = request.decided_at
    version.save(update_fields=["status", "decided_by", "decided_at"])


def _on_charter_withdrawn(*, request: Any, actor: User) -> None:
    version = _charter_for_request(request)
    # Nobody decided; the version becomes editable again, unless a newer draft exists.
    if not version.project.charters.filter(status=CharterStatus.DRAFT).exists():
        version.status = CharterStatus.DRAFT
        version.submitted_at = None
        version.submitted_by = None
        version.save(update_fields=["status", "submitted_at", "submitted_by"])
    else:
        version.status = CharterStatus.SUPERSEDED
        version.save(update_fields=["status"])


def _describe_charter(*, request: Any) -> dict[str, Any]:
    version = CharterVersion.objects.filter(pk=int(request.subject_id)).first()
    if version is None:
        return {}
    return {"version": version.number, "status": version.status, **charter_values(version)}


def _project_stage_set(*, actor: User, project: Project, stage: str, reason: str) -> None:
    previous = project.stage
    if previous == stage:
        return
    project.stage = stage
    project.save(update_fields=["stage"])
    audit_record(
        action="project.stage_changed",
        actor=actor,
        project=project,
        obj=project,
        payload={"from": previous, "to": stage, "reason": reason},
    )


register(
    ApprovalKind(
        name=CHARTER_KIND,
        on_approved=_on_charter_approved,
        on_rejected=_on_charter_rejected,
        on_withdrawn=_on_charter_withdrawn,
        describe=_describe_charter,
    )
)
