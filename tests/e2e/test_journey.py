"""The journey in a browser, following only links on the pages after the home page:
a new project, its charter, the approver's sign-off, a notebook that runs. And the
gate's refusal, seen where a data scientist meets it."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps as django_apps
from playwright.sync_api import Page, expect

from compute.models import ComputeSize
from tests.conftest import start_worker, stop_worker
from tests.e2e.test_charter_flow import fill_charter
from tests.e2e.test_workspace_flow import sign_in
from workspaces.models import Workspace

pytestmark = pytest.mark.e2e
seed = importlib.import_module("compute.migrations.0002_seed_compute_catalog")


@pytest.fixture
def worker(live_server: Any) -> Iterator[None]:
    """A real Celery worker for provisioning; the local workspaces are deleted after."""
    proc = start_worker("e2e-journey-worker", "provisioning")
    try:
        yield
    finally:
        stop_worker(proc)
        from cloud import get_provider

        provider: Any = get_provider("local")
        for state in provider.root.glob("sg-*/state.json"):
            provider.workspace_delete(state.parent.name)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()


def test_gate_refusal_says_why_and_leads_to_the_charter(
    page: Page, live_server: Any, project_unsigned: Any, bob: Any, password: str
) -> None:
    seed.seed(django_apps, None)
    sign_in(page, "bob", password)
    page.get_by_role("link", name="Churn").first.click()
    page.locator('[data-stage="workspaces"] a.step-link').click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Churn: workspaces")
    # Before filling anything in, the page says what is missing.
    expect(page.locator("#gate-notice")).to_contain_text("needs a signed-off charter")
    page.get_by_label("Name").fill("explore")
    small = ComputeSize.objects.get(name="Standard_D2s_v3")
    page.get_by_label("Size").select_option(value=str(small.pk))
    page.get_by_role("button", name="Request").click()
    refusal = page.locator("#gate-refusal")
    expect(refusal).to_contain_text(
        "Requesting a notebook workspace needs a signed-off charter: "
        "the business approver signs off the project's charter first."
    )
    assert not Workspace.objects.exists()
    refusal.get_by_role("link", name="Go to the charter").click()
    expect(page).to_have_url(re.compile(r"/projects/churn/charter/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Charter")


def test_from_a_new_project_to_a_running_notebook(
    page: Page,
    live_server: Any,
    worker: None,
    alice: Any,
    dave: Any,
    password: str,
) -> None:
    seed.seed(django_apps, None)
    # Alice starts a project from the home page.
    sign_in(page, "alice", password)
    page.get_by_role("link", name="New project").first.click()
    page.get_by_label("Name").fill("Churn Model")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Churn Model")
    expect(page.get_by_role("heading", level=1)).to_contain_text("1. Charter")
    assert page.url.endswith("/projects/churn-model/")

    # She adds the business approver to it.
    page.get_by_label("Username").fill("dave")
    page.get_by_label("Role").select_option("business_approver")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator(".messages")).to_contain_text("dave added.")

    # The charter card leads to the charter: write it and submit it.
    page.locator('[data-stage="charter"]').get_by_role("link", name="Write the charter").click()
    fill_charter(page)
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".messages")).to_contain_text("Charter draft v1 saved.")
    page.get_by_role("button", name="Submit for sign-off").click()
    expect(page.locator(".charter-meta .badge")).to_have_text("v1 · Awaiting sign-off")
    sign_out(page)

    # The business approver signs it off from their home page.
    sign_in(page, "dave", password)
    page.locator("#waiting").get_by_role("link", name=re.compile("Sign off charter v1")).click()
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("body")).to_contain_text("Approved")
    sign_out(page)

    # Alice follows the stages to a notebook.
    sign_in(page, "alice", password)
    page.locator("#my-projects").get_by_role("link", name="Churn Model").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("2. Data")
    page.locator('[data-stage="workspaces"]').get_by_role("link", name="Request a notebook").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Churn Model: workspaces")
    expect(page.locator("#gate-notice")).to_have_count(0)
    page.get_by_label("Name").fill("explore")
    small = ComputeSize.objects.get(name="Standard_D2s_v3")
    page.get_by_label("Size").select_option(value=str(small.pk))
    page.get_by_role("button", name="Request").click()
    expect(page.locator(".messages")).to_contain_text("approved; provisioning started")
    expect(page.locator("[data-state]")).to_have_text("Running", timeout=90_000)
    expect(page.get_by_role("link", name="Open JupyterLab")).to_be_visible()

    # Back on the project page, the strip follows what happened.
    page.get_by_role("link", name="Churn Model").first.click()  # the project's workspaces
    expect(page.get_by_role("heading", level=1)).to_contain_text("Churn Model: workspaces")
    page.get_by_role("link", name="Churn Model").first.click()  # the project
    expect(page.locator('[data-stage="workspaces"]')).to_contain_text("Reached")
    expect(page.get_by_role("heading", level=1)).to_contain_text("4. Experiments")
    assert Workspace.objects.get(name="explore").state == "running"
