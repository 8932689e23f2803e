"""Two-factor authentication in Chromium (protocol §10): enrol an authenticator app from
Settings (the secret read off the page), log in with a code computed here by pyotp,
a wrong code refused, a backup code, and removal with the password and a code."""

from __future__ import annotations

import time

import pyotp
import pytest

from tests.browser import flows

pytestmark = pytest.mark.browser

PASSWORD = "two factors in the browser ☃ 2026"


def _wrong_code(totp: pyotp.TOTP) -> str:
    valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)


def _enrol(web) -> tuple[pyotp.TOTP, list[str]]:
    """Settings → add an authenticator app: the QR code and the secret are shown, a
    wrong first code is refused in the page, the right one confirms."""
    page = web.page
    page.get_by_role("button", name="Settings").click()
    page.wait_for_selector("#factors-empty:not([hidden])")
    page.get_by_role("button", name="Add an authenticator app").click()
    page.wait_for_selector("#form-totp:not([hidden])")
    assert (page.locator("#totp-qr").get_attribute("src") or "").startswith("data:image/svg+xml")
    secret = page.locator("#totp-secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    page.locator("#totp-code").fill(_wrong_code(totp))
    page.get_by_role("button", name="Confirm").click()
    assert "does not match" in flows.flash_text(web)
    page.locator("#totp-code").fill(totp.now())
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#backup-codes:not([hidden])")
    codes = [c.strip() for c in page.locator("#backup-codes-list li").all_inner_texts()]
    assert len(set(codes)) == 10
    web.shot("factor-backup-codes")
    page.get_by_role("button", name="I saved them").click()
    assert page.locator("#backup-codes-list li").count() == 0
    assert page.locator("#factors-list li").count() == 1
    assert "Backup codes left: 10" in page.locator("#factors-backup-left").inner_text()
    return totp, codes


def test_enrol_log_in_with_a_code_and_remove(web):
    page = web.page
    web.goto()
    email = "two-factor@example.org"
    flows.signup(web, email, PASSWORD)

    totp, codes = _enrol(web)
    (confirm,) = flows.json_bodies(web, "/confirm")
    assert set(confirm) == {"code"}

    # Log out, log in: the password, then the code.
    flows.logout(web)
    flows.submit_login(web, email, PASSWORD)
    page.wait_for_selector("#form-factor:not([hidden])")
    assert page.locator("#nav").is_hidden()  # no session yet
    page.locator("#factor-code").fill(_wrong_code(totp))
    page.get_by_role("button", name="Continue").click()
    assert "not right" in flows.flash_text(web)
    assert page.locator("#form-factor").is_visible()
    page.locator("#factor-code").fill(totp.at(time.time() + 30))  # the next step's code
    page.get_by_role("button", name="Continue").click()
    flows.list_ready(web)
    tries = flows.json_bodies(web, "/auth/login/factor")
    assert [b["method"] for b in tries] == ["totp", "totp"]

    # A backup code works once (the second try is refused).
    flows.logout(web)
    flows.submit_login(web, email, PASSWORD)
    page.wait_for_selector("#form-factor:not([hidden])")
    page.locator("#factor-code").fill(codes[0])
    page.get_by_role("button", name="Continue").click()
    flows.list_ready(web)
    flows.logout(web)
    flows.submit_login(web, email, PASSWORD)
    page.wait_for_selector("#form-factor:not([hidden])")
    page.locator("#factor-code").fill(codes[0])
    page.get_by_role("button", name="Continue").click()
    assert "not right" in flows.flash_text(web)
    page.locator("#factor-code").fill(codes[1])
    page.get_by_role("button", name="Continue").click()
    flows.list_ready(web)

    # Remove it: the password and a code; then the login asks for the password only.
    page.get_by_role("button", name="Settings").click()
    page.wait_for_selector("#form-factor-proof:not([hidden])")
    page.locator("#fp-password").fill(PASSWORD)
    page.locator("#fp-code").fill(codes[0])  # used already: refused, and still logged in
    page.locator("#factors-list").get_by_role("button", name="Remove").click()
    page.locator("#confirm-ok").click()
    assert "not right" in flows.flash_text(web)
    assert page.locator("#nav").is_visible() and page.locator("#factors-list li").count() == 1
    page.locator("#fp-code").fill(codes[2])
    page.locator("#factors-list").get_by_role("button", name="Remove").click()
    page.locator("#confirm-ok").click()
    page.wait_for_selector("#factors-empty:not([hidden])")
    assert "removed" in flows.flash_text(web)
    flows.logout(web)
    flows.login(web, email, PASSWORD)


def test_recovery_removes_factors_and_says_so(web):
    page = web.page
    web.goto()
    email = "two-factor-recover@example.org"
    code = flows.signup(web, email, PASSWORD)
    _enrol(web)
    flows.logout(web)
    page.get_by_role("tab", name="Recover").click()
    page.locator("#recover-email").fill(email)
    page.locator("#recover-code").fill(code)
    page.locator("#recover-password").fill(PASSWORD + " again")
    page.locator("#recover-password2").fill(PASSWORD + " again")
    page.get_by_role("button", name="Set new password").click()
    page.wait_for_selector("#view-records:not([hidden])")
    assert "second factors were removed" in flows.flash_text(web)
    flows.logout(web)
    flows.login(web, email, PASSWORD + " again")  # no code asked
