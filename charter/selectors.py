"""Reads of a project's charter versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from charter.forms import charter_display
from charter.models import CHARTER_KIND, CharterStatus, CharterVersion
from charter.rules import METRICS, Direction, QuestionType
from governance.models import ApprovalRequest, ApprovalState
from projects.models import Project


def charter_versions(*, project: Project) -> QuerySet[CharterVersion]:
    return project.charters.select_related("created_by", "submitted_by", "decided_by").order_by(
        "-number"
    )


def charter_current(*, project: Project) -> CharterVersion | None:
    """The draft if there is one, else the latest version."""
    return charter_versions(project=project).first()


def charter_signed_off(*, project: Project) -> CharterVersion | None:
    """The newest signed-off version, if any."""
    return charter_versions(project=project).filter(status=CharterStatus.APPROVED).first()


@dataclass(frozen=True)
class Gate:
    """The state of the charter gate as the progress strip shows it."""

    state: str  # passed, pending, draft, rejected, none: also the CSS class
    text: str
    detail: str = ""


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


def charter_gate(current: CharterVersion | None, signed: CharterVersion | None) -> Gate:
    """Describe the charter gate from the current version and the newest signed-off one."""
    if current is None:
        return Gate("none", "Not started", "No charter yet.")
    earlier = ""
    if signed is not None and signed.pk != current.pk:
        earlier = (
            f"v{signed.number} was signed off by {signed.decided_by} on {_when(signed.decided_at)}."
        )
    if current.status == CharterStatus.APPROVED:
        return Gate(
            "passed",
            f"Signed off v{current.number}",
            f"by {current.decided_by} on {_when(current.decided_at)}",
        )
    if current.status == CharterStatus.SUBMITTED:
        return Gate(
            "pending",
            f"Awaiting sign-off of v{current.number}",
            f"submitted by {current.submitted_by} on {_when(current.submitted_at)}. {earlier}".strip(),
        )
    if current.status == CharterStatus.REJECTED:
        return Gate(
            "rejected",
            f"v{current.number} rejected",
            f"by {current.decided_by} on {_when(current.decided_at)}. {earlier}".strip(),
        )
    if current.status == CharterStatus.DRAFT:
        needs = "needs a new sign-off" if signed is not None else "not yet submitted"
        return Gate("draft", f"Draft v{current.number}", f"{needs.capitalize()}. {earlier}".strip())
    return Gate("none", f"v{current.number} {current.get_status_display().lower()}", earlier)


def charter_summary(version: CharterVersion | None) -> dict[str, str]:
    """The few charter facts the project page shows."""
    if version is None:
        return {}
    metric = METRICS.get(version.success_metric)
    goal = ""
    if metric is not None and version.threshold is not None:
        sign = "≥" if metric.direction == Direction.HIGHER else "≤"
        goal = f"{metric.label} {sign} {version.threshold:g}"
    elif metric is not None:
        goal = metric.label
    return {
        "question_type": (
            str(QuestionType(version.question_type).label)
            if version.question_type in QuestionType.values
            else ""
        ),
        "target_variable": version.target_variable,
        "goal": goal,
        "direction": charter_display("direction", version.direction),
    }


@dataclass(frozen=True)
class Rejection:
    """The business's "no" that the team is answering, with its reason."""

    number: int
    by: str
    at: Any
    comment: str


def charter_rejection(*, project: Project) -> Rejection | None:
    """The newest decided version if it was rejected, with the approver's comment.

    A draft written after a rejection still shows it (the team is answering
    it); a later sign-off or submission replaces it.
    """
    decided = (
        charter_versions(project=project)
        .exclude(status=CharterStatus.DRAFT)
        .exclude(status=CharterStatus.SUPERSEDED)
        .first()
    )
    if decided is None or decided.status != CharterStatus.REJECTED:
        return None
    approval = (
        project.approval_requests.filter(
            kind=CHARTER_KIND, state=ApprovalState.REJECTED, subject_id=str(decided.pk)
        )
        .select_related("decided_by")
        .order_by("-decided_at")
        .first()
    )
    return Rejection(
        number=decided.number,
        by=str(approval.decided_by if approval else decided.decided_by or ""),
        at=approval.decided_at if approval else decided.decided_at,
        comment=approval.comment if approval else "",
    )


def charter_pending_approval(
    project: Project, current: CharterVersion | None
) -> ApprovalRequest | None:
    """The open sign-off request for the current version, if it waits for one."""
    if current is None or current.status != CharterStatus.SUBMITTED:
        return None
    return (
        project.approval_requests.filter(
            kind=CHARTER_KIND, state=ApprovalState.PENDING, subject_id=str(current.pk)
        )
        .order_by("-created_at")
        .first()
    )
