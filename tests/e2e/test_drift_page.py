"""The drift page in a real browser: plotly draws the charts, the feature
picker swaps the distributions without a reload, and "Retrain" starts a job."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from deployments import monitoring
from experiments.job_models import Job
from experiments.services import alias_set
from tests.deployments import drift_data
from tests.e2e.test_gate_approval import DRAWN, sign_in

pytestmark = [pytest.mark.e2e]


def test_the_drift_page_draws_its_charts_and_picks_a_feature(
    page: Page, project: Any, alice: Any, bob: Any, password: str
) -> None:
    deployed = drift_data.deployed(project=project, alice=alice, bob=bob, callbacks=None)
    blue = deployed[("churn", "blue")]
    alias_set(actor=bob, version=blue.model_version, alias="champion")
    log = drift_data.sample_log(blue.endpoint, "blue")
    for seed, shift in ((1, False), (2, True)):
        log.write_bytes(drift_data.log_lines(300, seed, shift=shift))
        assert monitoring.drift_check(deployment_id=blue.pk) is not None

    sign_in(page, "bob", password, "/projects/churn/endpoints/churn/")
    page.locator("#drift-link").click()
    expect(page.locator("#drift-status")).to_have_text("drifting")
    for name in ("fig-share", "fig-psi", "fig-distribution", "fig-prediction"):
        expect(page.locator(f"[data-figure='{name}'] .main-svg").first).to_be_visible(timeout=DRAWN)
    # The dashed warn and alert lines of the PSI chart.
    expect(page.locator("[data-figure='fig-psi'] .annotation-text")).to_have_count(2)

    url = page.url
    page.locator("#feature-select").select_option("plan")
    expect(page.locator("[data-figure='fig-distribution'] .xtick").first).to_be_visible()
    expect(page.locator("[data-figure='fig-distribution']")).to_contain_text("(unseen)")
    assert page.url == url  # swapped in place

    page.locator("#retrain-button").click()
    job = Job.objects.exclude(rerun_of=None).get()
    expect(page.locator(".messages")).to_contain_text(f"Retraining started: job #{job.pk}")
