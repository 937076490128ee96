"""Who may see and change a project. Non-members get 404, read-only members 403."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.models import User
from projects.models import Membership, Project, Role


def get_membership(user: User, project: Project) -> Membership | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.filter(project=project, user=user).first()


def get_project_for_user(
    user: User, slug: str, *, write: bool = False, roles: frozenset[str] | None = None
) -> tuple[Project, Membership | None]:
    """Return the project and the user's membership (None for a platform admin).

    Raises Http404 when the user is not a member (nor staff), PermissionDenied
    when the member may only read and ``write`` is asked, or when ``roles`` is
    given and the member holds none of them.
    """
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    membership = get_membership(user, project)
    if membership is None:
        if getattr(user, "is_staff", False):
            if write or roles:
                raise PermissionDenied("Platform admins read projects; members change them.")
            return project, None
        raise Http404("No such project.")
    if roles is not None and membership.role not in roles:
        raise PermissionDenied("Your role in this project does not allow this.")
    if write and not membership.can_write:
        raise PermissionDenied("Your role in this project is read-only.")
    return project, membership


LEAD_ONLY = frozenset({Role.LEAD})
