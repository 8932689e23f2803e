"""Leaving, in Chromium: Settings exports the key only under a passphrase of its own,
offers the recovery kit and the CAR before "Delete account", refuses a wrong password
or email, then deletes the account (its record unpinned from the server's store); the
email signs up again and logs in without a salt warning."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.storage import LocalBlobStore
from tests.browser import flows
from tests.support.browser import PageHandle, new_page
from tests.support.server import running_server
from tests.support.virtual_authenticator import add_authenticator, webauthn_session

pytestmark = pytest.mark.browser

EMAIL = "leaving.web@example.org"
PASSWORD = "a browser that leaves for good 5"
EXPORT_PP = "copper kettles hum beneath violet dunes 63"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("leaving") / "data"
    with running_server(data_dir) as url:
        yield url, data_dir


@pytest.fixture(scope="module")
def server(served: tuple[str, Path]) -> str:
    """The conftest's page fixture (``web``) opens this module's server."""
    return served[0]


def _pins(data_dir: Path) -> set[str]:
    return set(LocalBlobStore(data_dir / "blocks").pins())


def _export(web: PageHandle, phrase: str) -> None:
    page = web.page
    page.locator("#ex-pass").fill(phrase)
    page.locator("#ex-pass2").fill(phrase)
    page.get_by_role("button", name="Export secret key").click()


def _deletion(web: PageHandle, password: str, email: str) -> str:
    page = web.page
    page.locator("#del-password").fill(password)
    page.locator("#del-email").fill(email)
    page.get_by_role("button", name="Delete my account").click()
    return flows.flash_text(web)


def test_export_passphrase_then_delete_account(
    web: PageHandle, served: tuple[str, Path], tmp_path: Path
) -> None:
    page = web.page
    _, data_dir = served
    web.goto()
    flows.signup(web, EMAIL, PASSWORD)
    before = _pins(data_dir)
    flows.open_upload(web)
    src = tmp_path / "scan.txt"
    src.write_text("a record that leaves with its owner")
    page.set_input_files("#up-file", str(src))
    flows.fill_upload_form(web, title="Leaving record")
    record = flows.submit_upload(web)
    (cid,) = _pins(data_dir) - before
    page.get_by_role("button", name="Settings").click()
    page.wait_for_selector("#view-settings:not([hidden])")

    # --- key export: the account password (even with spaces around it) and weak ones
    # are refused; nothing is downloaded for them.
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    for phrase, why in (
        (PASSWORD, "account password"),
        (f"  {PASSWORD} ", "account password"),
        ("password123456789", "too easy to guess"),
        ("short", "at least 15 characters"),
    ):
        _export(web, phrase)
        assert why in flows.flash_text(web), phrase
        page.locator("#flash").evaluate("e => { e.hidden = true; }")
    assert downloads == []
    with page.expect_download() as dl:
        _export(web, EXPORT_PP)
    assert "not your account password" in flows.flash_text(web)
    exported = tmp_path / "secret.asc"
    dl.value.save_as(exported)
    armored = exported.read_text()
    assert crypto.unlock_with_passphrase(armored, EXPORT_PP) is not None
    with pytest.raises(crypto.DecryptionError):
        crypto.unlock_with_passphrase(armored, PASSWORD)

    # --- "Delete account" offers the kit and the CAR first.
    web.shot("delete-account")
    card = page.locator("#form-delete")
    with page.expect_download() as kit_dl:
        card.get_by_role("button", name="Download recovery kit").click()
    kit = json.loads(Path(kit_dl.value.path()).read_text())
    assert kit["account"]["email"] == EMAIL and len(kit["records"]) == 1
    with page.expect_download(timeout=60_000) as car_dl:
        card.get_by_role("button", name="Download all records as CAR").click()
    assert Path(car_dl.value.path()).stat().st_size > 0

    # A wrong password, or the wrong email typed: nothing is deleted, nothing is sent.
    assert "not correct" in _deletion(web, "not the password at all", EMAIL)
    assert "Type" in _deletion(web, PASSWORD, "someone.else@example.org")
    assert flows.json_bodies(web, "/auth/account/delete") == []
    assert cid in _pins(data_dir)

    # The right ones: gone, back at the log-in, the record unpinned.
    assert "was deleted" in _deletion(web, PASSWORD, EMAIL.upper())
    page.wait_for_selector("#view-auth:not([hidden])")
    (body,) = flows.json_bodies(web, "/auth/account/delete")
    assert set(body) == {"auth_key", "factor"} and body["factor"] is None
    me = kit["account"]
    keys = crypto.derive_keys(
        PASSWORD, base64.b64decode(me["salt"]), crypto.KdfParams.from_dict(me["kdf"])
    )
    assert base64.b64decode(body["auth_key"]) == keys.auth_key
    assert cid not in _pins(data_dir)
    assert record["id"] not in flows.shown_ids(web)
    flows.submit_login(web, EMAIL, PASSWORD)
    assert "incorrect" in flows.flash_text(web)

    # The email signs up again, and logs in again with no "salt changed" question.
    flows.signup(web, EMAIL, "the same email starts over 12")
    flows.logout(web)
    flows.login(web, EMAIL, "the same email starts over 12")
    assert flows.shown_ids(web) == []
    flows.assert_never_sent(web, {"password": PASSWORD, "export passphrase": EXPORT_PP})


def test_delete_asks_for_the_second_factor(web: PageHandle, served: tuple[str, Path]) -> None:
    """An account with TOTP (enrolled through the SDK; pyotp is the app): the form asks
    for a code, refuses a wrong one, and deletes with a current one."""
    page = web.page
    url, _ = served
    email, password = "factor.leaving@example.org", "leaving with a second factor 3"
    web.goto()
    flows.signup(web, email, password)
    with HygieiaClient(url) as api:
        api.token = acct.login(api, email, password).token
        started = api.start_totp("Phone")
        totp = pyotp.TOTP(started.secret)
        api.confirm_totp(started.factor_id, totp.now())
    page.get_by_role("button", name="Settings").click()
    page.wait_for_selector("#view-settings:not([hidden])")
    assert "authenticator" in _deletion(web, password, email)
    assert page.locator("#del-factor").is_visible()
    assert flows.json_bodies(web, "/auth/account/delete") == []
    valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)
    page.locator("#del-factor").fill(wrong)
    assert "not right" in _deletion(web, password, email)
    assert page.locator("#view-settings").is_visible()  # still logged in
    page.locator("#del-factor").fill(totp.at(time.time() + 30))
    assert "was deleted" in _deletion(web, password, email)
    page.wait_for_selector("#view-auth:not([hidden])")
    bodies = flows.json_bodies(web, "/auth/account/delete")
    assert [b["factor"]["method"] for b in bodies] == ["totp", "totp"]
    with HygieiaClient(url) as api, pytest.raises(ApiError):
        acct.login(api, email, password)


@pytest.fixture(scope="module")
def served_localhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server by the host name ``localhost``: WebAuthn takes no IP address as its RP."""
    data_dir = tmp_path_factory.mktemp("leaving-passkey") / "data"
    with running_server(data_dir, PASSKEY_TIMEOUT_SECONDS="3") as url:
        yield url.replace("://127.0.0.1:", "://localhost:")


