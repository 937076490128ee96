"""The deployment approval page in a real browser, as the business approver:
the evidence in words and plotly charts, then the sign-off that makes the
version the champion."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps as django_apps
from playwright.sync_api import Page, expect

from deployments import gate
from deployments.gate_models import DeploymentRequest, RequestState
from experiments.models import ModelAlias
from governance.models import ApprovalState
from governance.services import approval_decide
from tests.deployments import gate_data
from tests.experiments import jobs_data
from tests.workspaces.conftest import seed_migration

pytestmark = [pytest.mark.e2e]
DRAWN = 30_000


def sign_in(page: Page, username: str, password: str, next_url: str) -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_the_business_approver_reads_the_evidence_and_signs_off(
    page: Page, project: Any, alice: Any, bob: Any, dave: Any, password: str
) -> None:
    # The catalog the cost is priced from (a transactional test before may have flushed it).
    seed_migration.seed(django_apps, None)
    split = jobs_data.ready_split(project=project, actor=alice)
    vera = gate_data.validator(project)
    old = gate_data.version(project, bob)
    gate.alias_set(actor=bob, version=old, alias="champion")
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.91, champion=0.86, split=split)
    request = gate.deployment_request_create(
        actor=bob,
        version=version,
        target="realtime",
        rollout="canary",
        canary_percent=10,
        baking_minutes=60,
        reason="It finds more of the customers who leave.",
        user_impact="The retention team calls different customers.",
    )
    first = gate.current_step(request)
    approval_decide(actor=vera, approval_id=first.pk, approve=True, comment="Sound.")

    url = f"/projects/churn/deployments/{request.pk}/"
    sign_in(page, "dave", password, url)
    expect(page.get_by_role("heading", name="Put churn version 2 into production?")).to_be_visible()
    expect(page.locator("#result")).to_contain_text("0.9100")
    expect(page.locator("#result")).to_contain_text("meets the threshold")
    expect(page.locator("#champion")).to_contain_text("version 1 reaches 0.8600")
    expect(page.locator("#what-changes")).to_contain_text("First 10 % of requests")
    expect(page.locator("#what-changes")).to_contain_text("The retention team calls")
    expect(page.locator("#cost")).to_contain_text("a month")
    lineage = page.locator("#evidence-lineage")
    expect(lineage).to_contain_text("Customers, version 1")
    expect(lineage).to_contain_text(f"digest {split.parent.sha256[:12]}")
    expect(lineage).to_contain_text("fingerprint")
    # Both charts are drawn by plotly.
    expect(page.locator("[data-figure='fig-comparison'] .main-svg").first).to_be_visible(
        timeout=DRAWN
    )
    expect(page.locator("[data-figure='fig-seg-1'] .main-svg").first).to_be_visible(timeout=DRAWN)
    expect(page.locator("#decision")).to_contain_text("Approved by vera")
    page.get_by_label("Comment").fill("Go ahead.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#request-state")).to_have_text("Approved")
    expect(page.locator("#decision")).to_contain_text("version 2 is now the champion")
    assert DeploymentRequest.objects.get(pk=request.pk).state == RequestState.APPROVED
    assert ModelAlias.objects.get(alias="champion").version_id == version.pk
    assert ModelAlias.objects.get(alias="previous").version_id == old.pk
    assert first.next_step.state == ApprovalState.APPROVED  # type: ignore[union-attr]
