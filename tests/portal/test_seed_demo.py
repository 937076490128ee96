"""The demo project's charter is signed off through the services, once."""

from __future__ import annotations

import io
from typing import Any

from django.core.management import call_command

from audit.models import AuditEvent
from charter.gates import require_signed_charter
from charter.models import CharterStatus
from governance.models import ApprovalRequest
from portal.management.commands.seed_demo import DEMO_PROJECT
from projects.models import Project, Stage


def test_demo_charter_is_signed_off_by_the_approver_once(db: Any) -> None:
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    project = Project.objects.get(slug=DEMO_PROJECT)
    signed = require_signed_charter(project, purpose="requesting compute")
    assert (signed.number, signed.status) == (1, CharterStatus.APPROVED)
    assert signed.decided_by is not None and signed.decided_by.username == "approver"
    assert signed.submitted_by is not None and signed.submitted_by.username == "scientist"
    assert project.charters.count() == 1
    approval = ApprovalRequest.objects.get(project=project, kind="charter")
    assert approval.state == "approved"
    assert project.stage == Stage.DATA
    actions = set(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert {"charter.submitted", "approval.approved", "project.stage_changed"} <= actions
