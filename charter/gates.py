"""The charter gate that later stages ask before they spend money or reach people.

Requesting compute (workspaces, training jobs) and requesting a deployment need a
signed-off charter: the business has agreed on the problem, the target and what
success means. A stage's service calls :func:`require_signed_charter` inside its
transaction; views and API endpoints turn :class:`CharterNotSignedOff` into a
refusal that says why and links to the charter (``exc.charter_url``).
"""

from __future__ import annotations

from django.urls import reverse

from charter.models import CharterVersion
from charter.selectors import charter_signed_off
from projects.models import Project


class CharterNotSignedOff(Exception):
    """The project's charter has no signed-off version yet."""

    def __init__(self, project: Project, purpose: str) -> None:
        self.project = project
        self.purpose = purpose
        self.charter_url = reverse("projects:charter", kwargs={"slug": project.slug})
        super().__init__(
            f"{purpose[:1].upper()}{purpose[1:]} needs a signed-off charter: the business "
            f"approver signs off the project's charter first."
        )


def require_signed_charter(project: Project, *, purpose: str) -> CharterVersion:
    """The newest signed-off charter version, or :class:`CharterNotSignedOff`.

    ``purpose`` names what is being asked for, in words ("requesting compute").
    """
    signed = charter_signed_off(project=project)
    if signed is None:
        raise CharterNotSignedOff(project, purpose)
    return signed
