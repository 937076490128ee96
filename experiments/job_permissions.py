"""Who sees a training job: the members of its project (and platform admins).

Non-members get 404; what a member may do with it (start, cancel, re-run:
members who may write) the services check, with 403.
"""

from __future__ import annotations

from django.http import Http404

from accounts.models import User
from experiments.job_models import Job
from experiments.job_selectors import jobs_for_project
from projects.models import Membership
from projects.permissions import get_project_for_user


def get_job_for_user(
    user: User, slug: str, job_id: int, *, write: bool = False
) -> tuple[Job, Membership | None]:
    """The job ``job_id`` of project ``slug``, if the user may see it."""
    project, membership = get_project_for_user(user, slug, write=write)
    job = jobs_for_project(project=project).filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job.")
    return job, membership
