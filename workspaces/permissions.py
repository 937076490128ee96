"""Who sees a workspace: the members of its project (and platform admins).

Non-members get 404. What a member may do with it (start, stop, resize,
delete: its owner and the project's leads) the services check, with 403.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.models import User
from projects.models import Membership, Project, Role
from projects.permissions import get_membership, get_project_for_user
from workspaces.models import Workspace
from workspaces.selectors import projects_led_by


def get_workspace_for_user(
    user: User, slug: str, workspace_id: int, *, write: bool = False
) -> tuple[Workspace, Membership | None]:
    """The workspace ``workspace_id`` of project ``slug``, if the user may see it."""
    project, membership = get_project_for_user(user, slug, write=write)
    workspace = (
        Workspace.objects.select_related("project", "size", "requested_size", "owner", "approval")
        .filter(project=project, pk=workspace_id)
        .first()
    )
    if workspace is None:
        raise Http404("No such workspace.")
    return workspace, membership


def cost_scope(user: User, slug: str) -> tuple[Any, Project | None]:
    """The projects whose costs the user may see: one project for its lead
    (or an admin), all projects for admins, the projects they lead for leads."""
    if slug:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise Http404("No such project.")
        if user.is_staff:
            return [project], project
        membership = get_membership(user, project)
        if membership is None:
            raise Http404("No such project.")
        if membership.role != Role.LEAD:
            raise PermissionDenied("Project costs are for its leads and platform admins.")
        return [project], project
    if user.is_staff:
        return None, None
    led = projects_led_by(user=user)
    if not led.exists():
        raise PermissionDenied("Costs are for project leads and platform admins.")
    return led, None
