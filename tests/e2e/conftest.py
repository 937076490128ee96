"""Headless Chromium against pytest-django's live server.

The browser is Debian's /usr/bin/chromium, not one Playwright downloads: the
test command installs it with the other system packages. The live server runs
on a transactional database, so rows a test writes are visible to it, and it
serves static files from the finders (STATIC_MANIFEST=false in the tests).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Gitignored: a picture of the page at the moment a test failed.
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"

reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, Any]:
    # Keep each phase's report on the test, so `page` knows at teardown whether it failed.
    report = yield
    item.stash.setdefault(reports_key, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the e2e tests need Debian's chromium package "
            "(scripts/install-system-deps.sh installs it).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies), with the live server as base URL."""
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            call = request.node.stash.get(reports_key, {}).get("call")
            if call is not None and call.failed:
                SCREENSHOTS.mkdir(exist_ok=True)
                name = re.sub(r"[^\w.-]+", "_", request.node.name)
                page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        finally:
            context.close()


def assert_static_assets_load(page: Page) -> None:
    """Every stylesheet and script of the page answers 200, and both take effect."""
    urls = page.eval_on_selector_all(
        "link[rel=stylesheet], script[src]", "els => els.map(e => e.href || e.src)"
    )
    assert any(url.endswith(".css") for url in urls), urls
    assert any("htmx" in url for url in urls), urls
    for url in urls:
        response = page.request.get(url)
        assert response.status == 200, f"{url} answered {response.status}"
    # The stylesheet applies (the dark top bar) and htmx has run.
    expect(page.locator("header.topbar")).to_have_css("background-color", "rgb(18, 38, 63)")
    assert page.evaluate("typeof window.htmx") == "object"
