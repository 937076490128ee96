"""Stage 5 end to end, with a real worker, the live tracking server and real
scoring processes.

Two models are trained by the baseline template (gradient boosting, then a
linear model) and registered as versions 1 and 2 of ``churn``. Version 1 is
validated by a real job, requested as a real-time deployment, approved by the
validator and then the business approver, and the endpoint answers
predictions with a key issued to the lead. Version 2 is validated against it
(the champion now), requested as a canary of 10%, approved the same way; the
split over 1,000 calls is within four standard deviations of 10%. Then the
lead pulls the andon cord: all traffic back within one second, audited.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from datasets.services import source_update
from deployments import gate, serving
from deployments.gate_models import (
    DeploymentRequest,
    RequestState,
    ValidationReport,
    ValidationState,
)
from deployments.serving_models import Deployment, Endpoint, RolloutState
from experiments import jobs
from experiments.job_models import Job, JobState
from experiments.models import ModelAlias, ModelVersion
from governance.services import approval_decide
from tests.conftest import start_worker, stop_worker
from tests.deployments import gate_data
from tests.deployments.test_drift_tasks import sample_log
from tests.deployments.test_gate import actions, pending_step
from tests.deployments.test_serving import cleanup, running, score, wait_for  # noqa: F401
from tests.experiments import jobs_data

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Two customers of the split's columns: one about to leave, one who stays.
CUSTOMERS = {
    "dataframe_split": {
        "columns": ["tenure", "charges", "plan"],
        "data": [[2, 95.0, "basic"], [70, 40.0, "pro"]],
    }
}
REASON = "Ranks the customers about to leave above the charter's bar."


def trained_version(project: Any, bob: Any, job: Job) -> ModelVersion:
    """The job's model, once it finished, as the next version of ``churn``."""
    wait_for(lambda: Job.objects.get(pk=job.pk).finished, 180, f"training job {job.pk}")
    job = Job.objects.select_related("run").get(pk=job.pk)
    assert job.state == JobState.SUCCEEDED, job.log_tail
    return gate_data.version(project, bob, run=job.run)


def validated(bob: Any, version: ModelVersion) -> ValidationReport:
    report = gate.validation_run(actor=bob, version=version)
    wait_for(
        lambda: ValidationReport.objects.get(pk=report.pk).finished, 240, f"v{version.version}"
    )
    report = ValidationReport.objects.select_related("job").get(pk=report.pk)
    assert report.state == ValidationState.PASSED, (
        f"{report.value} {report.integration} {report.error}",
        report.job and report.job.log_tail,
    )
    return report


def approved(request: DeploymentRequest, validator: Any, approver: Any) -> Deployment:
    """The validator, then the business approver, approve; the deployment the
    approval started, once its scoring process runs."""
    assert request.state == RequestState.PENDING, gate.blocked_because(request)
    approval_decide(actor=validator, approval_id=pending_step(request).pk, approve=True)
    approval_decide(actor=approver, approval_id=pending_step(request).pk, approve=True)
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
    assert actions(request) == ["deployment.requested", "deployment.approved"]
    deployment = Deployment.objects.get(model_version=request.version)
    assert deployment.requested_by == approver
    wait_for(lambda: running(deployment.pk), 180, f"deployment {deployment.name}")
    return deployment


