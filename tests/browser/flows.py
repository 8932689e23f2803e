"""Page-driving helpers shared by the browser tests (what a person would do)."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.browser.conftest import PageHandle


def signup(web: PageHandle, email: str, password: str, *, shots: bool = False) -> str:
    """Create an account through the UI; return the recovery code it showed."""
    page = web.page
    page.get_by_role("tab", name="Create account").click()
    page.get_by_label("Email").and_(page.locator("#signup-email")).fill(email)
    page.locator("#signup-password").fill(password)
    page.locator("#signup-password2").fill(password)
    if shots:
        web.shot("signup")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_selector("#view-recovery-code:not([hidden])")
    code = page.locator("#rc-code").inner_text().strip()
    assert page.locator("#rc-continue").is_disabled()
    if shots:
        web.shot("recovery-code")
    page.get_by_label("I have saved my recovery code").check()
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_selector("#view-records:not([hidden])")
    return code


def login(web: PageHandle, email: str, password: str) -> None:
    page = web.page
    page.get_by_role("tab", name="Log in").click()
    page.locator("#login-email").fill(email)
    page.locator("#login-password").fill(password)
    page.locator("#form-login").get_by_role("button", name="Log in").click()
    page.wait_for_selector("#view-records:not([hidden])")


def logout(web: PageHandle) -> None:
    web.page.get_by_role("button", name="Log out").click()
    web.page.wait_for_selector("#view-auth:not([hidden])")


def flash_text(web: PageHandle) -> str:
    web.page.wait_for_selector("#flash:not([hidden])")
    return web.page.locator("#flash").inner_text()


def json_bodies(web: PageHandle, path: str) -> list[dict[str, Any]]:
    out = []
    for r in web.requests:
        if r.url.split("?")[0].endswith(path) and r.body:
            out.append(json.loads(r.body))
    return out


def forms(secret: bytes | str) -> list[bytes]:
    """Encodings under which a secret could travel: raw, hex, base64 (std and url)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    out = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    if len(raw) >= 8:
        out += [base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")]
    if isinstance(secret, str):
        from urllib.parse import quote, quote_plus

        out += [
            quote(secret).encode(),
            quote_plus(secret).encode(),
            json.dumps(secret)[1:-1].encode(),
        ]
    return out


def assert_never_sent(web: PageHandle, secrets: dict[str, bytes | str]) -> None:
    """No captured request (URL, headers or body) carries any of the secrets."""
    assert web.requests, "no requests were captured"
    for r in web.requests:
        blob = b"\n".join(
            [r.url.encode(), *(f"{k}: {v}".encode() for k, v in r.headers.items()), r.body]
        )
        for name, secret in secrets.items():
            for form in forms(secret):
                assert form not in blob, f"{name} was sent in {r.method} {r.url}"
