"""Fixtures for browser tests: one `dockyard serve` (auth on) per module, and Debian's
Chromium driven by Playwright (no browser download: the system one, headless)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, Playwright, expect, sync_playwright

from tests.api.conftest import Api, start_api_server
from tests.conftest import ADMIN_PASSWORD, RunningServer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_api_server(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(ui_server: RunningServer) -> Iterator[Api]:
    client = Api(ui_server)
    yield client
    client.close()


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and later tests that call asyncio.run() would find it.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield b
    b.close()


class Dialogs:
    """Every alert/confirm/prompt the page opened (an XSS payload would open one)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, dialog: Dialog) -> None:
        self.seen.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def dialogs() -> Dialogs:
    return Dialogs()


@pytest.fixture
def page(browser: Browser, dialogs: Dialogs, ui_server: RunningServer) -> Iterator[Page]:
    context = browser.new_context(base_url=ui_server.url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    p = context.new_page()
    p.on("dialog", dialogs)
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield p
    context.close()
    assert not errors, f"script errors or CSP violations in the page: {errors}"


class Shots:
    """Screenshots into the test's tmp dir, copied to test-artifacts/ui/ in the repository."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ARTIFACTS / path.name)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path)


def sign_in(page: Page, user: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-user]")).to_have_text(user)


def go(page: Page, hash_path: str) -> None:
    page.goto(f"/#{hash_path}")
    expect(page.locator("main h1")).not_to_have_text(re.compile("Loading"))
