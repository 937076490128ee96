"""The drift beat task with a real worker: the sample logs of running
deployments against the training part of their version's split."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.local import LocalProvider
from deployments import monitoring, serving
from deployments.drift_models import DriftReport
from deployments.drift_tasks import drift_check_all
from tests.deployments import gate_data
from tests.deployments.drift_data import log_lines, sample_log


def test_the_beat_task_keeps_a_report_per_running_deployment(
    celery_worker: Any, deployed: Any
) -> None:
    blue, green = deployed[("churn", "blue")], deployed[("churn", "green")]
    sample_log(blue.endpoint, "blue").write_bytes(log_lines(400, 1, shift=True))
    sample_log(green.endpoint, "green").write_bytes(log_lines(400, 2, shift=False))
    stopped = deployed[("old", "blue")]
    sample_log(stopped.endpoint, "blue").write_bytes(log_lines(400, 3, shift=True))

    assert drift_check_all.delay().get(timeout=120) == 2

    shifted = DriftReport.objects.get(deployment=blue)
    assert shifted.dataset_drift is True
    assert shifted.current_rows == 400 and shifted.reference_rows == 240  # 80% of 300
    assert {f["name"]: f["status"] for f in shifted.features} == {
        "tenure": "alert",
        "charges": "alert",
        "plan": "alert",
    }
    assert shifted.prediction_status == "alert"
    unshifted = DriftReport.objects.get(deployment=green)
    assert unshifted.dataset_drift is False
    assert unshifted.drifted_features == 0 and unshifted.judged_features == 3
    assert not DriftReport.objects.filter(deployment=stopped).exists()


@pytest.mark.django_db
def test_an_empty_log_and_a_version_without_split(deployed: Any, project: Any, bob: Any) -> None:
    blue = deployed[("churn", "blue")]

    report = monitoring.drift_check(deployment_id=blue.pk)

    assert report is not None
    assert report.current_rows == 0 and report.dataset_drift is False
    assert report.note == "No logged rows in the window."
    assert {f["status"] for f in report.features} == {"no_data"}

    green = deployed[("churn", "green")]
    green.model_version = gate_data.version(project, bob)  # no run, so no split
    green.save(update_fields=["model_version"])
    assert monitoring.drift_check(deployment_id=green.pk) is None
    assert monitoring.drift_check(deployment_id=deployed[("old", "blue")].pk) is None


@pytest.mark.django_db
def test_the_window_is_the_end_of_the_log_in_whole_lines(deployed: Any) -> None:
    blue = deployed[("churn", "blue")]
    provider = serving.serving_provider("local")
    assert isinstance(provider, LocalProvider)
    name = blue.endpoint.provider_name
    assert provider.deployment_sample_log(name, "blue", 1000) == b""  # nothing logged yet

    data = log_lines(50, 4, shift=False)
    sample_log(blue.endpoint, "blue").write_bytes(data)
    lines = data.splitlines(keepends=True)

    assert provider.deployment_sample_log(name, "blue", len(data)) == data
    tail = provider.deployment_sample_log(name, "blue", len(lines[-1]) + len(lines[-2]) + 5)
    assert tail == lines[-2] + lines[-1]  # the line cut in two is left out
    exact = provider.deployment_sample_log(name, "blue", len(lines[-1]) + len(lines[-2]))
    assert exact == lines[-2] + lines[-1]
