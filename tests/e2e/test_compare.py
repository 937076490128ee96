"""The comparison page in a real browser: runs chosen by experiment and
filter, metric charts fetched and drawn by plotly, settings applied, a bad
filter explained."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from experiments import services
from experiments.services import MetricPoint

pytestmark = [pytest.mark.e2e]
# Charts are fetched after the page loads; the shared machine may be slow.
DRAWN = 30_000


def sign_in(page: Page, password: str, next_url: str) -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def runs(project: Any, bob: Any) -> list[Any]:
    experiment = services.experiment_create(actor=bob, project=project, name="churn-gbm")
    made = []
    for i, lr in enumerate(["0.01", "0.1", "0.3"]):
        run = services.run_create(actor=bob, experiment=experiment, run_name=f"gbm-{lr}")
        points = [
            MetricPoint(key=key, value=value, timestamp=1_700_000_000_000 + s, step=s)
            for s in range(300)
            for key, value in (
                ("roc_auc", 0.6 + 0.25 * (1 - 0.99**s) * (1 + i) / 3),
                ("loss", 1.0 * 0.995**s + 0.1 * i),
            )
        ]
        for start in range(0, len(points), 900):
            services.run_log_batch(
                actor=bob,
                run=run,
                metrics=points[start : start + 900],
                params={"lr": lr, "depth": "3"} if start == 0 else {},
                tags={},
            )
        made.append(run)
    return made


def test_compare_matching_runs_draws_charts(
    page: Page, project: Any, runs: list[Any], password: str
) -> None:
    sign_in(page, password, "/projects/churn/experiments/compare/")
    page.get_by_label("Filter").fill("params.lr != '0.01'")
    page.get_by_role("button", name="Compare matching runs").click()
    expect(page.get_by_text("2 runs compared")).to_be_visible()

    roc = page.get_by_label("Chart of roc_auc")
    # plotly has drawn the fetched, downsampled figure: one line per run and the threshold.
    expect(roc.locator(".main-svg").first).to_be_attached(timeout=DRAWN)
    expect(roc.locator(".scatterlayer .trace")).to_have_count(2, timeout=DRAWN)
    expect(roc.get_by_text("Charter: roc_auc ≥ 0.8")).to_be_visible(timeout=DRAWN)
    expect(page.get_by_label("Chart of loss").locator(".scatterlayer .trace")).to_have_count(
        2, timeout=DRAWN
    )
    expect(page.get_by_label("Parallel coordinates").locator(".main-svg").first).to_be_attached(
        timeout=DRAWN
    )
    expect(
        page.get_by_label("Scatter of lr against roc_auc").locator(".main-svg").first
    ).to_be_attached(timeout=DRAWN)

    # Only what differs: lr, not depth.
    params = page.locator("table.compare-params")
    expect(params.locator("th", has_text="lr")).to_be_visible()
    expect(params.locator("th", has_text="depth")).to_have_count(0)

    # Group by lr: one mean line per value, with its band.
    page.get_by_label("Group by").select_option("lr")
    page.get_by_label("Baseline").select_option(label="gbm-0.1")
    page.get_by_role("button", name="Apply").click()
    roc = page.get_by_label("Chart of roc_auc")
    expect(roc.get_by_text("lr=0.3 (1 runs)")).to_be_visible(timeout=DRAWN)
    expect(page.locator("tr.baseline").first).to_contain_text("gbm-0.1")
    expect(page.locator("th", has_text="Δ").first).to_be_visible()


def test_bad_filter_is_explained(page: Page, project: Any, runs: list[Any], password: str) -> None:
    sign_in(page, password, "/projects/churn/experiments/compare/")
    page.get_by_label("Filter").fill("params.lr = ")
    page.get_by_role("button", name="Compare matching runs").click()
    expect(page.get_by_role("alert")).to_contain_text("Error on parsing filter")
    expect(page.get_by_label("Filter")).to_have_value("params.lr = ")
