"""Signing in, tokens and signing out, as a person does it in the browser."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from accounts.models import PersonalAccessToken
from portal.management.commands.seed_demo import demo_password
from tests.e2e.conftest import assert_static_assets_load

pytestmark = pytest.mark.e2e

LOGIN_PATH = "/accounts/login/"


@pytest.fixture
def demo(live_server: Any) -> None:
    """The demo users and project that `make run` seeds."""
    call_command("seed_demo", stdout=io.StringIO())


def sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_demo_user_signs_in_and_sees_the_dashboard(page: Page, demo: None) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(rf"{LOGIN_PATH}\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in to Stagegate")).to_be_visible()
    assert_static_assets_load(page)

    sign_in(page, "scientist", demo_password())

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, scientist")
    row = page.get_by_role("row").filter(has_text="Customer churn")
    expect(row).to_have_count(1)
    # The demo charter is signed off and the demo registers a model version:
    # the furthest stage reached is Experiments, so the current one is the next.
    expect(row.get_by_role("cell").nth(1)).to_have_text("5. Deployment")
    expect(row.get_by_role("cell").nth(2)).to_have_text("Data scientist")
    assert_static_assets_load(page)


def test_wrong_password_shows_an_error_and_stays_on_the_login_page(page: Page, demo: None) -> None:
    page.goto(LOGIN_PATH)
    sign_in(page, "scientist", "not-the-password")

    expect(page.locator(".error")).to_contain_text("Please enter a correct username and password")
    expect(page).to_have_url(re.compile(rf"{LOGIN_PATH}$"))
    expect(page.get_by_role("heading", name="Sign in to Stagegate")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value("scientist")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_token_is_shown_once_and_can_be_revoked(page: Page, demo: None) -> None:
    page.goto(LOGIN_PATH)
    sign_in(page, "scientist", demo_password())
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, scientist")

    page.get_by_role("link", name="scientist", exact=True).click()
    expect(page).to_have_url(re.compile(r"/accounts/profile/$"))
    page.get_by_label("Name").fill("notebook")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token")
    expect(token).to_have_text(re.compile(r"^sgp_\S+$"))
    raw = token.inner_text()

    # Reload: the raw token is gone, only its prefix is listed, and no second
    # token was made (the form's POST redirected).
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)
    assert raw not in page.content()
    row = page.get_by_role("row").filter(has_text="notebook")
    expect(row).to_contain_text(f"{raw[:10]}…")
    expect(row).to_contain_text("active")

    row.get_by_role("button", name="Revoke").click()
    expect(page).to_have_url(re.compile(r"/accounts/profile/$"))
    expect(page.locator(".messages")).to_contain_text("Token “notebook” revoked.")
    row = page.get_by_role("row").filter(has_text="notebook")
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    assert PersonalAccessToken.objects.get(name="notebook").revoked_at is not None
    assert PersonalAccessToken.objects.count() == 1


def test_sign_out_ends_the_session(page: Page, demo: None) -> None:
    page.goto(LOGIN_PATH)
    sign_in(page, "scientist", demo_password())
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, scientist")

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(rf"{LOGIN_PATH}$"))
    expect(page.get_by_role("heading", name="Sign in to Stagegate")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(rf"{LOGIN_PATH}\?next=/$"))
