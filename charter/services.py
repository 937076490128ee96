"""Writes to a project's charter: drafts, submission, and the sign-off gate."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from charter.forms import charter_rows
from charter.models import CHARTER_KIND, CharterStatus, CharterVersion
from charter.rules import CHARTER_FIELDS, EDITABLE_FIELDS, METRICS, charter_errors
from governance.approvals import ApprovalKind, register
from governance.services import approval_request_create
from projects.models import Project, Role, Stage
from projects.services import project_stage_set


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
            project_stage_set(
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
        project_stage_set(
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


register(
    ApprovalKind(
        name=CHARTER_KIND,
        on_approved=_on_charter_approved,
        on_rejected=_on_charter_rejected,
        on_withdrawn=_on_charter_withdrawn,
        describe=_describe_charter,
        rows=charter_rows,
        label="Charter sign-off",
    )
)