def test_delete_with_a_passkey(browser: Any, served_localhost: str) -> None:
    """An account whose factor is a passkey (Chromium's virtual authenticator): with no
    authenticator present nothing is deleted and the page stays signed in; with it, the
    password and the passkey delete the account."""
    for web in new_page(browser, served_localhost, viewport={"width": 1280, "height": 900}):
        page = web.page
        email, password = "passkey.leaving@example.org", "leaving with a passkey 2026"
        web.goto()
        cdp = webauthn_session(page)
        device = add_authenticator(cdp)
        flows.signup(web, email, password)
        page.get_by_role("button", name="Settings").click()
        page.wait_for_selector("#factors-empty:not([hidden])")
        page.locator("#passkey-label").fill("Laptop key")
        page.get_by_role("button", name="Add a passkey").click()
        page.wait_for_selector("#backup-codes:not([hidden])")
        page.get_by_role("button", name="I saved them").click()
        (enrolled,) = device.credentials()

        device.remove()  # no authenticator: the browser finds no passkey
        assert "No passkey answered" in _deletion(web, password, email)
        assert flows.json_bodies(web, "/auth/account/delete") == []
        assert page.locator("#nav").is_visible()

        back = add_authenticator(cdp)
        credential = {k: enrolled[k] for k in ("credentialId", "rpId", "privateKey")}
        cdp.send(
            "WebAuthn.addCredential",
            {
                "authenticatorId": back.id,
                "credential": {**credential, "isResidentCredential": False, "signCount": 9},
            },
        )
        page.locator("#flash").evaluate("e => { e.hidden = true; }")
        assert "was deleted" in _deletion(web, password, email)
        page.wait_for_selector("#view-auth:not([hidden])")
        (body,) = flows.json_bodies(web, "/auth/account/delete")
        assert body["factor"]["method"] == "passkey" and "credential" in body["factor"]
        flows.submit_login(web, email, password)
        assert "incorrect" in flows.flash_text(web)
