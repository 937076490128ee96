"""A data scientist registers an upload source, uploads a CSV, watches the
progress bar finish and sees the profile charts, in a real browser with a
real Celery worker."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.datasets.conftest import CSV
from tests.e2e.conftest import assert_static_assets_load

pytestmark = [pytest.mark.e2e, pytest.mark.worker]


def test_upload_a_csv_and_see_its_profile(
    page: Page, project: Any, password: str, celery_worker: Any
) -> None:
    page.goto("/accounts/login/?next=/projects/churn/data/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Data sources")

    page.get_by_role("link", name="Register a source").click()
    page.get_by_label("Name", exact=True).fill("Customers")
    page.get_by_label("Kind").select_option("upload")
    page.get_by_label("Location").select_option("on_prem")
    page.get_by_role("button", name="Register").click()
    expect(page.locator(".messages")).to_contain_text("Source “Customers” registered.")

    page.get_by_label("CSV or Parquet file").set_input_files(
        {"name": "customers.csv", "mimeType": "text/csv", "buffer": CSV}
    )
    page.get_by_role("button", name="Upload").click()

    expect(page).to_have_url(re.compile(r"/projects/churn/data/\d+/ingestions/\d+/$"))
    progress = page.get_by_label("Ingestion progress")
    expect(progress).to_be_visible()
    expect(page.locator(".status")).to_have_text("Succeeded", timeout=30_000)
    expect(progress).to_have_attribute("value", "100")
    expect(page.locator(".ingestion")).to_contain_text("200 rows processed")

    page.get_by_role("link", name="version 1").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Customers v1")
    expect(page.locator("#profile table.profile")).to_be_visible(timeout=30_000)
    # Plotly drew one chart per column and the correlation heatmap.
    expect(page.locator(".chart .main-svg").first).to_be_visible()
    expect(page.locator(".chart.js-plotly-plot")).to_have_count(6)
    assert page.evaluate("typeof window.Plotly") == "object"
    assert_static_assets_load(page)
    scripts = page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
    assert any(s.endswith("/static/vendor/plotly/plotly.min.js") for s in scripts)
    assert all(s.startswith(page.url.split("/projects/")[0]) for s in scripts)
