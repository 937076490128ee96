"""The monitoring API: /api/projects/{slug}/monitors/ (list, get, retrain)."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from deployments import monitoring
from deployments.drift_models import DriftReport
from experiments.job_models import Job
from experiments.services import alias_set
from tests.deployments.drift_data import log_lines, sample_log

pytestmark = pytest.mark.django_db
API = "/api/projects/churn/monitors/"


def checked(deployment: Any, *, shift: bool) -> DriftReport:
    # Seed 2 unshifted is "ok" on every feature against this training data.
    data = log_lines(400, 5 if shift else 2, shift=shift)
    sample_log(deployment.endpoint, deployment.name).write_bytes(data)
    report = monitoring.drift_check(deployment_id=deployment.pk)
    assert report is not None
    return report


def test_the_list_says_each_endpoints_latest_drift(
    deployed: Any, api_for: Any, carol: Any, charlie: Any, django_assert_num_queries: Any
) -> None:
    blue, green = deployed[("churn", "blue")], deployed[("churn", "green")]
    checked(blue, shift=False)
    latest = checked(blue, shift=True)
    checked(green, shift=False)

    with django_assert_num_queries(6):
        answer = api_for(carol).get(API)

    assert answer.status_code == 200
    monitors = {m["name"]: m for m in answer.json()}
    churn = monitors["churn"]
    assert churn["status"] == "alert" and churn["model_name"] == "churn"
    by_name = {d["name"]: d for d in churn["deployments"]}
    assert by_name["blue"]["status"] == "alert" and by_name["green"]["status"] == "ok"
    assert by_name["blue"]["latest"]["id"] == latest.pk
    assert by_name["blue"]["latest"]["drifted_features"] == 3
    assert set(by_name["blue"]["latest"]) == {
        "id",
        "computed_at",
        "current_rows",
        "judged_features",
        "drifted_features",
        "drifted_share",
        "dataset_drift",
        "prediction_status",
    }
    # The stopped deployment of "old" was never checked.
    assert monitors["old"]["status"] == "" and monitors["old"]["checked_at"] is None
    assert monitors["old"]["deployments"][0]["latest"] is None
    assert api_for(charlie).get(API).status_code == 404

    # More reports, the same queries.
    for _ in range(5):
        checked(green, shift=True)
    with django_assert_num_queries(6):
        assert api_for(carol).get(API).json()[0]["status"] == "alert"


def test_the_detail_gives_the_reports_over_time_per_feature(
    deployed: Any, api_for: Any, carol: Any, charlie: Any
) -> None:
    blue, green = deployed[("churn", "blue")], deployed[("churn", "green")]
    first = checked(blue, shift=False)
    second = checked(blue, shift=True)
    checked(green, shift=False)

    answer = api_for(carol).get(API + "churn/", {"deployment": "blue"})

    assert answer.status_code == 200
    reports = answer.json()["reports"]
    assert [r["id"] for r in reports] == [first.pk, second.pk]
    assert [r["status"] for r in reports] == ["ok", "alert"]
    plan = next(f for f in reports[1]["features"] if f["name"] == "plan")
    assert plan["status"] == "alert" and plan["distance_name"] == "jensen_shannon"
    assert plan["bins"][-2:] == ["(unseen)", "(missing)"]
    assert sum(plan["current_shares"]) == pytest.approx(1)
    assert reports[1]["prediction"]["status"] == "alert"
    assert len(api_for(carol).get(API + "churn/").json()["reports"]) == 3
    assert len(api_for(carol).get(API + "churn/", {"limit": 1}).json()["reports"]) == 2

    assert api_for(carol).get(API + "churn/", {"limit": 0}).status_code == 400
    assert api_for(carol).get(API + "churn/", {"deployment": "red"}).status_code == 400
    assert api_for(carol).get(API + "nope/").status_code == 404
    assert api_for(charlie).get(API + "churn/").status_code == 404


def test_retrain_by_role_and_its_refusals(
    deployed: Any, api_for: Any, alice: Any, bob: Any, carol: Any, charlie: Any
) -> None:
    url = API + "churn/retrain/"
    assert api_for(charlie).post(url, {}, format="json").status_code == 404
    assert api_for(carol).post(url, {}, format="json").status_code == 403

    refused = api_for(bob).post(url, {}, format="json")
    assert refused.status_code == 409
    assert refused.json() == {"detail": "churn has no champion version to retrain."}

    blue = deployed[("churn", "blue")]
    alias_set(actor=bob, version=blue.model_version, alias="champion")
    recipe = Job.objects.get(run=blue.model_version.run)
    report = checked(blue, shift=True)
    other = checked(blue, shift=True)
    assert api_for(alice).post(url, {"report": 10**9}, format="json").status_code == 400
    assert api_for(alice).post(url, {"report": "x"}, format="json").status_code == 400

    started = api_for(alice).post(url, {"report": report.pk}, format="json")

    assert started.status_code == 201
    job = Job.objects.get(pk=started.json()["job"])
    assert started.json() == {
        "job": job.pk,
        "name": recipe.name,
        "state": job.state,
        "recipe_job": recipe.pk,
        "split": recipe.split_id,
    }
    event = AuditEvent.objects.get(action="endpoint.retrain_started")
    assert event.payload["report"] == report.pk and event.actor == alice
    again = api_for(alice).post(url, {"report": other.pk}, format="json")
    assert again.status_code == 409 and f"job #{job.pk}" in again.json()["detail"]
