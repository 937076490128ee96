"""An over-quota request, rejected with a reason, as people see it in the
browser: the admin reads the request in words and rejects it; the requester
follows the notification to the reason; the audit trail is filtered with a
date picker and a choice, and its objects are links."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from compute.models import ComputeSize
from tests.e2e.conftest import assert_static_assets_load
from tests.e2e.test_workspace_flow import sign_in
from workspaces import services
from workspaces.models import Workspace

pytestmark = pytest.mark.e2e
seed = importlib.import_module("compute.migrations.0002_seed_compute_catalog")


def test_a_rejected_request_reads_as_words_from_approval_to_audit(
    page: Page,
    browser: Browser,
    live_server: Any,
    project: Any,
    alice: Any,
    bob: Any,
    admin_user: Any,
    password: str,
) -> None:
    seed.seed(django_apps, None)
    gpu = ComputeSize.objects.get(name="Standard_NC4as_T4_v3")
    workspace = services.workspace_request(actor=bob, project=project, name="train", size=gpu)

    # The platform admin reads the request in words and rejects it with a reason.
    sign_in(page, "admin", password)
    page.get_by_role("link", name="Approvals").click()
    page.get_by_role("link", name="Requested a notebook workspace “train”").first.click()
    facts = page.locator("table.charter-fields")
    expect(facts).to_contain_text("4 vCPUs, 28 GB memory, 1 × NVIDIA T4")
    expect(facts).to_contain_text("about $0.53 an hour")
    expect(facts).to_contain_text("Exceeds the project's GPU quota (1 of 0 with this request")
    expect(facts).to_contain_text("Pending approval")
    expect(page.locator("body")).not_to_contain_text("pending_approval")
    page.get_by_label("Comment").fill("No GPUs before the budget review")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator(".callout.rejected")).to_contain_text("No GPUs before the budget review")
    assert_static_assets_load(page)

    # The requester follows the notification to the reason.
    context = browser.new_context(base_url=live_server.url)
    requester = context.new_page()
    try:
        sign_in(requester, "bob", password)
        requester.get_by_role("link", name="Notifications").click()
        note = requester.get_by_role("link", name="admin rejected your request")
        expect(note).to_contain_text("No GPUs before the budget review")
        note.click()
        expect(requester.locator(".callout.rejected")).to_contain_text(
            "No GPUs before the budget review"
        )
        requester.get_by_role("link", name="Open it").click()
        expect(requester).to_have_url(
            f"{live_server.url}/projects/churn/workspaces/{workspace.pk}/"
        )
    finally:
        context.close()

    # The lead filters the audit trail by day and action and follows an object's link.
    lead_context = browser.new_context(base_url=live_server.url)
    lead = lead_context.new_page()
    try:
        sign_in(lead, "alice", password)
        lead.get_by_role("link", name="Audit").click()
        today = timezone.now().date().isoformat()
        lead.locator('input[type="date"][name="since"]').fill(today)
        lead.get_by_label("Action").select_option(label="Workspace: request rejected")
        lead.get_by_role("button", name="Show").click()
        rows = lead.locator("table.audit tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("admin")
        rows.first.get_by_role("link", name="workspace “train”").click()
        expect(lead).to_have_url(f"{live_server.url}/projects/churn/workspaces/{workspace.pk}/")
    finally:
        lead_context.close()
    assert Workspace.objects.get(pk=workspace.pk).state == "rejected"
