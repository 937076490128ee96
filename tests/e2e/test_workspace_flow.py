"""A data scientist asks for a GPU notebook beyond the quota, a platform
admin approves it on the approval page, and the data scientist opens it:
headless Chromium, the live server, a real Celery worker, a real JupyterLab."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps as django_apps
from playwright.sync_api import Browser, Page, expect

from compute.models import ComputeSize
from tests.conftest import start_worker, stop_worker
from tests.e2e.conftest import assert_static_assets_load
from workspaces.models import Workspace

pytestmark = pytest.mark.e2e
seed = importlib.import_module("compute.migrations.0002_seed_compute_catalog")


@pytest.fixture
def worker(live_server: Any) -> Iterator[None]:
    proc = start_worker("e2e-worker", "provisioning")
    try:
        yield
    finally:
        stop_worker(proc)
        from cloud import get_provider

        provider: Any = get_provider("local")
        for state in provider.root.glob("sg-*/state.json"):
            provider.workspace_delete(state.parent.name)


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")


def test_over_quota_gpu_request_is_approved_by_an_admin_and_opened(
    page: Page,
    browser: Browser,
    live_server: Any,
    worker: None,
    project: Any,
    bob: Any,
    admin_user: Any,
    password: str,
) -> None:
    seed.seed(django_apps, None)

    # The data scientist asks for a GPU notebook; the project's quota has no GPUs.
    sign_in(page, "bob", password)
    page.get_by_role("link", name="Workspaces", exact=True).click()
    page.get_by_role("link", name="Churn").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Churn: workspaces")
    page.get_by_label("Name").fill("gpu-train")
    gpu = ComputeSize.objects.get(name="Standard_NC4as_T4_v3")
    page.get_by_label("Size").select_option(value=str(gpu.pk))
    page.get_by_role("button", name="Request").click()
    expect(page.locator(".messages")).to_contain_text("a platform admin decides")
    expect(page.locator("[data-state]")).to_have_text("Pending approval")
    expect(page.locator("#workspace-state")).to_contain_text(
        "Project GPUs: 0 in use + 1 requested > 0"
    )
    assert_static_assets_load(page)
    workspace = Workspace.objects.get(name="gpu-train")
    assert workspace.approval_id is not None

    # A platform admin approves it on the approval page (four eyes: not bob).
    admin_context = browser.new_context(base_url=live_server.url)
    admin = admin_context.new_page()
    try:
        sign_in(admin, "admin", password)
        admin.goto(f"/approvals/{workspace.approval_id}/")
        expect(admin.get_by_role("heading", level=1)).to_contain_text("gpu-train")
        expect(admin.locator("body")).to_contain_text("Standard_NC4as_T4_v3")
        admin.get_by_role("button", name="Approve").click()
        expect(admin.locator("body")).to_contain_text("Approved")
    finally:
        admin_context.close()

    # Bob's page follows the state by itself (htmx polling) until it runs.
    expect(page.locator("[data-state]")).to_have_text("Running", timeout=60_000)
    open_link = page.get_by_role("link", name="Open JupyterLab")
    expect(open_link).to_be_visible()
    with page.context.expect_page() as new_tab:
        open_link.click()
    lab = new_tab.value
    lab.wait_for_load_state()
    expect(lab).to_have_title(re.compile("JupyterLab"), timeout=30_000)
    assert lab.url.startswith("http://127.0.0.1:")
    lab.close()

    workspace.refresh_from_db()
    assert workspace.state == "running" and workspace.size.gpus == 1
