"""Real-time serving with a real worker and real scoring processes.

Deploy a version, put a second one on canary at 10% (the split measured over
1,000 calls), then pull the andon cord: all traffic back at once, audited.
A new deployment that fails its health check is rolled back by itself.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audit.models import AuditEvent
from compute.models import ComputeSize, UsageInterval
from deployments import serving, serving_tasks
from deployments.serving_models import (
    Deployment,
    DeploymentState,
    Endpoint,
    RolloutState,
)
from experiments.artifacts import ArtifactStore
from experiments.models import ModelAlias, ModelVersion, RegisteredModel
from experiments.services import alias_set
from tests.cloud.test_local_serving import ROWS, train_model

pytestmark = pytest.mark.django_db(transaction=True)


def register_version(project: Any, tmp_path: Path, version: int, offset: float) -> ModelVersion:
    """A registered version whose MLflow model files are in the project's artifact store."""
    folder = train_model(tmp_path, offset=offset)
    store = ArtifactStore(project.pk)
    rel = f"models/m-{version}"
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                store.write(f"{rel}/{path.relative_to(folder)}", f, 10**8)
    now = int(time.time() * 1000)
    model, _ = RegisteredModel.objects.get_or_create(
        project=project,
        name="Churn model",
        defaults={"creation_time": now, "last_update_time": now},
    )
    return ModelVersion.objects.create(
        registered_model=model,
        version=version,
        source=f"mlflow-artifacts:/{rel}",
        storage_location=f"mlflow-artifacts:/{rel}",
        creation_time=now,
        last_update_time=now,
    )