def test_validate_request_approve_serve_canary_and_pull_the_andon_cord(
    project: Any,
    alice: Any,
    bob: Any,
    dave: Any,
    provider_jobs: Path,
    cleanup: Any,  # noqa: F811
    live_server: Any,
) -> None:
    vera = gate_data.validator(project)
    split = jobs_data.ready_split(project=project, actor=alice)
    # The data stage marks a column as being about people: no scoring
    # process may write it to its sample log.
    source_update(actor=alice, source=split.parent.source, sensitive_columns=["charges"])
    size = jobs_data.size()
    worker = start_worker(
        "e2e-stage5",
        queues="training,provisioning,default",
        env_extra={"PORTAL_BASE_URL": live_server.url},
    )
    try:
        # Both models train while the first goes through the gate.
        gbm = jobs.job_create(actor=bob, project=project, split=split, size=size)
        linear = jobs.job_create(
            actor=bob, project=project, split=split, size=size, family="linear"
        )
        v1 = trained_version(project, bob, gbm)

        # Version 1: validated, requested, approved twice, deployed.
        report = validated(bob, v1)
        assert report.champion_id is None and report.meets_threshold is True
        first = gate.deployment_request_create(
            actor=bob, version=v1, target="realtime", reason=REASON
        )
        blue = approved(first, vera, dave)
        assert blue.name == "blue"
        endpoint = Endpoint.objects.get(project=project, registered_model=v1.registered_model)
        assert endpoint.traffic == {"blue": 100} and endpoint.rollout == RolloutState.PROMOTED
        assert ModelAlias.objects.get(alias="champion").version == v1

        key = serving.endpoint_key_issue(actor=alice, endpoint=endpoint)
        status, name, predictions = score(endpoint.scoring_url, key, CUSTOMERS)
        assert (status, name, predictions) == (200, "blue", ["yes", "no"])
        assert score(endpoint.scoring_url, "sgk_not-the-key", CUSTOMERS)[0] == 401

        # Version 2: validated against version 1 (the champion), a canary of 10%.
        v2 = trained_version(project, bob, linear)
        report = validated(bob, v2)
        assert report.champion_id == v1.pk and report.champion_value is not None
        second = gate.deployment_request_create(
            actor=bob,
            version=v2,
            target="realtime",
            rollout="canary",
            canary_percent=10,
            baking_minutes=60,
            reason=REASON,
        )
        green = approved(second, vera, dave)
        assert green.name == "green"
        aliases = dict(ModelAlias.objects.values_list("alias", "version_id"))
        assert aliases == {"champion": v2.pk, "previous": v1.pk}
        endpoint.refresh_from_db()
        assert endpoint.rollout == RolloutState.BAKING and endpoint.previous == "blue"
        assert endpoint.traffic == {"blue": 90, "green": 10}

        calls = 1000
        seen = {"blue": 0, "green": 0}
        for _ in range(calls):
            status, name, predictions = score(endpoint.scoring_url, key, CUSTOMERS)
            assert status == 200 and predictions == ["yes", "no"], (status, name, predictions)
            seen[name] += 1
        expected, sd = calls * 0.1, math.sqrt(calls * 0.1 * 0.9)
        assert abs(seen["green"] - expected) < 4 * sd, seen
        samples = [
            json.loads(line) for line in sample_log(endpoint, "blue").read_text().splitlines()
        ]
        assert samples and all(set(s["input"]) == {"tenure", "plan"} for s in samples)

        # The andon cord, pulled by the lead without approval.
        pulled = time.monotonic()
        serving.endpoint_rollback(actor=alice, endpoint=endpoint, reason="Complaints from sales.")
        answered = score(endpoint.scoring_url, key, CUSTOMERS)[1]
        back_within = time.monotonic() - pulled  # the cord pulled, the next call answered
        after = [answered] + [score(endpoint.scoring_url, key, CUSTOMERS)[1] for _ in range(49)]
        assert back_within < 1.0
        assert set(after) == {"blue"}  # every call after it
    finally:
        stop_worker(worker)
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 100, "green": 0}
    assert endpoint.rollout == RolloutState.ROLLED_BACK
    event = AuditEvent.objects.get(action="endpoint.rolled_back")
    assert event.actor_id == alice.pk and event.project_id == project.pk
    assert event.payload["to"] == "blue" and event.payload["before"] == {"blue": 90, "green": 10}
    assert event.payload["reason"] == "Complaints from sales."
    # The gate's approvals started both deployments, on the approver's behalf.
    deploys = AuditEvent.objects.filter(action="endpoint.deploy_requested").order_by("pk")
    assert [(e.actor_id, e.payload["version"], e.payload["canary_percent"]) for e in deploys] == [
        (dave.pk, v1.version, 0),
        (dave.pk, v2.version, 10),
    ]
