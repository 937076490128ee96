from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from governance.models import ApprovalRequest, ApprovalState
from portal.models import User
from projects.charter import CHARTER_FIELDS, METRICS, Direction, QuestionType
from projects.forms import (
    CHARTER_LABELS,
    CharterForm,
    MemberForm,
    ProjectForm,
    charter_display,
    charter_rows,
)
from projects.models import CharterStatus, CharterVersion, Membership, Project, Stage
from projects.permissions import LEAD_ONLY, get_project_for_user
from projects.selectors import (
    charter_current,
    charter_signed_off,
    charter_versions,
    project_members,
    projects_for_user,
)
from projects.services import (
    CHARTER_KIND,
    charter_draft_save,
    charter_submit,
    charter_values,
    membership_add,
    membership_remove,
    project_create,
)


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "projects/project_list.html", {"projects": projects_for_user(user=request.user)}
    )


@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(actor=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Project “{project.name}” created. You are its lead.")
            return redirect("projects:detail", slug=project.slug)
    return render(request, "projects/project_new.html", {"form": form})


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


def _progress(project: Project, gate: Gate) -> list[dict[str, Any]]:
    order = list(Stage.values)
    here = order.index(project.stage) if project.stage in order else 0
    strip = []
    for i, (value, label) in enumerate(Stage.choices):
        state = "done" if i < here else "current" if i == here else "todo"
        strip.append(
            {
                "value": value,
                "label": label,
                "state": state,
                "gate": gate if value == Stage.CHARTER else None,
            }
        )
    return strip


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


@login_required
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug)
    current = charter_current(project=project)
    signed = charter_signed_off(project=project)
    gate = charter_gate(current, signed)
    return render(
        request,
        "projects/project_detail.html",
        {
            "project": project,
            "membership": membership,
            "members": project_members(project=project),
            "is_lead": membership is not None and membership.role == "lead",
            "member_form": MemberForm(),
            "may_write": _may_write(membership),
            "charter": current,
            "charter_approval": charter_pending_approval(project, current),
            "charter_summary": charter_summary(current),
            "gate": gate,
            "progress": _progress(project, gate),
        },
    )


# --- Charter pages ----------------------------------------------------------


def _may_write(membership: Membership | None) -> bool:
    return membership is not None and membership.can_write


def _charter_page(
    request: HttpRequest,
    project: Project,
    membership: Membership | None,
    *,
    form: CharterForm | None = None,
    status: int = 200,
) -> HttpResponse:
    current = charter_current(project=project)
    values = charter_values(current)
    may_write = _may_write(membership)
    if may_write and form is None:
        form = CharterForm(initial=CharterForm.initial_from(values))
    return render(
        request,
        "projects/charter.html",
        {
            "project": project,
            "charter": current,
            "charter_approval": charter_pending_approval(project, current),
            "rows": charter_rows(values),
            "may_write": may_write,
            "form": form if may_write else None,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def charter_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The current charter; members who may write edit the draft here."""
    if request.method != "POST":
        project, membership = get_project_for_user(request.user, slug)
        return _charter_page(request, project, membership)
    project, membership = get_project_for_user(request.user, slug, write=True)
    form = CharterForm(request.POST)
    if form.is_valid():
        try:
            draft = charter_draft_save(
                actor=request.user,  # type: ignore[arg-type]
                project=project,
                values=dict(form.cleaned_data),
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Charter draft v{draft.number} saved.")
            return redirect("projects:charter", slug=project.slug)
    return _charter_page(request, project, membership, form=form)


@login_required
@require_POST
def charter_submit_view(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug, write=True)
    try:
        approval = charter_submit(actor=request.user, project=project)  # type: ignore[arg-type]
    except ValidationError as exc:
        # Show the draft as saved, with the messages on the fields that are missing.
        current = charter_current(project=project)
        form = CharterForm(CharterForm.initial_from(charter_values(current)))
        form.is_valid()
        form.add_service_errors(exc)
        messages.error(request, "The charter is not ready for sign-off yet; see the marked fields.")
        return _charter_page(request, project, membership, form=form)
    messages.success(request, f"{approval.summary}: sent to the project's business approvers.")
    return redirect("projects:charter", slug=project.slug)


@login_required
def charter_version_list(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    versions = list(charter_versions(project=project))
    return render(
        request,
        "projects/charter_versions.html",
        {"project": project, "versions": versions},
    )


def _version_number(raw: str | None) -> int | None:
    try:
        number = int(raw or "")
    except ValueError:
        return None
    return number if number > 0 else None


@login_required
def charter_compare(request: HttpRequest, slug: str) -> HttpResponse:
    """Two charter versions side by side, changed fields marked."""
    project, _ = get_project_for_user(request.user, slug)
    versions = list(charter_versions(project=project))
    numbers = [v.number for v in versions]
    context: dict[str, Any] = {"project": project, "numbers": numbers, "rows": []}
    a: int | None
    b: int | None
    if "a" not in request.GET and "b" not in request.GET and len(versions) >= 2:
        # Without a choice: the latest version against the one before it.
        a, b = versions[1].number, versions[0].number
    else:
        a, b = _version_number(request.GET.get("a")), _version_number(request.GET.get("b"))
    context.update(a=a, b=b)
    if a is None or b is None:
        if len(versions) < 2 and "a" not in request.GET and "b" not in request.GET:
            context["problem"] = (
                "There is only one version so far; nothing to compare."
                if versions
                else "This project has no charter yet."
            )
            return render(request, "projects/charter_compare.html", context)
        context["problem"] = "Choose two versions to compare, by number (e.g. ?a=1&b=2)."
        return render(request, "projects/charter_compare.html", context, status=400)
    by_number = {v.number: v for v in versions}
    missing = [n for n in (a, b) if n not in by_number]
    if missing:
        context["problem"] = f"This charter has no version {missing[0]}."
        return render(request, "projects/charter_compare.html", context, status=404)
    left, right = charter_values(by_number[a]), charter_values(by_number[b])
    context.update(
        left=by_number[a],
        right=by_number[b],
        rows=[
            {
                "label": CHARTER_LABELS[f],
                "a": charter_display(f, left[f]),
                "b": charter_display(f, right[f]),
                "changed": left[f] != right[f],
            }
            for f in CHARTER_FIELDS
        ],
    )
    return render(request, "projects/charter_compare.html", context)


@login_required
@require_POST
def member_add(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=LEAD_ONLY)
    form = MemberForm(request.POST)
    if form.is_valid():
        user = User.objects.filter(username=form.cleaned_data["username"]).first()
        if user is None:
            messages.error(request, f"No user named “{form.cleaned_data['username']}”.")
        else:
            try:
                membership_add(
                    actor=request.user,  # type: ignore[arg-type]
                    project=project,
                    user=user,
                    role=form.cleaned_data["role"],
                )
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, f"{user.username} added.")
    else:
        messages.error(request, "Give a username and a role.")
    return redirect("projects:detail", slug=project.slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=LEAD_ONLY)
    user = User.objects.filter(username=username).first()
    try:
        if user is None:
            raise ValidationError(f"No user named “{username}”.")
        membership_remove(actor=request.user, project=project, user=user)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{username} removed.")
    return redirect("projects:detail", slug=project.slug)
