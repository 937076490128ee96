"""Stage 1 in the browser: a data scientist writes and submits the charter,
an approver signs it off in the inbox, and the project page shows the gate passed."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from charter.models import CharterStatus, CharterVersion
from governance.models import ApprovalRequest
from portal.management.commands.seed_demo import demo_password
from projects.models import Project, Stage
from tests.e2e.test_login import LOGIN_PATH, sign_in

pytestmark = pytest.mark.e2e

# The demo users, in a project of their own: the demo project's charter is signed off already.
DEMO_PROJECT = "fraud-alerts"
CHARTER_URL = f"/projects/{DEMO_PROJECT}/charter/"


@pytest.fixture
def demo(live_server: Any) -> None:
    from accounts.models import User
    from projects.services import membership_add, project_create

    call_command("seed_demo", stdout=io.StringIO())
    users = {u.username: u for u in User.objects.all()}
    project = project_create(actor=users["lead"], name="Fraud alerts", slug=DEMO_PROJECT)
    for username, role in (("scientist", "data_scientist"), ("approver", "business_approver")):
        membership_add(actor=users["lead"], project=project, user=users[username], role=role)


def fill_charter(page: Page) -> None:
    page.get_by_label("Business problem").fill("Subscribers cancel without warning.")
    page.get_by_label("Objective").fill("Decide whom the retention team calls first each week.")
    page.get_by_label("Question type").select_option("classification")
    page.get_by_label("Target variable").fill("churned")
    page.get_by_label("Success metric").select_option("roc_auc")
    page.get_by_label("Threshold").fill("0.8")
    page.get_by_label("Scope", exact=True).fill("Consumer subscriptions in the EU.")
    page.get_by_label("Out of scope").fill("Business accounts.")
    page.get_by_label("Planned data sources").fill("CRM export\nbilling database")
    page.get_by_label("Deployment mode").select_option("batch")
    page.get_by_label("Stakeholders").fill("Head of retention")
    page.get_by_label("Cost ceiling").fill("1500")


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(rf"{LOGIN_PATH}$"))


def test_charter_is_written_submitted_and_signed_off_in_place(page: Page, demo: None) -> None:
    # The data scientist writes the charter and submits it.
    page.goto(LOGIN_PATH)
    sign_in(page, "scientist", demo_password())
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, scientist")
    page.goto(CHARTER_URL)
    expect(page.get_by_text("This project has no charter yet.")).to_be_visible()

    # An inconsistent charter comes back with the message on its field.
    fill_charter(page)
    page.get_by_label("Threshold").fill("1.5")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".field-threshold .errorlist")).to_have_text(
        "ROC AUC lies in [0, 1]; 1.5 is outside it."
    )
    page.get_by_label("Threshold").fill("0.8")
    page.get_by_role("button", name="Save draft").click()

    expect(page.locator(".messages")).to_contain_text("Charter draft v1 saved.")
    expect(page.locator(".charter-meta .badge")).to_have_text("v1 · Draft")
    expect(page.get_by_label("Target variable")).to_have_value("churned")
    expect(page.get_by_label("Planned data sources")).to_have_value("CRM export\nbilling database")
    page.screenshot(path="/tmp/charter.png", full_page=True)

    page.get_by_role("button", name="Submit for sign-off").click()
    expect(page.locator(".messages")).to_contain_text("Sign off charter v1: sent to the project")
    expect(page.locator(".charter-meta .badge")).to_have_text("v1 · Awaiting sign-off")
    sign_out(page)

    # The business approver signs it off in the inbox, without a reload.
    sign_in(page, "approver", demo_password())
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, approver")
    page.get_by_role("link", name="Approvals").click()
    expect(page).to_have_url(re.compile(r"/approvals/$"))
    row = (
        page.get_by_role("row")
        .filter(has_text="Sign off charter v1")
        .filter(has_text="Fraud alerts")
    )
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Fraud alerts")
    expect(row).to_contain_text("scientist")
    page.screenshot(path="/tmp/inbox.png", full_page=True)

    page.evaluate("window.stillTheSamePage = true")
    inbox_url = page.url
    row.get_by_role("textbox").fill("Clear and measurable.")
    row.get_by_role("button", name="Approve").click()
    expect(row).to_contain_text("Approved")
    expect(row).to_contain_text("by you")
    expect(row.get_by_role("button", name="Approve")).to_have_count(0)
    assert page.url == inbox_url
    assert page.evaluate("window.stillTheSamePage") is True
    page.screenshot(path="/tmp/inbox-decided.png", full_page=True)

    # The project page shows the gate passed and the project in the data stage.
    page.goto(f"/projects/{DEMO_PROJECT}/")
    charter_step = page.locator(".progress .step").first
    expect(charter_step).to_contain_text("Signed off v1")
    expect(charter_step).to_contain_text("by approver")
    expect(page.locator(".progress .step.current")).to_contain_text("Data")
    expect(page.locator("#charter-summary")).to_contain_text("ROC AUC ≥ 0.8")
    page.screenshot(path="/tmp/project.png", full_page=True)

    version = CharterVersion.objects.get(project__slug=DEMO_PROJECT)
    assert version.status == CharterStatus.APPROVED
    assert version.data_sources == ["CRM export", "billing database"]
    assert Project.objects.get(slug=DEMO_PROJECT).stage == Stage.DATA
    approval = ApprovalRequest.objects.get(project__slug=DEMO_PROJECT)
    assert (approval.state, approval.comment) == ("approved", "Clear and measurable.")


def test_rejection_without_comment_is_explained_in_the_row(page: Page, demo: None) -> None:
    from accounts.models import User
    from charter.services import charter_draft_save, charter_submit
    from tests.charter.test_charter import GOOD

    project = Project.objects.get(slug=DEMO_PROJECT)
    scientist = User.objects.get(username="scientist")
    charter_draft_save(actor=scientist, project=project, values=GOOD)
    charter_submit(actor=scientist, project=project)

    page.goto(LOGIN_PATH)
    sign_in(page, "approver", demo_password())
    page.goto("/approvals/")
    row = (
        page.get_by_role("row")
        .filter(has_text="Sign off charter v1")
        .filter(has_text="Fraud alerts")
    )
    row.get_by_role("button", name="Reject").click()
    expect(row.locator(".error")).to_have_text("Say why you reject it.")
    expect(page).to_have_url(re.compile(r"/approvals/$"))
    row.get_by_role("textbox").fill("The scope is too wide.")
    row.get_by_role("button", name="Reject").click()
    expect(row).to_contain_text("Rejected")
    expect(row.locator(".error")).to_have_count(0)
    assert CharterVersion.objects.get(project=project).status == CharterStatus.REJECTED
