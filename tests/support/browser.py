"""Driving Debian's Chromium with Playwright: launch arguments and a recorded page.

Every request a page makes is recorded (``PageHandle.requests``) so tests can prove
that no secret leaves the page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def find_chromium() -> str | None:
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


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


def new_page(browser: Any, base_url: str, **context_args: Any) -> Generator[PageHandle, None, None]:
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
