"""Browser tests: Debian's Chromium driven by Playwright against a real ``hygieia serve``.

Chromium comes from Debian (``apt-get install chromium``); Playwright's own browser
download is not used. Without Chromium the tests skip locally and fail under CI=true.
Every request the page makes is recorded (``page.requests``) so tests can prove that
no secret leaves the page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import running_server

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
ARGON_TIMEOUT_MS = 60_000


def _chromium() -> str | None:
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _chromium()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium chromium-driver)")
    return path


@pytest.fixture(scope="session")
def web_bundle() -> None:
    """The JS bundle must exist; build it (a no-op when up to date)."""
    from hygieia.web.build import build

    build()


@pytest.fixture(scope="session")
def browser(chromium_path: str, web_bundle: None) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("playwright not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("hygieia-web")
    with running_server(data_dir) as base_url:
        yield base_url


@dataclass
class Captured:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PageHandle:
    page: Any
    base_url: str
    requests: list[Captured] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def goto(self, path: str = "/") -> None:
        self.page.goto(self.base_url + path)
        self.page.wait_for_selector("body[data-ready=true]")

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def crypto(self, expression: str, arg: Any = None) -> Any:
        """Evaluate ``async (c, arg) => ...`` with the page's crypto recipes."""
        # Built here, not eval'd in the page: the page's CSP forbids eval.
        script = (
            "async (arg) => { const c = (await import('/app/main.js')).crypto;"
            f" return await ({expression})(c, arg); }}"
        )
        return self.page.evaluate(script, arg)


def _new_page(browser: Any, base_url: str, **context_args: Any) -> Iterator[PageHandle]:
    context = browser.new_context(accept_downloads=True, **context_args)
    context.set_default_timeout(ARGON_TIMEOUT_MS)
    page = context.new_page()
    handle = PageHandle(page=page, base_url=base_url)

    def on_request(request: Any) -> None:
        try:
            body = request.post_data_buffer or b""
        except Exception:  # a body Playwright can't hand over (e.g. a large Blob)
            body = b""
        handle.requests.append(
            Captured(request.method, request.url, dict(request.headers), bytes(body))
        )

    page.on("request", on_request)
    page.on("pageerror", lambda exc: handle.problems.append(f"pageerror: {exc}"))

    def on_console(msg: Any) -> None:
        # A refused request (401 for a wrong password) logs "Failed to load resource":
        # expected; anything else logged as an error (CSP violations included) is not.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            handle.problems.append(f"console: {msg.text}")

    page.on("console", on_console)
    try:
        yield handle
    finally:
        context.close()


@pytest.fixture
def web(browser: Any, server: str) -> Iterator[PageHandle]:
    yield from _new_page(browser, server, viewport={"width": 1280, "height": 900})


@pytest.fixture
def phone(browser: Any, server: str) -> Iterator[PageHandle]:
    yield from _new_page(
        browser,
        server,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
