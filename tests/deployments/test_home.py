"""The stage's front door and its place on the project's strip: the
deployment stage is reached once a deployment of a version has started (or a
batch request was approved), not when one is merely asked for."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from deployments import gate
from deployments.gate_models import RequestState
from deployments.serving_models import Deployment
from governance.models import ApprovalRequest, ApprovalState
from governance.services import approval_decide
from portal.stages import progress_for
from tests.deployments import gate_data
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalog")]


def stage_of(project: Any) -> str:
    return str(progress_for([project.pk])[project.pk].stage("deployment").state)


def decide_all(request: Any, *deciders: Any) -> None:
    for who in deciders:
        step = ApprovalRequest.objects.get(
            kind=gate.APPROVAL_KIND, subject_id=str(request.pk), state=ApprovalState.PENDING
        )
        approval_decide(actor=who, approval_id=step.pk, approve=True)


def test_a_request_is_not_a_deployment_a_started_one_is(project: Any, bob: Any, dave: Any) -> None:
    vera = gate_data.validator(project)
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.9)
    request = gate.deployment_request_create(
        actor=bob, version=version, target="realtime", reason="Beats the threshold."
    )
    assert stage_of(project) != "done"
    decide_all(request, vera, dave)
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
    assert stage_of(project) != "done"  # approved, its scoring process not started yet
    Deployment.objects.filter(model_version=version).update(started_at=timezone.now())
    assert stage_of(project) == "done"


def test_an_approved_batch_request_reaches_the_stage(project: Any, bob: Any, dave: Any) -> None:
    vera = gate_data.validator(project)
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.9)
    request = gate.deployment_request_create(
        actor=bob, version=version, target="batch", reason="Scores the monthly list."
    )
    decide_all(request, vera, dave)
    assert not Deployment.objects.exists()  # batch serves no endpoint
    assert stage_of(project) == "done"


def test_the_home_page_lists_only_the_users_projects_in_fixed_queries(
    project: Any, bob: Any, charlie: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.3)  # below the threshold: blocked
    gate.deployment_request_create(
        actor=bob, version=version, target="realtime", reason="Asked before it passed."
    )
    hidden: Any = ProjectFactory(name="Somebody else's")
    client = client_for(bob)
    page = client.get("/deployments/").content.decode()
    assert project.name in page and hidden.name not in page
    assert "1 deployment request, 0 endpoints" in page
    assert "See the 1 waiting for a decision" in page
    for _ in range(8):
        MembershipFactory(project=ProjectFactory(), user=bob, role="data_scientist")
    with django_assert_max_num_queries(8):
        assert client.get("/deployments/").status_code == 200
    assert "You are not in any project" in client_for(charlie).get("/deployments/").content.decode()
