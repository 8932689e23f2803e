"""Account flows end to end in the browser, and what leaves the page while they run."""

from __future__ import annotations

import base64

import pytest

from hygieia import crypto
from tests.browser import flows

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple ☃"
NEW_PASSWORD = "a brand new passphrase 2"
RECOVERED_PASSWORD = "recovered passphrase 33"


def flows_fingerprint(web) -> str:
    return (web.page.locator("#set-fingerprint").text_content() or "").replace(" ", "").upper()


def _rewrapped_vault_key(web, path: str, password: str) -> tuple[bytes, bytes]:
    """(vault key, wrap key): the vault key the page sent to ``path`` (its only request
    there), unwrapped with the wrap key derived from ``password`` and the new salt sent
    alongside."""
    (body,) = flows.json_bodies(web, path)
    keys = crypto.derive_keys(password, base64.b64decode(body["new_salt"]))
    wrapped = base64.b64decode(body["new_wrapped_vault_key"])
    return crypto.unwrap_vault_key(wrapped, keys.wrap_key), keys.wrap_key


def test_signup_login_password_change_recover_export(web, tmp_path):
    page = web.page
    web.goto()
    web.shot("login")
    email = "alice@example.org"
    code = flows.signup(web, email, PASSWORD, shots=True)
    assert len(code) == 39 and code.count("-") == 7
    assert "Account created" in flows.flash_text(web)
    web.shot("records-empty")

    # What the server got at sign-up: KDF outputs and locked keys, never the inputs.
    (signup,) = flows.json_bodies(web, "/auth/signup")
    assert set(signup) == {
        "email", "kdf", "salt", "recovery_salt", "auth_key", "public_key",
        "locked_secret_key", "wrapped_vault_key", "recovery_wrapped_vault_key",
        "recovery_verifier",
    }  # fmt: skip
    assert signup["kdf"] == crypto.DEFAULT_KDF.to_dict()  # the page and Python agree
    keys = crypto.derive_keys(PASSWORD, base64.b64decode(signup["salt"]))
    assert base64.b64decode(signup["auth_key"]) == keys.auth_key
    vault_key = crypto.unwrap_vault_key(
        base64.b64decode(signup["wrapped_vault_key"]), keys.wrap_key
    )
    code_bytes = crypto.parse_recovery_code(code)
    rk = crypto.derive_recovery_keys(code_bytes, base64.b64decode(signup["recovery_salt"]))
    assert base64.b64decode(signup["recovery_verifier"]) == rk.auth_key
    assert (
        crypto.unwrap_vault_key(base64.b64decode(signup["recovery_wrapped_vault_key"]), rk.wrap_key)
        == vault_key
    )
    # The browser-made key unlocks in Python with the vault key hex (protocol §2).
    assert crypto.unlock(signup["locked_secret_key"], vault_key) is not None
    # ...and is in the profile every tool reads (inspect_keys refuses anything else).
    info = crypto.inspect_keys(signup["public_key"], signup["locked_secret_key"])
    assert info.fingerprint.upper() == flows_fingerprint(web)

    # Lock by hand, unlock with the password.
    page.get_by_role("button", name="Lock").click()
    page.wait_for_selector("#view-locked:not([hidden])")
    web.shot("locked")
    page.locator("#unlock-password").fill("wrong password!!")
    page.get_by_role("button", name="Unlock").click()
    assert "Wrong password" in flows.flash_text(web)
    page.locator("#unlock-password").fill(PASSWORD)
    page.get_by_role("button", name="Unlock").click()
    page.wait_for_selector("#view-records:not([hidden])")

    # Log out, log back in; a wrong password is refused.
    flows.logout(web)
    page.locator("#login-email").fill(email)
    page.locator("#login-password").fill("not my password")
    page.locator("#form-login").get_by_role("button", name="Log in").click()
    assert "incorrect" in flows.flash_text(web)
    flows.login(web, email, PASSWORD)

    # Change password in Settings.
    page.get_by_role("button", name="Settings").click()
    page.wait_for_selector("#view-settings:not([hidden])")
    web.shot("settings")
    page.locator("#pw-current").fill(PASSWORD)
    page.locator("#pw-new").fill(NEW_PASSWORD)
    page.locator("#pw-new2").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    assert "Password changed" in flows.flash_text(web)
    changed_vault_key, new_wrap_key = _rewrapped_vault_key(web, "/auth/password", NEW_PASSWORD)
    assert changed_vault_key == vault_key

    # Key export: gpg-importable, locked with the chosen passphrase.
    page.locator("#ex-pass").fill("quiet harbour lamps 4 export")
    page.locator("#ex-pass2").fill("quiet harbour lamps 4 export")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export secret key").click()
    exported = tmp_path / "secret.asc"
    dl.value.save_as(exported)
    armored = exported.read_text()
    assert armored.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert crypto.unlock_with_passphrase(armored, "quiet harbour lamps 4 export") is not None

    flows.logout(web)
    # The old password no longer works; the new one does.
    page.locator("#login-email").fill(email)
    page.locator("#login-password").fill(PASSWORD)
    page.locator("#form-login").get_by_role("button", name="Log in").click()
    assert "incorrect" in flows.flash_text(web)
    flows.login(web, email, NEW_PASSWORD)
    flows.logout(web)

    # Recover with the code: a new password, the same vault key.
    page.get_by_role("tab", name="Recover").click()
    page.locator("#recover-email").fill(email)
    page.locator("#recover-code").fill(code.lower().replace("-", " "))
    page.locator("#recover-password").fill(RECOVERED_PASSWORD)
    page.locator("#recover-password2").fill(RECOVERED_PASSWORD)
    web.shot("recover")
    page.get_by_role("button", name="Set new password").click()
    page.wait_for_selector("#view-records:not([hidden])")
    recovered_vault_key, _ = _rewrapped_vault_key(web, "/auth/recover/complete", RECOVERED_PASSWORD)
    assert recovered_vault_key == vault_key
    flows.logout(web)
    flows.login(web, email, RECOVERED_PASSWORD)

    flows.assert_never_sent(
        web,
        {
            "password": PASSWORD,
            "new password": NEW_PASSWORD,
            "recovered password": RECOVERED_PASSWORD,
            "quiet harbour lamps 4 export": "quiet harbour lamps 4 export",
            "recovery code": code,
            "recovery code (compact)": code.replace("-", ""),
            "recovery code bytes": code_bytes,
            "recovery wrap key": rk.wrap_key,
            "master key": keys.master,
            "wrap key": keys.wrap_key,
            "new wrap key": new_wrap_key,
            "vault key": vault_key,
        },
    )
    assert not any(b"PRIVATE KEY" in r.body and b"export" in r.body for r in web.requests)
    assert web.problems == []


