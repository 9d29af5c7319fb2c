"""Browser fixtures for the web console (imported by the test module):
Debian's Chromium driven by Playwright (pytest-playwright's launch options,
e.g. `--headed`, `--slowmo`, still apply), one fresh browser context per test
with its own client address, and page helpers.

Playwright is started once per test module and stopped after it, so its
event loop never overlaps the rest of the suite.
"""

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from conftest import BASE, ROOT, random_ip

CHROMIUM = os.environ.get("INTERLOG_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "tests" / "browser" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CONSOLE = BASE + "/console/"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Playwright's own browser download is not used: Debian's package is.
    # Chromium refuses to run as root with its sandbox on.
    assert shutil.which(CHROMIUM), "scripts/bootstrap.sh --python installs Debian's chromium"
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox", "--disable-gpu"]}


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright, browser_type_launch_args):
    b = playwright.chromium.launch(**browser_type_launch_args)
    yield b
    b.close()


class Console:
    """One browser tab on the console, from its own client address."""

    def __init__(self, browser, viewport=DESKTOP):
        self.ip = random_ip()
        self.context = browser.new_context(viewport=viewport, extra_http_headers={"CF-Connecting-IP": self.ip})
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(15_000)

    def open(self, hash_: str = "") -> Page:
        self.page.goto(CONSOLE + hash_)
        return self.page

    def sign_in(self, key: str) -> Page:
        page = self.open()
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    def go(self, hash_: str) -> Page:
        self.page.evaluate("h => { location.hash = h }", hash_)
        return self.page

    def confirm(self, action: str) -> None:
        dialog = self.page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name=action, exact=True).click()
        expect(dialog).to_have_count(0)

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        size = self.page.viewport_size
        path = SHOTS / f"{name}-{size['width']}x{size['height']}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser):
    c = Console(browser)
    yield c
    c.close()


@pytest.fixture
def open_console(browser):
    """Opens further tabs (e.g. at another viewport); all closed after the test."""
    made = []

    def make(viewport=DESKTOP) -> Console:
        c = Console(browser, viewport)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
