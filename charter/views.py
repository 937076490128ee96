"""The charter pages: the current version, its versions, a comparison."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.http import AuthedRequest
from charter.forms import CHARTER_LABELS, CharterForm, charter_display, charter_rows
from charter.rules import CHARTER_FIELDS
from charter.selectors import (
    charter_current,
    charter_pending_approval,
    charter_rejection,
    charter_versions,
)
from charter.services import charter_draft_save, charter_submit, charter_values
from projects.models import Membership, Project
from projects.permissions import get_project_for_user


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
        "charter/charter.html",
        {
            "project": project,
            "charter": current,
            "charter_approval": charter_pending_approval(project, current),
            "rejection": charter_rejection(project=project),
            "rows": charter_rows(values),
            "may_write": may_write,
            "form": form if may_write else None,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def charter_detail(request: AuthedRequest, slug: str) -> HttpResponse:
    """The current charter; members who may write edit the draft here."""
    if request.method != "POST":
        project, membership = get_project_for_user(request.user, slug)
        return _charter_page(request, project, membership)
    project, membership = get_project_for_user(request.user, slug, write=True)
    form = CharterForm(request.POST)
    if form.is_valid():
        try:
            draft = charter_draft_save(
                actor=request.user,
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
def charter_submit_view(request: AuthedRequest, slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, slug, write=True)
    try:
        approval = charter_submit(actor=request.user, project=project)
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
def charter_version_list(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug)
    versions = list(charter_versions(project=project))
    return render(
        request,
        "charter/charter_versions.html",
        {"project": project, "versions": versions},
    )


def _version_number(raw: str | None) -> int | None:
    try:
        number = int(raw or "")
    except ValueError:
        return None
    return number if number > 0 else None


@login_required
def charter_compare(request: AuthedRequest, slug: str) -> HttpResponse:
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
            return render(request, "charter/charter_compare.html", context)
        context["problem"] = "Choose two versions to compare, by number (e.g. ?a=1&b=2)."
        return render(request, "charter/charter_compare.html", context, status=400)
    by_number = {v.number: v for v in versions}
    missing = [n for n in (a, b) if n not in by_number]
    if missing:
        context["problem"] = f"This charter has no version {missing[0]}."
        return render(request, "charter/charter_compare.html", context, status=404)
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
    return render(request, "charter/charter_compare.html", context)
