"""Pages for projects and their members."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.http import AuthedRequest
from accounts.models import User
from projects.forms import MemberForm, ProjectForm
from projects.permissions import LEAD_ONLY, get_project_for_user
from projects.selectors import projects_for_user
from projects.services import membership_add, membership_remove, project_create

PROJECTS_PER_PAGE = 25
PROJECT_SORTS = {
    "name": ("name", "Name, A to Z"),
    "-name": ("-name", "Name, Z to A"),
    "-created": ("-created_at", "Newest first"),
    "created": ("created_at", "Oldest first"),
    "-members": ("-member_count", "Most members first"),
}


@login_required
def project_list(request: AuthedRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    sort = request.GET.get("sort", "name")
    if sort not in PROJECT_SORTS:
        sort = "name"
    projects = projects_for_user(user=request.user)
    if query:
        projects = projects.filter(Q(name__icontains=query) | Q(slug__icontains=query))
    projects = projects.order_by(PROJECT_SORTS[sort][0], "pk")
    page = Paginator(projects, PROJECTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "projects/project_list.html",
        {
            "page": page,
            "projects": page.object_list,
            "query": query,
            "sort": sort,
            "sorts": [(key, label) for key, (_, label) in PROJECT_SORTS.items()],
        },
    )


@login_required
def project_new(request: AuthedRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Project “{project.name}” created. You are its lead.")
            return redirect("projects:detail", slug=project.slug)
    return render(request, "projects/project_new.html", {"form": form})


@login_required
@require_POST
def member_add(request: AuthedRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=LEAD_ONLY)
    form = MemberForm(request.POST)
    if form.is_valid():
        user = User.objects.filter(username=form.cleaned_data["username"]).first()
        if user is None:
            messages.error(request, f"No user named “{form.cleaned_data['username']}”.")
        else:
            try:
                membership_add(
                    actor=request.user,
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
def member_remove(request: AuthedRequest, slug: str, username: str) -> HttpResponse:
    """GET asks for confirmation (without JavaScript); POST removes (htmx asks first)."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    project, _ = get_project_for_user(request.user, slug, roles=LEAD_ONLY)
    user = User.objects.filter(username=username).first()
    back = reverse("projects:detail", kwargs={"slug": project.slug})
    if request.method == "GET":
        if user is None:
            raise Http404("No such member.")
        return render(
            request,
            "confirm.html",
            {
                "title": f"Remove {username}?",
                "question": f"Remove {username} from {project.name}?",
                "consequence": "They lose access to the project at once.",
                "action": request.path,
                "button": "Remove",
                "cancel": back,
            },
        )
    try:
        if user is None:
            raise ValidationError(f"No user named “{username}”.")
        membership_remove(actor=request.user, project=project, user=user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{username} removed.")
    if getattr(request, "htmx", False):
        return HttpResponse(status=204, headers={"HX-Redirect": back})
    return redirect(back)
