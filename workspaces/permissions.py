"""Who sees a workspace: the members of its project (and platform admins).

Non-members get 404. What a member may do with it (start, stop, resize,
delete: its owner and the project's leads) the services check, with 403.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404

from projects.models import Membership
from projects.permissions import get_project_for_user
from workspaces.models import Workspace


def get_workspace_for_user(
    user: Any, slug: str, workspace_id: int, *, write: bool = False
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
