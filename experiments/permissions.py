"""Access to a project's tracking data, in MLflow's error shape: outsiders
get RESOURCE_DOES_NOT_EXIST (404), read-only members PERMISSION_DENIED (403)
on writes."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.models import User
from experiments.errors import MlflowError
from projects.models import Project
from projects.permissions import get_project_for_user


def get_tracking_project_for_user(user: User, slug: str, *, write: bool = False) -> Project:
    try:
        project, _ = get_project_for_user(user, slug, write=write)
    except Http404:
        raise MlflowError(f"Project '{slug}' does not exist.", "RESOURCE_DOES_NOT_EXIST") from None
    except PermissionDenied:
        raise MlflowError("Your role in this project is read-only.", "PERMISSION_DENIED") from None
    return project
