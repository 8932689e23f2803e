"""Passkeys in Chromium (protocol §10, "Passkeys"), with Chromium's virtual WebAuthn
authenticator (DevTools protocol, through Playwright's CDP session): enrol a passkey from
Settings, log out, log in with it; a wrong authenticator and an absent one are refused.

The app is served as http://localhost:PORT: WebAuthn refuses IP addresses as RP IDs, and
localhost is a secure context. The server's passkey timeout is cut to 3 s here, so the
"no authenticator" case ends without a long wait.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.browser import flows
from tests.support.browser import PageHandle, new_page
from tests.support.server import running_server
from tests.support.virtual_authenticator import add_authenticator, webauthn_session

pytestmark = pytest.mark.browser

PASSWORD = "passkeys in the browser ☂ 2026"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's server, by its host name (the default allowed hosts include it)."""
    data_dir = tmp_path_factory.mktemp("hygieia-passkeys")
    with running_server(data_dir, PASSKEY_TIMEOUT_SECONDS="3") as base_url:
        yield base_url.replace("://127.0.0.1:", "://localhost:")


@pytest.fixture
def web(browser: Any, server: str) -> Iterator[PageHandle]:
    yield from new_page(browser, server, viewport={"width": 1280, "height": 900})


def _to_factor_step(web: PageHandle, email: str) -> None:
    flows.submit_login(web, email, PASSWORD)
    web.page.wait_for_selector("#form-factor:not([hidden])")
    assert web.page.locator("#nav").is_hidden()  # no session yet
    assert web.page.locator("#factor-passkey").is_visible()


def _use_passkey_refused(web: PageHandle, expected: str) -> None:
    web.page.locator("#flash").evaluate("e => { e.hidden = true; e.textContent = ''; }")
    web.page.get_by_role("button", name="Use passkey").click()
    assert expected in flows.flash_text(web)
    assert web.page.locator("#form-factor").is_visible()
    assert web.page.locator("#nav").is_hidden()


def test_enrol_log_in_and_refuse_wrong_or_absent_authenticators(web: PageHandle) -> None:
    page = web.page
    web.goto()
    assert page.url.startswith("http://localhost:")
    cdp = webauthn_session(page)
    device = add_authenticator(cdp)
    email = "passkey@example.org"
    flows.signup(web, email, PASSWORD)

    # Enrol from Settings: the authenticator makes a key, the server keeps its public half.
    page.get_by_role("button", name="Settings").click()
    page.wait_for_selector("#factors-empty:not([hidden])")
    page.locator("#passkey-label").fill("Laptop key")
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_selector("#backup-codes:not([hidden])")  # the first factor brings them
    assert page.locator("#backup-codes-list li").count() == 10
    page.get_by_role("button", name="I saved them").click()
    assert "Laptop key · passkey" in page.locator("#factors-list li").inner_text()
    (enrolled,) = device.credentials()
    assert enrolled["rpId"] == "localhost" and enrolled["signCount"] == 1
    (added,) = flows.json_bodies(web, "/auth/factors/passkey")
    assert set(added) == {"label", "credential"}
    assert added["credential"]["id"] == enrolled["credentialId"].rstrip("=").replace(
        "+", "-"
    ).replace("/", "_")
    web.shot("passkey-enrolled")

    # Log out; log in: the password, then the passkey.
    flows.logout(web)
    _to_factor_step(web, email)
    web.shot("passkey-login-step")
    page.get_by_role("button", name="Use passkey").click()
    flows.list_ready(web)
    (used,) = flows.json_bodies(web, "/auth/login/factor")
    assert used["method"] == "passkey" and "credential" in used
    assert device.credentials()[0]["signCount"] == 2

    # A wrong authenticator: another device holding the same credential id under
    # another key (a clone that never saw the real key). The browser answers, the
    # server refuses the signature.
    flows.logout(web)
    device.remove()
    forged_key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = forged_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    clone = add_authenticator(cdp)
    cdp.send(
        "WebAuthn.addCredential",
        {
            "authenticatorId": clone.id,
            "credential": {
                "credentialId": enrolled["credentialId"],
                "isResidentCredential": False,
                "rpId": "localhost",
                "privateKey": base64.b64encode(pkcs8).decode(),
                "signCount": 100,
            },
        },
    )
    _to_factor_step(web, email)
    _use_passkey_refused(web, "did not accept that passkey")
    sent = flows.json_bodies(web, "/auth/login/factor")
    assert len(sent) == 2 and sent[-1]["method"] == "passkey"  # it went, and was refused

    # A fresh authenticator with no passkey for this account: the browser finds none.
    clone.remove()
    fresh = add_authenticator(cdp)
    _use_passkey_refused(web, "No passkey answered")
    # No authenticator at all: the request times out (3 s here) with the same message.
    fresh.remove()
    _use_passkey_refused(web, "No passkey answered")
    assert len(flows.json_bodies(web, "/auth/login/factor")) == 2  # nothing more was sent
    web.shot("passkey-refused")

    # The right device again (its key re-imported) still works after all that.
    back = add_authenticator(cdp)
    cdp.send(
        "WebAuthn.addCredential",
        {"authenticatorId": back.id, "credential": {**_exported(enrolled), "signCount": 50}},
    )
    page.get_by_role("button", name="Use passkey").click()
    flows.list_ready(web)

    # Remove it with the password and the passkey itself (the code field left empty):
    # first with no authenticator present (refused, still signed in), then with it.
    page.get_by_role("button", name="Settings").click()
    page.wait_for_selector("#form-factor-proof:not([hidden])")
    back.remove()
    page.locator("#fp-password").fill(PASSWORD)
    page.locator("#factors-list").get_by_role("button", name="Remove").click()
    page.locator("#confirm-ok").click()
    assert "No passkey answered" in flows.flash_text(web)
    assert page.locator("#nav").is_visible() and page.locator("#factors-list li").count() == 1
    again = add_authenticator(cdp)
    cdp.send(
        "WebAuthn.addCredential",
        {"authenticatorId": again.id, "credential": {**_exported(enrolled), "signCount": 60}},
    )
    page.locator("#factors-list").get_by_role("button", name="Remove").click()
    page.locator("#confirm-ok").click()
    page.wait_for_selector("#factors-empty:not([hidden])")
    (removal,) = flows.json_bodies(web, "/remove")
    assert removal["factor"]["method"] == "passkey" and set(removal) == {"auth_key", "factor"}
    flows.logout(web)
    flows.login(web, email, PASSWORD)  # the password alone again
    assert web.problems == []


def _exported(credential: dict[str, Any]) -> dict[str, Any]:
    keep = ("credentialId", "isResidentCredential", "rpId", "privateKey", "userHandle")
    return {k: credential[k] for k in keep if k in credential}
