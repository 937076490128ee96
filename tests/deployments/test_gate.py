"""The deployment gate: validation blocks, an admin overrides (audited), and
the two-step chain validator → business approver with four eyes; the
approval moves the champion alias and keeps the previous one."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from audit.models import AuditEvent
from deployments import gate
from deployments.gate_models import DeploymentRequest, RequestState, ValidationState
from deployments.serving_models import Endpoint, RolloutState
from experiments.models import ModelAlias
from experiments.services import alias_set
from governance.models import ApprovalRequest, ApprovalState
from governance.services import approval_decide
from tests.deployments import gate_data
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalog")]

REASON = "Beats the churn threshold on the held-out customers."


def request_for(bob: Any, version: Any, **kwargs: Any) -> DeploymentRequest:
    return gate.deployment_request_create(
        actor=bob, version=version, target="realtime", reason=REASON, **kwargs
    )


def pending_step(request: DeploymentRequest) -> ApprovalRequest:
    return ApprovalRequest.objects.get(
        kind=gate.APPROVAL_KIND, subject_id=str(request.pk), state=ApprovalState.PENDING
    )


def actions(request: DeploymentRequest) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            object_type="deployments.deploymentrequest", object_id=str(request.pk)
        )
        .order_by("pk")
        .values_list("action", flat=True)
    )


def test_a_version_below_the_threshold_is_blocked_and_no_one_is_asked(
    project: Any, bob: Any
) -> None:
    version = gate_data.version(project, bob)
    report = gate_data.report(project, version, bob, 0.71)
    assert report.state == ValidationState.FAILED and report.meets_threshold is False
    request = request_for(bob, version)
    assert request.state == RequestState.BLOCKED and request.report_id == report.pk
    assert not ApprovalRequest.objects.filter(kind=gate.APPROVAL_KIND).exists()
    assert "does not reach the charter's threshold of 0.8" in gate.blocked_because(request)


def test_a_version_without_validation_is_blocked(project: Any, bob: Any) -> None:
    request = request_for(bob, gate_data.version(project, bob))
    assert request.state == RequestState.BLOCKED
    assert gate.blocked_because(request) == "The version has no finished validation."


def test_a_failed_integration_check_blocks_even_above_the_threshold(project: Any, bob: Any) -> None:
    version = gate_data.version(project, bob)
    report = gate_data.report(project, version, bob, 0.9, ok=False)
    assert report.state == ValidationState.FAILED and report.meets_threshold is True
    assert request_for(bob, version).state == RequestState.BLOCKED


def test_an_admin_override_needs_a_written_justification_and_is_audited(
    project: Any, bob: Any, admin_user: Any
) -> None:
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.71)
    request = request_for(bob, version)
    with pytest.raises(PermissionDenied):
        gate.deployment_request_override(actor=bob, request=request, justification="x" * 40)
    with pytest.raises(ValidationError):
        gate.deployment_request_override(actor=admin_user, request=request, justification="ok")
    assert DeploymentRequest.objects.get(pk=request.pk).state == RequestState.BLOCKED
    justification = "The old model is worse still; this one stops the bleeding."
    gate.deployment_request_override(actor=admin_user, request=request, justification=justification)
    request.refresh_from_db()
    assert request.state == RequestState.PENDING
    assert request.override_by == admin_user and request.override_justification == justification
    event = AuditEvent.objects.get(action="deployment.override")
    assert event.actor == admin_user
    assert event.payload["justification"] == justification
    assert "threshold" in event.payload["why_blocked"]
    # The chain asks the validator first, on the requester's behalf.
    step = pending_step(request)
    assert step.step == 0 and step.required_role == "validator" and step.requested_by == bob


def test_an_admin_who_is_a_member_does_not_override(project: Any, bob: Any) -> None:
    member_admin: Any = UserFactory(username="root", is_staff=True)
    MembershipFactory(project=project, user=member_admin, role="ml_engineer")
    version = gate_data.version(project, bob)
    request = request_for(bob, version)
    with pytest.raises(PermissionDenied):
        gate.deployment_request_override(
            actor=member_admin, request=request, justification="x" * 40
        )


def test_the_chain_validator_then_approver_moves_champion_and_keeps_previous(
    project: Any, alice: Any, bob: Any, carol: Any, dave: Any
) -> None:
    vera = gate_data.validator(project)
    old = gate_data.version(project, bob)
    alias_set(actor=bob, version=old, alias="champion")
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.9, champion=0.85)
    request = request_for(bob, version, rollout="canary", canary_percent=10, baking_minutes=60)
    assert request.state == RequestState.PENDING

    first = pending_step(request)
    # The business approver is not the first step; the requester never decides.
    for who in (dave, bob, carol, alice):
        with pytest.raises(PermissionDenied):
            approval_decide(actor=who, approval_id=first.pk, approve=True)
    approval_decide(actor=vera, approval_id=first.pk, approve=True, comment="Checked.")
    assert DeploymentRequest.objects.get(pk=request.pk).state == RequestState.PENDING
    second = pending_step(request)
    assert second.step == 1 and second.required_role == "business_approver"
    assert not ModelAlias.objects.filter(alias="champion", version=version).exists()

    approval_decide(actor=dave, approval_id=second.pk, approve=True)
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED and request.previous_champion == old
    aliases = dict(ModelAlias.objects.values_list("alias", "version_id"))
    assert aliases == {"champion": version.pk, "previous": old.pk}
    assert actions(request) == ["deployment.requested", "deployment.approved"]
    moved = AuditEvent.objects.filter(action="model_alias.set").order_by("-pk")
    assert [e.payload["alias"] for e in moved[:2]] == ["champion", "previous"]
    # A real-time request deploys the version behind its model's endpoint: the
    # first deployment takes all the traffic, a canary needs one live before it.
    endpoint = Endpoint.objects.get(project=project, registered_model=version.registered_model)
    deployment = endpoint.deployments.get()
    assert deployment.model_version == version and deployment.requested_by == dave
    assert endpoint.rollout == RolloutState.STARTING and endpoint.canary_percent == 0
    assert endpoint.bake_minutes == 60
    assert AuditEvent.objects.filter(action="endpoint.deploy_requested", actor=dave).exists()


def test_an_endpoint_in_the_middle_of_a_rollout_holds_the_approval_back(
    project: Any, bob: Any, dave: Any
) -> None:
    vera = gate_data.validator(project)
    first, second = gate_data.version(project, bob), gate_data.version(project, bob)
    requests = []
    for version in (first, second):
        gate_data.report(project, version, bob, 0.9)
        requests.append(request_for(bob, version))
    for request in requests:
        approval_decide(actor=vera, approval_id=pending_step(request).pk, approve=True)
    approval_decide(actor=dave, approval_id=pending_step(requests[0]).pk, approve=True)
    with pytest.raises(ValidationError, match="rollout is under way"):
        approval_decide(actor=dave, approval_id=pending_step(requests[1]).pk, approve=True)
    # Nothing of the second approval stays: still pending, no alias moved.
    assert DeploymentRequest.objects.get(pk=requests[1].pk).state == RequestState.PENDING
    assert pending_step(requests[1]).step == 1
    assert ModelAlias.objects.get(alias="champion").version == first


def test_the_same_person_never_decides_both_steps(project: Any, bob: Any) -> None:
    both: Any = UserFactory(username="both")
    MembershipFactory(project=project, user=both, role="validator")
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.9)
    request = request_for(bob, version)
    approval_decide(actor=both, approval_id=pending_step(request).pk, approve=True)
    # Now also the business approver: still not the second step's decider.
    from projects.models import Membership

    Membership.objects.filter(project=project, user=both).update(role="business_approver")
    with pytest.raises(PermissionDenied, match="earlier step"):
        approval_decide(actor=both, approval_id=pending_step(request).pk, approve=True)
    assert DeploymentRequest.objects.get(pk=request.pk).state == RequestState.PENDING


def test_a_rejection_ends_the_request_and_moves_no_alias(project: Any, bob: Any) -> None:
    vera = gate_data.validator(project)
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.9)
    request = request_for(bob, version)
    approval_decide(
        actor=vera, approval_id=pending_step(request).pk, approve=False, comment="Leaky feature."
    )
    request.refresh_from_db()
    assert request.state == RequestState.REJECTED
    assert not ModelAlias.objects.exists()


def test_read_only_members_and_outsiders_do_not_request(
    project: Any, bob: Any, carol: Any, charlie: Any
) -> None:
    version = gate_data.version(project, bob)
    for who in (carol, charlie):
        with pytest.raises(PermissionDenied):
            request_for(who, version)
    assert not DeploymentRequest.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target": "moon"}, "target"),
        ({"rollout": "canary", "canary_percent": 90, "baking_minutes": 60}, "canary_percent"),
        ({"rollout": "canary", "canary_percent": 10}, "baking_minutes"),
        ({"reason": "meh"}, "reason"),
    ],
)
def test_bad_requests_say_why_and_write_nothing(
    project: Any, bob: Any, fields: dict[str, Any], field: str
) -> None:
    version = gate_data.version(project, bob)
    values = {"target": "realtime", "reason": REASON, **fields}
    with pytest.raises(ValidationError) as raised:
        gate.deployment_request_create(actor=bob, version=version, **values)
    assert field in raised.value.message_dict
    assert not DeploymentRequest.objects.exists()


def test_monthly_cost_of_the_target_from_the_size_price(project: Any, bob: Any) -> None:
    from tests.experiments import jobs_data

    size = jobs_data.size()
    realtime = gate.monthly_cost(size, "realtime")
    batch = gate.monthly_cost(size, "batch")
    assert realtime is not None and batch is not None
    assert realtime == (size.hourly_price * 730).quantize(realtime)
    assert batch < realtime


def test_the_requester_withdraws_a_pending_request_and_no_one_else_does(
    project: Any, alice: Any, bob: Any
) -> None:
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.9)
    request = request_for(bob, version)
    with pytest.raises(PermissionDenied):
        gate.deployment_request_withdraw(actor=alice, request=request)
    gate.deployment_request_withdraw(actor=bob, request=request)
    request.refresh_from_db()
    assert request.state == RequestState.WITHDRAWN
    assert not ApprovalRequest.objects.filter(state=ApprovalState.PENDING).exists()
    with pytest.raises(ValidationError):
        gate.deployment_request_withdraw(actor=bob, request=request)


def test_a_deleted_version_takes_its_reports_and_requests_along(project: Any, bob: Any) -> None:
    from deployments.gate_models import ValidationReport
    from experiments.services import model_version_delete

    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.9)
    request_for(bob, version)
    model_version_delete(actor=bob, version=version)
    assert not DeploymentRequest.objects.exists() and not ValidationReport.objects.exists()
