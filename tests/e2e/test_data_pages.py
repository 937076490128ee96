"""The data pages in a real browser: the register form switches its fields by
kind in place (and by a chooser without JavaScript); deletes ask first, and
cancelling keeps the object."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from datasets import services
from datasets.models import DataSource, ValidationRule

pytestmark = [pytest.mark.e2e]


def sign_in(page: Page, password: str, next_url: str) -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_register_form_switches_fields_by_kind_without_reloading(
    page: Page, project: Any, password: str
) -> None:
    sign_in(page, password, "/projects/churn/data/")
    page.get_by_role("link", name="Register your first data source").click()
    host, url = page.get_by_label("Host"), page.get_by_label("URL", exact=True)
    expect(page.locator('fieldset[data-kind="upload"]')).to_be_visible()
    expect(host).to_be_hidden()
    expect(url).to_be_hidden()

    page.evaluate("window.notReloaded = true")
    page.get_by_label("Kind").select_option("postgres")
    expect(host).to_be_visible()
    expect(page.locator('fieldset[data-kind="postgres"]').get_by_label("Password")).to_be_visible()
    expect(page.locator('fieldset[data-kind="upload"]')).to_be_hidden()
    page.get_by_label("Kind").select_option("https")
    expect(url).to_be_visible()
    expect(host).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True
    expect(page.get_by_role("link", name="HTTPS URL")).to_have_attribute("aria-current", "true")

    host_id = page.locator('fieldset[data-kind="postgres"] input[name=host]')
    assert host_id.is_disabled()  # hidden fields are not sent
    page.get_by_label("Name", exact=True).fill("Open data")
    url.fill("https://data.example.com/customers.csv")
    page.get_by_role("button", name="Register").click()
    expect(page.locator(".messages")).to_contain_text("Source “Open data” registered.")
    source = DataSource.objects.get(name="Open data")
    assert source.kind == "https"
    assert source.config == {
        "url": "https://data.example.com/customers.csv",
        "delimiter": "auto",
        "encoding": "auto",
    }


def test_register_form_without_javascript_chooses_the_kind_first(
    browser: Browser, live_server: Any, project: Any, password: str
) -> None:
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, password, "/projects/churn/data/new/")
        expect(page.get_by_label("Host")).to_be_hidden()
        page.get_by_role("link", name="PostgreSQL query").click()
        expect(page).to_have_url(re.compile(r"/data/new/\?kind=postgres$"))
        expect(page.get_by_label("Host")).to_be_visible()
        expect(page.get_by_label("URL", exact=True)).to_be_hidden()
    finally:
        context.close()


@pytest.fixture
def source(project: Any, alice: Any) -> DataSource:
    source = services.source_create(actor=alice, project=project, name="Customers", kind="upload")
    services.rule_create(
        actor=alice, source=source, kind="range", column="age", params={"min": 18, "max": 90}
    )
    return source


def test_a_confirmation_appears_before_a_delete_and_cancelling_keeps_the_object(
    page: Page, source: DataSource, password: str
) -> None:
    sign_in(page, password, f"/projects/churn/data/{source.pk}/")
    expect(page.locator(".rules")).to_contain_text("age between 18 and 90")
    asked: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("link", name="Remove").click()
    expect(page.locator(".rules")).to_contain_text("age between 18 and 90")
    assert asked == ["Remove the rule “age between 18 and 90”?"]
    assert ValidationRule.objects.filter(source=source).count() == 1

    page.once("dialog", dismiss)
    page.get_by_role("link", name="Delete this source").click()
    assert asked[-1].startswith("Delete the source “Customers”")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Customers")
    assert DataSource.objects.filter(pk=source.pk).exists()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Delete this source").click()
    expect(page.locator(".messages")).to_contain_text("Source “Customers” deleted.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Data sources")
    assert not DataSource.objects.filter(pk=source.pk).exists()


def test_without_javascript_a_confirmation_page_asks_and_cancel_keeps_the_object(
    browser: Browser, live_server: Any, source: DataSource, password: str
) -> None:
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, password, f"/projects/churn/data/{source.pk}/")
        page.get_by_role("link", name="Delete this source").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Delete the source “Customers”?")
        page.get_by_role("link", name="Cancel").click()
        expect(page).to_have_url(re.compile(rf"/projects/churn/data/{source.pk}/$"))
        assert DataSource.objects.filter(pk=source.pk).exists()

        page.get_by_role("link", name="Remove").click()
        page.get_by_role("button", name="Delete").click()
        expect(page.locator(".messages")).to_contain_text("removed")
        assert not ValidationRule.objects.filter(source=source).exists()
    finally:
        context.close()


def test_when_data_waits_for_sign_off_the_page_says_why_and_links_the_charter(
    page: Page, project_unsigned: Any, password: str, settings: Any
) -> None:
    settings.STAGEGATE_DATA_REQUIRES_SIGNOFF = True
    sign_in(page, password, "/projects/churn/data/")
    expect(page.locator(".exploratory-notice")).to_contain_text(
        "Registering data waits for the charter's sign-off"
    )
    expect(page.get_by_role("link", name="Register a source")).to_have_count(0)
    page.goto("/projects/churn/data/new/")
    expect(page.get_by_role("alert")).to_contain_text("Registering data needs a signed-off charter")
    expect(page.get_by_role("button", name="Register")).to_have_count(0)
    page.get_by_role("link", name="Open the charter").first.click()
    expect(page).to_have_url(re.compile(r"/projects/churn/charter/$"))
    assert not DataSource.objects.exists()