def wait_for(predicate: Any, timeout: float = 180.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def running(deployment_id: int) -> bool:
    dep = Deployment.objects.get(pk=deployment_id)
    assert dep.state != DeploymentState.FAILED, dep.detail
    return dep.state == DeploymentState.RUNNING


def score(url: str, key: str, rows: Any = ROWS) -> tuple[int, str, Any]:
    """POST ``rows`` (MLflow's invocation format) to a scoring URL: the status,
    the deployment that answered and the predictions."""
    request = urllib.request.Request(
        url,
        data=json.dumps(rows).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return (
                response.status,
                response.headers["X-Stagegate-Deployment"],
                json.loads(response.read())["predictions"],
            )
    except urllib.error.HTTPError as exc:
        return exc.code, "", None


@pytest.fixture
def cleanup(db: Any) -> Any:
    # The catalog's seeded rows do not survive a transactional test's flush.
    ComputeSize.objects.get_or_create(
        provider="local",
        name="Standard_DS1_v2",
        defaults={
            "vcpus": 1,
            "memory_gb": 2,
            "hourly_price": "0.10",
            "price_date": timezone.now().date(),
        },
    )
    yield
    for endpoint in Endpoint.objects.all():
        serving.serving_provider(endpoint.provider).endpoint_delete(endpoint.provider_name)


def test_deploy_canary_and_rollback(
    celery_worker: Any, project: Any, alice: Any, carol: Any, tmp_path: Path, cleanup: Any
) -> None:
    v1 = register_version(project, tmp_path, 1, 0.0)
    v2 = register_version(project, tmp_path, 2, 100.0)

    blue = serving.endpoint_deploy(actor=alice, model_version=v1)
    assert blue.name == "blue"
    wait_for(lambda: running(blue.pk), what="blue")
    endpoint = Endpoint.objects.get()
    assert endpoint.traffic == {"blue": 100} and endpoint.rollout == RolloutState.PROMOTED
    key = serving.endpoint_key_issue(actor=alice, endpoint=endpoint)
    endpoint.refresh_from_db()
    assert key not in json.dumps(
        AuditEvent.objects.filter(action="endpoint.key_issued").get().payload
    )
    assert endpoint.key_sha256 == serving.key_hash(key)
    status, name, predictions = score(endpoint.scoring_url, key)
    assert (status, name) == (200, "blue") and round(predictions[0], 6) == 4.0
    assert score(endpoint.scoring_url, "sgk_wrong")[0] == 401

    green = serving.endpoint_deploy(actor=alice, model_version=v2, canary_percent=10)
    assert green.name == "green"
    with pytest.raises(serving.ServingRefused, match="rollout is under way"):
        serving.endpoint_deploy(actor=alice, model_version=v2)
    wait_for(lambda: running(green.pk), what="green")
    endpoint.refresh_from_db()
    assert endpoint.rollout == RolloutState.BAKING
    assert endpoint.traffic == {"blue": 90, "green": 10} and endpoint.previous == "blue"

    calls = 1000
    seen = {"blue": 0, "green": 0}
    for _ in range(calls):
        status, name, predictions = score(endpoint.scoring_url, key)
        assert status == 200
        assert round(predictions[0], 6) == (4.0 if name == "blue" else 104.0)
        seen[name] += 1
    sd = math.sqrt(calls * 0.1 * 0.9)
    assert abs(seen["green"] - 100) < 4 * sd, seen

    # As the gate leaves them: the canary's version is the champion.
    alias_set(actor=alice, version=v1, alias="previous")
    alias_set(actor=alice, version=v2, alias="champion")
    with pytest.raises(PermissionDenied):
        serving.endpoint_rollback(actor=carol, endpoint=endpoint)  # an analyst
    pulled = time.monotonic()
    serving.endpoint_rollback(actor=alice, endpoint=endpoint, reason="complaints")
    first = score(endpoint.scoring_url, key)[1]
    back_within = time.monotonic() - pulled  # the cord pulled, the next call answered
    after = [first] + [score(endpoint.scoring_url, key)[1] for _ in range(49)]
    assert back_within < 1.0
    assert set(after) == {"blue"}  # every call after it
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 100, "green": 0}
    assert endpoint.rollout == RolloutState.ROLLED_BACK
    event = AuditEvent.objects.get(action="endpoint.rolled_back")
    assert event.actor_id == alice.pk and event.payload["to"] == "blue"
    assert event.payload["reason"] == "complaints" and event.payload["champion"] == 1
    # The version serving again is the champion; nothing is left to go back to.
    aliases = dict(ModelAlias.objects.values_list("alias", "version_id"))
    assert aliases == {"champion": v1.pk}
    moved = AuditEvent.objects.filter(action="model_alias.set").order_by("-pk").first()
    assert moved is not None and moved.actor_id == alice.pk

    # Compute: both deployments hold their size while they run.
    holdings = serving.deployment_holdings(project_id=project.pk)
    assert {h.resource_id for h in holdings} == {blue.pk, green.pk}


def test_a_failing_canary_is_rolled_back_by_the_health_check(
    celery_worker: Any, project: Any, alice: Any, tmp_path: Path, cleanup: Any
) -> None:
    v1 = register_version(project, tmp_path, 1, 0.0)
    v2 = register_version(project, tmp_path, 2, 100.0)
    blue = serving.endpoint_deploy(actor=alice, model_version=v1)
    wait_for(lambda: running(blue.pk), what="blue")
    green = serving.endpoint_deploy(actor=alice, model_version=v2, canary_percent=20)
    wait_for(lambda: running(green.pk), what="green")
    endpoint = Endpoint.objects.get()
    folder = Path(serving.serving_provider("local").root)  # type: ignore[attr-defined]
    state = json.loads(
        (
            folder / "_endpoints" / endpoint.provider_name / "deployments/green/state.json"
        ).read_text()
    )
    alias_set(actor=alice, version=v2, alias="champion")
    psutil.Process(state["pid"]).kill()  # the green scoring process's supervisor dies

    serving_tasks.serving_health_check.apply()
    endpoint.refresh_from_db()
    assert endpoint.traffic["green"] == 20  # one failure is not yet a verdict
    serving_tasks.serving_health_check.apply()
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 100, "green": 0}
    event = AuditEvent.objects.get(action="endpoint.rolled_back")
    assert event.actor_id is None and event.payload["by"] == "health check"
    # Blue's deployer moves the champion back on the health check's behalf.
    assert ModelAlias.objects.get(alias="champion").version_id == v1.pk
    assert event.payload["champion"] == 1


def test_a_canary_that_baked_is_promoted(
    celery_worker: Any, project: Any, alice: Any, tmp_path: Path, cleanup: Any
) -> None:
    v1 = register_version(project, tmp_path, 1, 0.0)
    v2 = register_version(project, tmp_path, 2, 100.0)
    blue = serving.endpoint_deploy(actor=alice, model_version=v1)
    wait_for(lambda: running(blue.pk), what="blue")
    green = serving.endpoint_deploy(actor=alice, model_version=v2, canary_percent=10)
    wait_for(lambda: running(green.pk), what="green")
    Endpoint.objects.update(bake_until=timezone.now())
    serving_tasks.serving_health_check.apply()
    endpoint = Endpoint.objects.get()
    assert endpoint.rollout == RolloutState.PROMOTED
    assert endpoint.traffic == {"green": 100, "blue": 0} and endpoint.previous == "blue"
    # The andon cord still works after a promotion.
    serving.endpoint_rollback(actor=alice, endpoint=endpoint)
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 100, "green": 0}


