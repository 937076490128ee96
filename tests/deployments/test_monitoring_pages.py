"""The drift page of an endpoint and "Retrain" from it (Django's test client;
the browser check is tests/e2e/test_drift_page.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from datasets import services as data_services
from datasets import tasks as data_tasks
from deployments import drift, monitoring
from deployments.drift_models import DriftReport
from deployments.gate_models import ValidationReport
from experiments.job_models import Job
from experiments.services import alias_set
from tests.deployments import gate_data
from tests.deployments.drift_data import log_lines, sample_log

pytestmark = pytest.mark.django_db
PAGE = "/projects/churn/endpoints/churn/drift/"


def checked(deployment: Any, *, shift: bool = True, seed: int = 1) -> DriftReport:
    """One real drift check of the deployment's logged rows."""
    sample_log(deployment.endpoint, deployment.name).write_bytes(log_lines(300, seed, shift=shift))
    report = monitoring.drift_check(deployment_id=deployment.pk)
    assert report is not None
    return report


def copies(report: DriftReport, count: int) -> None:
    """Earlier reports like ``report``, an hour apart."""
    for hours in range(1, count + 1):
        copy = DriftReport.objects.get(pk=report.pk)
        copy.pk = None
        copy.save()
        DriftReport.objects.filter(pk=copy.pk).update(
            computed_at=timezone.now() - timedelta(hours=hours)
        )


def figure(page: str, name: str) -> Any:
    start = page.index(f'id="{name}"')
    body = page[page.index(">", start) + 1 :]
    return json.loads(body[: body.index("</script>")])


def test_the_bins_and_shares_a_chart_needs_are_kept() -> None:
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"x": rng.normal(0, 1, 1000), "code": [f"c{i % 30}" for i in range(1000)]})
    current = pd.DataFrame(
        {"x": np.append(rng.normal(1, 1, 495), [np.nan] * 5), "code": ["new"] * 500}
    )
    report = drift.drift_report(drift.reference_profile(train), current)
    x = report.feature("x")
    assert len(x.bins) == len(x.reference_shares) == len(x.current_shares) == 13
    assert x.bins[0].startswith("below ") and x.bins[-2].startswith("above ")
    assert x.bins[-1] == "(missing)" and x.current_shares[-1] == pytest.approx(0.01)
    assert x.reference_shares[1:11] == pytest.approx([0.1] * 10, abs=0.002)
    above = float(np.count_nonzero(current["x"] > train["x"].max())) / 500
    assert x.current_shares[-2] == pytest.approx(above)
    assert x.edges[0] == train["x"].min() and x.edges[-1] == train["x"].max()
    code = report.feature("code")
    # 20 categories, the other 10 summed, then unseen and missing.
    assert len(code.bins) == 23 and code.bins[20:] == ["(other)", "(unseen)", "(missing)"]
    assert code.reference_shares[20] == pytest.approx(10 / 30, abs=0.01)
    assert code.current_shares[21] == 1.0 and sum(code.reference_shares) == pytest.approx(1)


