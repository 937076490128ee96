"""The experiments pages in a real browser: a scientist logs runs with the
real ``mlflow`` client against the live server, then finds them in the runs
table, filters it, opens a run and sees its metric drawn."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from accounts.services import token_create

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, password: str, next_url: str) -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def logged(live_server: Any, project: Any, bob: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Three runs logged by bob with the mlflow client; the experiment's id."""
    import mlflow

    _, raw = token_create(user=bob, name="notebook")
    uri = f"{live_server.url}/mlflow/{project.slug}"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", str(raw))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(uri)
    experiment_id = str(mlflow.set_experiment("churn-gbm").experiment_id)
    for name, lr, final in [("slow", 0.01, 0.71), ("fast", 0.3, 0.88), ("middle", 0.1, 0.8)]:
        with mlflow.start_run(run_name=name):
            mlflow.log_params({"lr": lr, "algo": "gbm"})
            for step in range(20):
                mlflow.log_metric("auc", 0.5 + (final - 0.5) * step / 19, step=step)
    return experiment_id


def test_scientist_finds_logged_runs_filters_them_and_sees_a_runs_chart(
    page: Page, project: Any, password: str, logged: str
) -> None:
    sign_in(page, password, "/experiments/")
    page.get_by_role("link", name="Open its experiments").click()
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible()
    expect(page.get_by_text("/mlflow/churn")).to_be_visible()
    page.get_by_role("link", name="churn-gbm").click()

    table = page.locator("table.runs")
    for name in ("slow", "fast", "middle"):
        expect(table.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(table.locator("th.col-metrics")).to_contain_text("auc")

    page.get_by_label("Filter").fill("metrics.auc > 0.75 AND params.algo = 'gbm'")
    page.get_by_role("button", name="Apply").click()
    expect(table.get_by_role("link", name="fast", exact=True)).to_be_visible()
    expect(table.get_by_role("link", name="middle", exact=True)).to_be_visible()
    expect(table.get_by_role("link", name="slow", exact=True)).to_have_count(0)

    page.get_by_label("Filter").fill("metrics.auc >>> 1")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("This filter cannot be used")

    page.get_by_label("Filter").fill("")
    page.get_by_role("button", name="Apply").click()
    page.locator("th.col-metrics").get_by_role("link").click()  # highest auc first
    expect(table.locator("tbody tr").first).to_contain_text("fast")

    table.get_by_role("link", name="fast", exact=True).click()
    expect(page.get_by_role("heading", name="fast")).to_contain_text("Finished")
    chart = page.locator('[aria-label="Chart of auc over steps"]')
    expect(chart.locator("svg.main-svg").first).to_be_visible()
    expect(page.locator("table.params")).to_contain_text("0.3")