def test_a_deployment_without_traffic_is_stopped_and_frees_its_compute(
    celery_worker: Any, project: Any, alice: Any, carol: Any, tmp_path: Path, cleanup: Any
) -> None:
    v1 = register_version(project, tmp_path, 1, 0.0)
    v2 = register_version(project, tmp_path, 2, 100.0)
    blue = serving.endpoint_deploy(actor=alice, model_version=v1)
    wait_for(lambda: running(blue.pk), what="blue")
    green = serving.endpoint_deploy(actor=alice, model_version=v2)
    wait_for(lambda: running(green.pk), what="green")
    endpoint = Endpoint.objects.get()
    assert endpoint.traffic == {"green": 100, "blue": 0} and endpoint.previous == "blue"
    folder = Path(serving.serving_provider("local").root)  # type: ignore[attr-defined]
    state_file = folder / "_endpoints" / endpoint.provider_name / "deployments/blue/state.json"
    blue_pid = json.loads(state_file.read_text())["pid"]
    assert psutil.pid_exists(blue_pid)

    with pytest.raises(serving.ServingRefused, match="still answers calls"):
        serving.deployment_stop(actor=alice, deployment=green)
    with pytest.raises(PermissionDenied):
        serving.deployment_stop(actor=carol, deployment=blue)  # an analyst
    assert Deployment.objects.get(pk=blue.pk).state == DeploymentState.RUNNING

    serving.deployment_stop(actor=alice, deployment=blue)
    endpoint.refresh_from_db()
    assert endpoint.previous == ""  # nothing left to roll back to
    wait_for(
        lambda: Deployment.objects.get(pk=blue.pk).state == DeploymentState.STOPPED,
        what="blue stopped",
    )
    wait_for(lambda: not psutil.pid_exists(blue_pid), timeout=10, what="blue's process gone")
    with pytest.raises(serving.ServingRefused, match="no previous deployment"):
        serving.endpoint_rollback(actor=alice, endpoint=endpoint)
    with pytest.raises(serving.ServingRefused, match="stopped"):
        serving.deployment_stop(actor=alice, deployment=blue)
    assert {h.resource_id for h in serving.deployment_holdings(project_id=project.pk)} == {green.pk}
    assert not UsageInterval.objects.filter(
        resource_type="deployments.deployment", resource_id=blue.pk, ended_at__isnull=True
    ).exists()
    event = AuditEvent.objects.get(action="endpoint.deployment_stopped")
    assert event.actor_id == alice.pk
    assert event.payload == {"deployment": "blue", "version": 1, "ended_rollback": True}
    # Green still answers.
    key = serving.endpoint_key_issue(actor=alice, endpoint=endpoint)
    assert score(endpoint.scoring_url, key)[:2] == (200, "green")


@contextlib.contextmanager
def provisioning_worker(name: str, **env: str) -> Iterator[None]:
    """A worker of its own on the provisioning queue, with these settings."""
    from tests.conftest import start_worker, stop_worker

    worker = start_worker(name, queues="provisioning", env_extra=env)
    try:
        yield
    finally:
        stop_worker(worker)


def test_a_slow_deployment_is_watched_by_later_tasks_until_its_deadline(
    transactional_db: Any, project: Any, alice: Any, tmp_path: Path, cleanup: Any
) -> None:
    """The start task hands over at once (a zero slice); watch tasks look
    again until the scoring process is healthy. With no time at all to become
    healthy, the deployment fails with the reason."""
    v1 = register_version(project, tmp_path, 1, 0.0)
    with provisioning_worker(
        "serving-watch", SERVING_START_SLICE_SECONDS="0", SERVING_WATCH_SECONDS="0.5"
    ):
        blue = serving.endpoint_deploy(actor=alice, model_version=v1)
        wait_for(lambda: running(blue.pk), what="blue, watched")
    blue.refresh_from_db()
    assert blue.submitted_at is not None and blue.dispatched_at is not None
    assert blue.dispatched_at > blue.submitted_at  # handed over after the submission
    assert blue.lease_owner == "" and Endpoint.objects.get().traffic == {"blue": 100}

    v2 = register_version(project, tmp_path, 2, 100.0)
    with provisioning_worker(
        "serving-deadline", SERVING_START_SLICE_SECONDS="0", SERVING_READY_TIMEOUT="0"
    ):
        green = serving.endpoint_deploy(actor=alice, model_version=v2)
        wait_for(
            lambda: Deployment.objects.get(pk=green.pk).state == DeploymentState.FAILED,
            what="green failed",
        )
    green.refresh_from_db()
    assert green.detail == "The deployment did not become healthy in time"
    endpoint = Endpoint.objects.get()
    assert endpoint.rollout == RolloutState.FAILED and endpoint.traffic == {"blue": 100}