def test_the_page_charts_the_reports(deployed: Any, client_for: Any, carol: Any) -> None:
    blue = deployed[("churn", "blue")]
    checked(blue, shift=False, seed=2)
    latest = checked(blue)
    assert latest.prediction is not None

    page = client_for(carol).get(PAGE).content.decode()

    assert 'id="drift-status"' in page and "drifting" in page
    assert "/static/vendor/plotly/plotly.min.js" in page
    share = figure(page, "fig-share")
    assert share["data"][0]["y"] == [0.0, 1.0]
    assert share["layout"]["shapes"][0]["y0"] == 0.5
    psi = figure(page, "fig-psi")
    assert {t["name"] for t in psi["data"]} == {"tenure", "charges", "plan"}
    assert [s["y0"] for s in psi["layout"]["shapes"]] == [0.1, 0.2]
    chosen = max(latest.features, key=lambda f: f["psi"])["name"]
    assert next(t for t in psi["data"] if t["name"] == chosen)["line"]["width"] == 3
    dist = figure(page, "fig-distribution")
    assert [t["name"] for t in dist["data"]] == ["training data", "logged requests"]
    prediction = figure(page, "fig-prediction")
    assert prediction["data"][0]["y"][-1] == latest.prediction["psi"]
    assert (
        figure(page, "fig-prediction-distribution")["data"][1]["y"]
        == (latest.prediction["current_shares"])
    )
    # No retraining for a read-only member.
    assert "retrain-button" not in page and 'id="retrain"' not in page

    # The feature picker: a fragment for htmx, the full page without it.
    fragment = client_for(carol).get(
        PAGE, {"feature": "plan"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="drift-feature"
    )
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section class="card" id="drift-feature">')
    bins = figure(body, "fig-distribution")["data"][0]["x"]
    assert sorted(bins[:3]) == ["basic", "plus", "pro"] and bins[3:] == ["(unseen)", "(missing)"]
    full = client_for(carol).get(PAGE, {"feature": "plan"}).content.decode()
    assert "<html" in full and '<option value="plan" selected>' in full


def test_the_endpoint_pages_link_the_drift_page_with_its_status(
    deployed: Any, client_for: Any, carol: Any, django_assert_num_queries: Any
) -> None:
    page = client_for(carol).get("/projects/churn/endpoints/churn/").content.decode()
    assert f'href="{PAGE}"' in page
    client = client_for(carol)
    listing = client.get("/projects/churn/endpoints/").content.decode()
    assert f'<a href="{PAGE}" data-drift="">not checked yet</a>' in listing

    report = checked(deployed[("churn", "blue")])
    with CaptureQueriesContext(connection) as one:
        client.get("/projects/churn/endpoints/")
    copies(report, 10)
    with django_assert_num_queries(len(one)):
        listing = client.get("/projects/churn/endpoints/").content.decode()
    assert f'<a href="{PAGE}" data-drift="alert">' in listing
    assert 'data-drift="">not checked yet' in listing  # the endpoint "old"


def test_outsiders_get_404_and_an_empty_endpoint_says_so(
    deployed: Any, client_for: Any, charlie: Any, carol: Any
) -> None:
    assert client_for(charlie).get(PAGE).status_code == 404
    assert client_for(charlie).post(PAGE + "retrain/").status_code == 404
    page = client_for(carol).get(PAGE).content.decode()
    assert "No drift check yet" in page and "fig-share" not in page
    assert client_for(carol).get("/projects/churn/endpoints/nope/drift/").status_code == 404


def test_the_query_count_does_not_grow_with_the_reports(
    deployed: Any, client_for: Any, alice: Any, bob: Any, django_assert_num_queries: Any
) -> None:
    blue = deployed[("churn", "blue")]
    alias_set(actor=bob, version=blue.model_version, alias="champion")
    report = checked(blue)
    client = client_for(alice)  # the lead: the retraining plan is read too
    with CaptureQueriesContext(connection) as one:
        assert client.get(PAGE).status_code == 200
    copies(report, 40)
    with django_assert_num_queries(len(one)):
        page = client.get(PAGE).content.decode()
    assert len(figure(page, "fig-share")["data"][0]["x"]) == 41


def test_retrain_starts_the_champions_recipe_on_the_newest_split(
    deployed: Any, client_for: Any, alice: Any, bob: Any
) -> None:
    blue = deployed[("churn", "blue")]
    version = blue.model_version
    alias_set(actor=bob, version=version, alias="champion")
    recipe = Job.objects.get(run=version.run)
    report = checked(blue)
    assert recipe.split is not None
    # Newer data: a second split of the same source.
    newer = data_services.split_create(
        actor=alice, snapshot=recipe.split.parent, test_fraction=0.25, seed=9
    )
    data_tasks.split_run.apply(kwargs={"split_id": newer.pk})

    page = client_for(bob).get(PAGE).content.decode()
    assert 'id="retrain-button"' in page and f"job #{recipe.pk}" in page

    response = client_for(bob).post(PAGE + "retrain/", {"report": report.pk})

    job = Job.objects.exclude(pk=recipe.pk).get()
    assert response.status_code == 302 and response["Location"].endswith(f"/jobs/{job.pk}/")
    assert job.rerun_of == recipe and job.split_id == newer.pk
    assert job.command == recipe.command and job.size_id == recipe.size_id
    event = AuditEvent.objects.get(action="endpoint.retrain_started")
    assert event.actor == bob
    assert event.payload == {
        "job": job.pk,
        "recipe_job": recipe.pk,
        "champion_version": version.version,
        "split": newer.pk,
        "report": report.pk,
    }
    # While it runs, a second click is refused with the reason.
    again = client_for(bob).post(PAGE + "retrain/", follow=True).content.decode()
    assert f"already under way (job #{job.pk})" in again
    assert Job.objects.count() == 2


def test_retrain_refusals(
    deployed: Any, project: Any, client_for: Any, bob: Any, carol: Any
) -> None:
    assert client_for(carol).post(PAGE + "retrain/").status_code == 403
    assert client_for(bob).get(PAGE + "retrain/").status_code == 405

    page = client_for(bob).post(PAGE + "retrain/", follow=True).content.decode()
    assert "churn has no champion version to retrain." in page

    logged_elsewhere = gate_data.version(project, bob)  # no run: no job behind it
    alias_set(actor=bob, version=logged_elsewhere, alias="champion")
    page = client_for(bob).post(PAGE + "retrain/", follow=True).content.decode()
    assert f"Version {logged_elsewhere.version} of churn was not trained by a training job" in page
    assert 'id="retrain-refusal"' in page and 'id="retrain-button"' not in page
    assert not Job.objects.exclude(rerun_of=None).exists()
    assert not AuditEvent.objects.filter(action="endpoint.retrain_started").exists()


def test_the_psi_axis_turns_logarithmic_past_1_and_keeps_the_thresholds() -> None:
    from deployments.monitoring_selectors import _psi_axis

    axis, shapes, notes = _psi_axis([0.05, None, 0.15])
    assert "type" not in axis and axis["range"] == [0, 0.3]
    assert [s["y0"] for s in shapes] == [n["y"] for n in notes] == [0.1, 0.2]

    axis, shapes, notes = _psi_axis([0.05, 6.0])
    assert axis["type"] == "log" and axis["range"][0] == -3
    # plotly.js places shapes by value and notes by log10 on a log axis.
    assert [s["y0"] for s in shapes] == [0.1, 0.2]
    assert [n["y"] for n in notes] == pytest.approx([-1, -0.69897])


def test_the_charters_metric_on_labelled_data_over_time(
    deployed: Any, client_for: Any, project: Any, alice: Any, bob: Any, carol: Any
) -> None:
    blue = deployed[("churn", "blue")]
    version = blue.model_version
    trained_on = Job.objects.get(run=version.run).split
    assert trained_on is not None
    page = client_for(carol).get(PAGE).content.decode()
    assert "Not scored on labelled data yet." in page and "score-button" not in page

    first = gate_data.report(project, version, bob, 0.86, split=trained_on)
    later = gate_data.report(project, version, bob, 0.74, split=trained_on)
    ValidationReport.objects.filter(pk=first.pk).update(
        created_at=timezone.now() - timedelta(days=7)
    )
    page = client_for(carol).get(PAGE).content.decode()
    labelled = figure(page, "fig-labelled")
    assert labelled["data"][0]["y"] == [0.86, 0.74] and labelled["data"][0]["name"] == "version 1"
    assert labelled["layout"]["shapes"][0]["y0"] == 0.8  # the charter's threshold
    assert labelled["layout"]["title"]["text"] == "ROC AUC on labelled data"

    # Outcomes arrive: newer labelled data of the same source, scored by a validation job.
    newer = data_services.split_create(
        actor=alice, snapshot=trained_on.parent, test_fraction=0.3, seed=11
    )
    data_tasks.split_run.apply(kwargs={"split_id": newer.pk})
    page = client_for(bob).get(PAGE).content.decode()
    assert 'id="score-button"' in page
    assert client_for(carol).post(PAGE + "score/", {"deployment": "blue"}).status_code == 403

    response = client_for(bob).post(PAGE + "score/", {"deployment": "blue"})

    report = ValidationReport.objects.exclude(pk__in=[first.pk, later.pk]).get()
    assert response.status_code == 302
    assert response["Location"] == f"/projects/churn/validations/{report.pk}/"
    assert report.split_id == newer.pk and report.version == version
    assert report.job is not None and report.job.split_id == newer.pk
    assert f"--test-sha256={newer.test_sha256}" in report.job.command
    missing = client_for(bob).post(PAGE + "score/", {"deployment": "red"}, follow=True)
    assert "Choose a deployment of this endpoint." in missing.content.decode()