def test_recovery_code_must_be_confirmed(web):
    web.goto()
    page = web.page
    page.get_by_role("tab", name="Create account").click()
    page.locator("#signup-email").fill("bob@example.org")
    page.locator("#signup-password").fill(PASSWORD)
    page.locator("#signup-password2").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_selector("#view-recovery-code:not([hidden])")
    assert page.locator("#rc-continue").is_disabled()
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("#view-auth:not([hidden])")
    # Nothing was created: no sign-up request left the page.
    assert flows.json_bodies(web, "/auth/signup") == []


def test_signup_form_validation(web):
    web.goto()
    page = web.page
    page.get_by_role("tab", name="Create account").click()
    page.locator("#signup-email").fill("carol@example.org")
    page.locator("#signup-password").fill("short")
    page.locator("#signup-password2").fill("short")
    page.get_by_role("button", name="Create account").click()
    assert "at least 15" in flows.flash_text(web)
    assert page.locator("#signup-password").get_attribute("aria-invalid") == "true"
    # Long enough but guessable: refused with the estimator's advice (review finding 5).
    for guessable, advice in (
        ("password12345678", "commonly used password"),
        ("carol@example.org2026", "too easy to guess"),
    ):
        page.locator("#signup-password").fill(guessable)
        page.locator("#signup-password2").fill(guessable)
        page.get_by_role("button", name="Create account").click()
        assert advice in flows.flash_text(web)
        assert page.locator("#signup-password").get_attribute("aria-invalid") == "true"
    page.locator("#signup-password").fill(PASSWORD)
    page.locator("#signup-password2").fill(PASSWORD + "x")
    page.get_by_role("button", name="Create account").click()
    assert "differ" in flows.flash_text(web)
    assert flows.json_bodies(web, "/auth/signup") == []


def test_tabs_work_from_the_keyboard(web):
    web.goto()
    page = web.page
    page.get_by_role("tab", name="Log in").focus()
    page.keyboard.press("ArrowRight")
    assert page.locator("#form-signup").is_visible()
    page.keyboard.press("ArrowRight")
    assert page.locator("#form-recover").is_visible()
    page.keyboard.press("Home")
    assert page.locator("#form-login").is_visible()


def test_idle_lock_clears_keys(browser, tmp_path_factory):
    from tests.support.browser import new_page
    from tests.support.server import running_server

    with running_server(tmp_path_factory.mktemp("idle"), IDLE_LOCK_SECONDS="3") as base:
        for web in new_page(browser, base, viewport={"width": 1280, "height": 900}):
            web.goto()
            flows.signup(web, "dave@example.org", PASSWORD)
            web.page.wait_for_selector("#view-locked:not([hidden])", timeout=20_000)
            assert web.page.locator("#nav").is_hidden()
            assert web.page.locator("#records-list li").count() == 0
            web.page.locator("#unlock-password").fill(PASSWORD)
            web.page.get_by_role("button", name="Unlock").click()
            web.page.wait_for_selector("#view-records:not([hidden])")


def test_ended_session_leaves_the_vault(web, phone, tmp_path):
    """A session the server ended (the password changed on another device) leaves the
    vault as a log-out does: records, keys and navigation gone, the log-in form shown."""
    email = "erin@example.org"
    page = web.page
    web.goto()
    flows.signup(web, email, PASSWORD)
    letter = tmp_path / "letter.txt"
    letter.write_text("a letter")
    flows.open_upload(web)
    page.set_input_files("#up-file", str(letter))
    flows.fill_upload_form(web, title="Letter")
    flows.submit_upload(web)
    assert len(flows.shown_ids(web)) == 1

    phone.goto()
    flows.login(phone, email, PASSWORD)
    phone.page.locator("#nav").get_by_role("button", name="Settings").click()
    phone.page.locator("#pw-current").fill(PASSWORD)
    phone.page.locator("#pw-new").fill(NEW_PASSWORD)
    phone.page.locator("#pw-new2").fill(NEW_PASSWORD)
    phone.page.get_by_role("button", name="Change password").click()
    assert "Other devices were logged out" in flows.flash_text(phone)

    # The first page's next request is refused: it leaves the vault and says why.
    page.locator("#nav").get_by_role("button", name="Records").click()
    page.wait_for_selector("#view-auth:not([hidden])")
    assert flows.flash_text(web) == "Your session ended. Please log in again."
    assert page.locator("#nav").is_hidden()
    assert page.locator("#form-login").is_visible()
    assert flows.shown_ids(web) == []
    assert page.locator("#rec-title").inner_text() == ""
    flows.login(web, email, NEW_PASSWORD)
    assert len(flows.shown_ids(web)) == 1
    assert not web.problems, web.problems
