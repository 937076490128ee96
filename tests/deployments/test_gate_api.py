"""The gate's API: validation (run, latest) and deployment requests
(request, list, get), with access rules and reasons for bad input."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.gate_models import DeploymentRequest
from tests.deployments import gate_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalog")]

BASE = "/api/projects/churn/"


@pytest.fixture
def version(project: Any, bob: Any) -> Any:
    return gate_data.version(project, bob)


def test_the_latest_report_reads_for_members_and_not_for_outsiders(
    project: Any, bob: Any, carol: Any, charlie: Any, version: Any, api_for: Any
) -> None:
    url = f"{BASE}models/churn/versions/{version.version}/validation/"
    assert api_for(carol).get(url).status_code == 404  # none yet
    gate_data.report(project, version, bob, 0.71)
    latest = gate_data.report(project, version, bob, 0.91, champion=0.85)
    answer = api_for(carol).get(url)
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == latest.pk and body["state"] == "passed"
    assert body["value"] == 0.91 and body["threshold"] == 0.8 and body["meets_threshold"]
    assert body["segments"][0]["column"] == "plan" and body["segment_gap"] == 0.05
    assert api_for(charlie).get(url).status_code == 404
    assert api_for(carol).get(f"{BASE}models/churn/versions/99/validation/").status_code == 404


def test_analysts_do_not_run_validations_and_bad_segments_say_why(
    project: Any, bob: Any, carol: Any, version: Any, api_for: Any
) -> None:
    url = f"{BASE}models/churn/versions/{version.version}/validation/"
    assert api_for(carol).post(url, {"segments": []}, format="json").status_code == 403
    # The version names no split (it was not registered from a job's run).
    answer = api_for(bob).post(url, {"segments": ["plan"]}, format="json")
    assert answer.status_code == 400 and "split" in answer.json()["version"][0]


def test_request_list_and_get(
    project: Any, bob: Any, carol: Any, charlie: Any, version: Any, api_for: Any
) -> None:
    gate_data.report(project, version, bob, 0.91)
    payload = {
        "model": "churn",
        "version": version.version,
        "target": "realtime",
        "rollout": "canary",
        "canary_percent": 10,
        "baking_minutes": 30,
        "reason": "It beats the threshold on held-out customers.",
    }
    assert api_for(carol).post(f"{BASE}deployments/", payload, format="json").status_code == 403
    assert api_for(charlie).post(f"{BASE}deployments/", payload, format="json").status_code == 404
    answer = api_for(bob).post(f"{BASE}deployments/", payload, format="json")
    assert answer.status_code == 201, answer.json()
    created = answer.json()
    assert created["state"] == "pending" and created["canary_percent"] == 10
    listed = api_for(carol).get(f"{BASE}deployments/").json()
    assert [r["id"] for r in listed["results"]] == [created["id"]]
    one = api_for(carol).get(f"{BASE}deployments/{created['id']}/")
    assert one.status_code == 200 and one.json()["model"] == "churn"
    assert api_for(charlie).get(f"{BASE}deployments/{created['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"target": "moon"}, "target"),
        ({"rollout": "canary", "canary_percent": 10}, "baking_minutes"),
        (
            {"rollout": "canary", "canary_percent": 10, "baking_minutes": 30, "target": "batch"},
            "rollout",
        ),
        ({"reason": "meh"}, "reason"),
    ],
)
def test_bad_requests_answer_400_with_the_field(
    project: Any, bob: Any, version: Any, api_for: Any, change: dict[str, Any], field: str
) -> None:
    payload = {"model": "churn", "version": version.version, "target": "realtime"}
    payload |= {"reason": "It beats the threshold on held-out customers."} | change
    answer = api_for(bob).post(f"{BASE}deployments/", payload, format="json")
    assert answer.status_code == 400 and field in answer.json(), answer.json()
    assert not DeploymentRequest.objects.exists()


def test_an_unknown_version_is_404(project: Any, bob: Any, api_for: Any) -> None:
    payload = {"model": "nope", "version": 1, "target": "batch", "reason": "Because it is good."}
    assert api_for(bob).post(f"{BASE}deployments/", payload, format="json").status_code == 404
