"""Validation with a real worker: a model trained by the baseline template,
registered, then validated by the validate template as a job in the local
provider's sandbox; the report is read back from the job's run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from charter.models import CharterVersion
from deployments import gate
from deployments.gate_models import RequestState, ValidationReport, ValidationState
from experiments import jobs
from experiments.job_models import Job, JobState
from experiments.services import alias_set
from tests.conftest import start_worker, stop_worker
from tests.deployments import gate_data
from tests.experiments import jobs_data
from tests.workspaces.test_worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_version_is_validated_against_the_charter_and_the_champion_on_the_held_out_rows(
    project: Any,
    alice: Any,
    bob: Any,
    admin_user: Any,
    provider_jobs: Path,
    live_server: Any,
) -> None:
    split = jobs_data.ready_split(project=project, actor=alice)
    worker = start_worker(
        "gate-validate", queues="training", env_extra={"PORTAL_BASE_URL": live_server.url}
    )
    try:
        trained = jobs.job_create(actor=bob, project=project, split=split, size=jobs_data.size())
        wait_for(lambda: Job.objects.get(pk=trained.pk).finished, 180, "the training job")
        trained = Job.objects.select_related("run").get(pk=trained.pk)
        assert trained.state == JobState.SUCCEEDED, trained.log_tail
        champion = gate_data.version(project, bob, run=trained.run)
        alias_set(actor=bob, version=champion, alias="champion")
        candidate = gate_data.version(project, bob, run=trained.run)

        report = gate.validation_run(
            actor=bob, version=candidate, segments=["plan"], risks="Young customers are few."
        )
        assert report.state == ValidationState.RUNNING
        wait_for(lambda: ValidationReport.objects.get(pk=report.pk).finished, 240, "the validation")
        # Repeatable: against a charter that now asks for more, the same version fails.
        CharterVersion.objects.filter(project=project).update(threshold=0.9999)
        again = gate.validation_run(actor=bob, version=candidate)
        wait_for(lambda: ValidationReport.objects.get(pk=again.pk).finished, 240, "the rerun")
    finally:
        stop_worker(worker)
    report = ValidationReport.objects.select_related("job").get(pk=report.pk)
    assert report.state == ValidationState.PASSED, (
        report.error,
        report.job and report.job.log_tail,
    )
    # The charter's metric on the test part, against its threshold.
    assert report.metric == "roc_auc" and report.threshold == 0.8
    assert report.value is not None and 0.8 <= report.value <= 1.0
    assert report.meets_threshold is True
    # The champion (the same model) scores the same on the same rows.
    assert report.champion_id == champion.pk
    assert report.champion_value == pytest.approx(report.value)
    assert report.beats_champion is True
    # Segments: one row per plan, and the gap between best and worst.
    [plan] = report.segments
    assert plan["column"] == "plan"
    assert {r["value"] for r in plan["rows"]} == {"basic", "plus", "pro"}
    assert sum(r["rows"] for r in plan["rows"]) == report.rows == split.test_rows
    scored = [r["metric"] for r in plan["rows"]]
    assert plan["gap"] == pytest.approx(max(scored) - min(scored))
    # Integration: loaded in a fresh process, signature is the split's columns.
    assert report.integration_ok is True
    assert report.integration["signature_matches"] is True
    assert report.integration["expected_inputs"] == ["charges", "plan", "tenure"]
    assert 0 < report.integration["latency_ms_p95"] <= report.integration["budget_ms"]
    # Inputs pinned by digest.
    assert report.test_digest == split.test_sha256 and report.train_digest == split.train_sha256
    assert report.snapshot_digest == split.parent.sha256
    assert len(report.model_digest) == 64 and len(report.champion_digest) == 64
    assert report.code_digest == jobs.template_digest("validate")
    assert report.job is not None and report.job.template == "validate"
    assert f"--model-uri=models:/churn/{candidate.version}" in report.job.command
    assert report.parameters.get("estimator") == "HistGradientBoostingClassifier"
    assert report.risks == "Young customers are few."
    actions = AuditEvent.objects.filter(
        object_type="deployments.validationreport", object_id=str(report.pk)
    ).values_list("action", flat=True)
    assert sorted(actions) == ["validation.passed", "validation.started"]

    again = ValidationReport.objects.get(pk=again.pk)
    assert again.state == ValidationState.FAILED and again.meets_threshold is False
    assert again.value == pytest.approx(report.value) and again.threshold == 0.9999
    assert again.test_digest == report.test_digest and again.model_digest == report.model_digest
    assert gate.latest_report(candidate) == again
    blocked = gate.deployment_request_create(
        actor=bob, version=candidate, target="realtime", reason="It still ranks customers well."
    )
    assert blocked.state == RequestState.BLOCKED and blocked.report == again
    gate.deployment_request_override(
        actor=admin_user, request=blocked, justification="The new bar takes effect next quarter."
    )
    blocked.refresh_from_db()
    assert blocked.state == RequestState.PENDING
    assert AuditEvent.objects.filter(action="deployment.override", actor=admin_user).exists()
