"""A training job in a browser, from an approved charter and a ready split:
the data scientist signs in, follows the links to the project's training jobs,
starts the baseline from the new-job form, watches its log and its metric
arrive in the polled part of the job's page while a real Celery worker runs it
on the local provider, and compares its run with an earlier one on the
comparison page, which measures both against the charter's metric."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from cloud import get_provider
from experiments import services
from experiments.job_models import Job
from experiments.services import MetricPoint
from tests.conftest import start_worker, stop_worker
from tests.e2e.test_workspace_flow import sign_in
from tests.experiments import jobs_data

pytestmark = [pytest.mark.e2e, pytest.mark.worker]
# Training, logging into the run and ending it take a few seconds on a quiet
# machine; the shared one may be much slower.
TRAINED = 150_000
DRAWN = 30_000


@pytest.fixture
def training_worker(live_server: Any) -> Iterator[None]:
    """A real worker on the training queue, told where the portal is (the job
    logs into its run through the live server); whatever job it started is
    cancelled after the test."""
    provider: Any = get_provider("local")
    root = provider.root / "_jobs"
    before = set(root.iterdir()) if root.exists() else set()
    worker = start_worker(
        "e2e-jobs-journey", queues="training", env_extra={"PORTAL_BASE_URL": live_server.url}
    )
    try:
        yield
    finally:
        stop_worker(worker)
        for folder in (set(root.iterdir()) if root.exists() else set()) - before:
            provider.job_cancel(folder.name)


@pytest.fixture
def earlier_run(project: Any, bob: Any) -> Any:
    """A run the baseline's experiment already holds: a model that guesses,
    far below the charter's roc_auc ≥ 0.8."""
    experiment = services.experiment_create(actor=bob, project=project, name="job-baseline")
    run = services.run_create(actor=bob, experiment=experiment, run_name="majority class")
    services.run_log_batch(
        actor=bob,
        run=run,
        metrics=[
            MetricPoint(key="roc_auc", value=0.5, timestamp=1_700_000_000_000 + step, step=step)
            for step in range(11)
        ],
        params={"family": "constant"},
        tags={},
    )
    services.run_update(actor=bob, run=run, status="FINISHED", end_time=1_700_000_060_000)
    return run


def test_a_data_scientist_trains_the_baseline_and_compares_it(
    page: Page,
    project: Any,
    alice: Any,
    bob: Any,
    password: str,
    earlier_run: Any,
    training_worker: None,
    tmp_path: Path,
) -> None:
    split = jobs_data.ready_split(project=project, actor=alice)
    size = jobs_data.size()

    sign_in(page, "bob", password)
    page.get_by_role("link", name="Churn").first.click()
    page.locator('[data-stage="experiments"] a.step-link').click()
    page.get_by_role("link", name="Training jobs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Training jobs")
    expect(page.get_by_text("No training jobs yet.")).to_be_visible()

    page.get_by_role("link", name="New job from a template").click()
    code = page.get_by_role("group", name="Code")
    expect(code.get_by_label("Baseline from the charter")).to_be_checked()
    expect(page.get_by_label("Split")).to_contain_text("Customers, version 1")
    page.get_by_label("Split").select_option(value=str(split.pk))
    page.get_by_label("Compute size").select_option(value=str(size.pk))
    page.get_by_label("Model family").select_option(label="Gradient boosting")
    page.get_by_label("Library").select_option(label="scikit-learn")
    page.get_by_role("button", name="Start").click()

    job = Job.objects.get(project=project)
    expect(page).to_have_url(re.compile(rf"/projects/churn/jobs/{job.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"#{job.pk} baseline (gbm)")
    expect(page.get_by_text("“baseline (gbm)” queued.")).to_be_visible()
    # From here on the page is never loaded again: htmx swaps in the polled part.
    page.evaluate("window.notReloaded = true")

    log = page.locator("#job-log")
    expect(log).not_to_have_text("No output yet.", timeout=TRAINED)
    expect(log).to_contain_text("roc_auc on the test part:", timeout=TRAINED)
    roc = page.locator('#job-metrics td[data-metric="roc_auc"]')
    expect(roc).to_be_visible(timeout=TRAINED)
    expect(page.locator("#job-state")).to_have_attribute("data-state", "succeeded", timeout=TRAINED)
    expect(page.locator("#job-state")).to_have_text("Succeeded")
    expect(page.locator("#exit-code")).to_have_text("0")
    expect(page.get_by_role("button", name="Run again")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    # The metric shown is the one the job printed, and the label is learnable.
    shown = roc.inner_text()
    assert f"roc_auc on the test part: {shown}" in log.inner_text()
    assert 0.7 < float(shown) <= 1.0
    job.refresh_from_db()
    assert job.run is not None
    page.screenshot(path=tmp_path / "job.png", full_page=True)

    run_link = page.locator("#job-run").get_by_role("link", name=job.run.uuid)
    expect(run_link).to_have_attribute("href", f"/projects/churn/runs/{job.run.uuid}/")

    # The run, its experiment's runs table, and the comparison of both runs.
    page.get_by_role("link", name="The run's page").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(job.run.name)
    page.locator("p.crumbs").get_by_role("link", name="job-baseline").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("job-baseline")
    page.get_by_label(f"Select {job.run.name}").check()
    page.get_by_label("Select majority class").check()
    page.get_by_role("button", name="Compare selected runs").click()

    expect(page.get_by_text("2 runs compared")).to_be_visible()
    target = page.locator("section.charter-target")
    expect(target).to_contain_text("Success metric roc_auc ≥ 0.8")
    expect(target).to_contain_text("1 run meets it, 1 does not.")
    metrics = page.locator("table.compare-metrics")
    expect(metrics.locator(f'tr[data-run="{job.run.uuid}"] td.meets')).to_contain_text("✓")
    expect(metrics.locator(f'tr[data-run="{earlier_run.uuid}"] td.misses')).to_contain_text("✗")
    chart = page.get_by_label("Chart of roc_auc")
    expect(chart.locator(".scatterlayer .trace")).to_have_count(2, timeout=DRAWN)
    expect(chart.get_by_text("Charter: roc_auc ≥ 0.8")).to_be_visible(timeout=DRAWN)

    page.screenshot(path=tmp_path / "compare.png", full_page=True)
