"""The drift beat task with a real worker: the sample logs of running
deployments against the training part of their version's split."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from cloud.local import LocalProvider
from compute.models import ComputeSize
from deployments import monitoring, serving
from deployments.drift_models import DriftReport
from deployments.drift_tasks import drift_check_all
from deployments.serving_models import Deployment, DeploymentState, Endpoint
from experiments import jobs
from tests.deployments import gate_data
from tests.experiments import jobs_data


def log_lines(rows: int, seed: int, *, shift: bool) -> bytes:
    """Sampled requests as the scoring process writes them."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows) if not shift else rng.integers(1, 12, rows)
    charges = rng.normal(70, 20, rows).round(2) + (30 if shift else 0)
    plan = rng.choice(["basic", "plus", "pro"], rows) if not shift else np.full(rows, "pro")
    lines = [
        json.dumps(
            {
                "ts": 1.0,
                "deployment": "blue",
                "input": {"tenure": int(t), "charges": float(c), "plan": str(p)},
                "prediction": "yes" if shift else str(rng.choice(["yes", "no"])),
            }
        )
        for t, c, p in zip(tenure, charges, plan, strict=True)
    ]
    return "".join(line + "\n" for line in lines).encode()


def sample_log(endpoint: Endpoint, name: str) -> Path:
    provider = serving.serving_provider(endpoint.provider)
    assert isinstance(provider, LocalProvider)
    path = provider._dep_dir(endpoint.provider_name, name) / "logs" / "samples.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def deployed(project: Any, alice: Any, bob: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Blue and green of one endpoint running the same trained version, and a
    stopped one of another endpoint (no scoring processes: only their logs)."""
    size, _ = ComputeSize.objects.get_or_create(
        provider="local",
        name="Standard_DS1_v2",
        defaults={
            "vcpus": 1,
            "memory_gb": 2,
            "hourly_price": "0.10",
            "price_date": timezone.now().date(),
        },
    )
    split = jobs_data.ready_split(
        project=project, actor=alice, callbacks=django_capture_on_commit_callbacks
    )
    job = jobs.job_create(actor=bob, project=project, split=split, size=jobs_data.size())
    version = gate_data.version(project, bob, run=job.run)
    out = {}
    for endpoint_name, names in (("churn", ("blue", "green")), ("old", ("blue",))):
        endpoint = Endpoint.objects.create(
            project=project,
            registered_model=version.registered_model,
            name=endpoint_name,
            provider="local",
            provider_name=f"drift-{endpoint_name}-{secrets.token_hex(3)}",
            key_sha256="0" * 64,
        )
        for name in names:
            out[(endpoint_name, name)] = Deployment.objects.create(
                endpoint=endpoint,
                name=name,
                model_version=version,
                size=size,
                state=DeploymentState.RUNNING
                if endpoint_name == "churn"
                else DeploymentState.STOPPED,
            )
    return out


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
