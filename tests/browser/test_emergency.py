"""Emergency access in the browser (protocol §8): Settings → Emergency access on both
sides, against the app served in this process so that the test moves its clock (the
waiting period passes without a sleep). The owner names a contact, sees the request,
the wait passes, the contact opens the owner's record byte-identical in the read-only
view; removing the contact closes it at once. The vault key never leaves a page in
the clear."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient
from hygieia.config import Settings
from tests.browser import flows
from tests.support.browser import PageHandle, new_page
from tests.support.live import LiveApp, live_app

pytestmark = pytest.mark.browser

PW = "emergency web passphrase 9 ✓"
ANN, BOB = "ann-em@example.org", "bob-em@example.org"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    tmp = tmp_path_factory.mktemp("emergency-web")
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}", store="memory")
    with live_app(settings) as app:
        yield app


@pytest.fixture(scope="module")
def server(live: LiveApp) -> str:
    """The conftest's page fixture (``web``) opens this module's server."""
    return live.url


@pytest.fixture
def bob_page(browser: Any, live: LiveApp) -> Iterator[PageHandle]:
    yield from new_page(browser, live.url, viewport={"width": 1280, "height": 900})


def _settings(web: PageHandle) -> None:
    web.page.locator("#nav").get_by_role("button", name="Settings").click()
    web.page.wait_for_selector("body[data-emergency='ready']", state="attached")


def test_emergency_access_in_the_browser(
    web: PageHandle, bob_page: PageHandle, live: LiveApp, tmp_path: Path
) -> None:
    bob = bob_page
    bob.goto()
    flows.signup(bob, BOB, PW)
    web.goto()
    flows.signup(web, ANN, PW)
    data = bytes(range(256)) * 1000 + b"emergency record"
    (tmp_path / "letter.bin").write_bytes(data)
    flows.open_upload(web)
    web.page.set_input_files("#up-file", str(tmp_path / "letter.bin"))
    flows.fill_upload_form(web, title="Discharge letter")
    record = flows.submit_upload(web)

    # Ann names Bob with a 3-day wait (her password seals her vault key for him).
    _settings(web)
    web.page.locator("#em-email").fill(BOB)
    web.page.locator("#em-wait").fill("3")
    web.page.locator("#em-password").fill(PW)
    web.page.locator("#em-submit").click()
    web.page.wait_for_selector(f"#em-contacts li[data-contact='{BOB}'][data-status='idle']")
    assert "is an emergency contact" in flows.flash_text(web)

    # Bob asks; Ann is told (the notice and her contact list) and may deny.
    _settings(bob)
    bob.page.locator(f"#em-access li[data-owner='{ANN}']").get_by_role(
        "button", name="Request access"
    ).click()
    bob.page.wait_for_selector(f"#em-access li[data-owner='{ANN}'][data-status='requested']")
    _settings(web)
    web.page.wait_for_selector(f"#em-contacts li[data-contact='{BOB}'][data-status='requested']")
    assert BOB in web.page.locator("#emergency-notice").inner_text()

    # The wait passes: Bob opens Ann's record, byte for byte, read-only.
    live.clock.advance(days=3, minutes=1)
    _settings(bob)
    item = bob.page.locator(f"#em-access li[data-owner='{ANN}'][data-status='granted']")
    item.get_by_role("button", name="Open their records").click()
    bob.page.wait_for_selector("#view-emergency:not([hidden])")
    row = bob.page.locator(f"#em-records li[data-id='{record['id']}']")
    assert "Discharge letter" in row.inner_text()
    with bob.page.expect_download() as dl:
        row.get_by_role("button", name="Download").click()
    assert Path(dl.value.path()).read_bytes() == data
    # Read-only: no way to delete, share or upload in this view.
    view = bob.page.locator("#view-emergency")
    for name in ("Delete", "Share", "Upload"):
        assert view.get_by_role("button", name=name).count() == 0

    # Ann removes Bob: his next download is refused at once.
    _settings(web)
    web.page.locator(f"#em-contacts li[data-contact='{BOB}']").get_by_role(
        "button", name="Remove"
    ).click()
    web.page.wait_for_selector("#em-contacts-empty:not([hidden])")
    row.get_by_role("button", name="Download").click()
    assert "not found" in flows.flash_text(bob).lower()

    # Neither page ever sent Ann's vault key or plaintext in the clear.
    vault_key = acct.login(HygieiaClient(live.url), ANN, PW).vault_key
    secrets: dict[str, bytes | str] = {
        "vault_key": vault_key,
        "vault_passphrase": crypto.vault_passphrase(vault_key),
        "content": data[-64:],
        "title": "Discharge letter",
    }
    for page in (web, bob):
        flows.assert_never_sent(page, secrets)
        assert page.problems == []
