"""Browser tests: Debian's Chromium driven by Playwright against a real ``hygieia serve``.

Chromium comes from Debian (``apt-get install chromium``); Playwright's own browser
download is not used. Without Chromium the tests skip locally and fail under CI=true.
Every request the page makes is recorded (``page.requests``) so tests can prove that
no secret leaves the page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import CHROMIUM_ARGS, PageHandle, find_chromium, new_page
from tests.support.server import running_server


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
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


@pytest.fixture
def web(browser: Any, server: str) -> Iterator[PageHandle]:
    yield from new_page(browser, server, viewport={"width": 1280, "height": 900})


@pytest.fixture
def phone(browser: Any, server: str) -> Iterator[PageHandle]:
    yield from new_page(
        browser,
        server,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
