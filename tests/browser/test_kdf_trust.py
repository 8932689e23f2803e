"""The web app refuses KDF parameters and salts a server must not impose (review finding 5).

The review's fake server answered prelogin with Argon2id m = 8 MiB, t = 1 and cracked
the password from the ``auth_key`` the page sent. Here the test server accepts such
accounts (its minimum is the test suite's, as a compromised server's would be), and
Playwright's routing plays the lying server for answers no real server gives.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient
from tests.browser import flows
from tests.support.kdf import TEST_KDF_FLOOR

pytestmark = pytest.mark.browser

PW = "browser kdf passphrase 41 ✓"
PW2 = "second browser passphrase 82 ✓"
PW3 = "third browser passphrase 123 ✓"
STRONGER = crypto.KdfParams(t=9)


def try_login(web: Any, email: str, password: str) -> str:
    flows.submit_login(web, email, password)
    return flows.flash_text(web)


def login_requests(web: Any) -> list[str]:
    return [r.url for r in web.requests if r.url.endswith("/api/v1/auth/login")]


def test_weak_kdf_from_the_server_is_refused(web: Any, server: str) -> None:
    """Fails on today's code: the page derived with m = 8 MiB, t = 1 and sent auth_key."""
    with HygieiaClient(server) as api:
        acct.signup(api, "weak-web@example.org", PW, kdf=TEST_KDF_FLOOR, floor=TEST_KDF_FLOOR)
    web.goto()
    text = try_login(web, "weak-web@example.org", PW)
    assert "weaker password protection than this app accepts" in text
    assert login_requests(web) == []
    assert web.page.locator("#view-auth").is_visible()


@pytest.mark.parametrize(
    ("kdf", "salt"),
    [
        pytest.param({**crypto.DEFAULT_KDF.to_dict(), "m": 4 * 1024 * 1024}, 16, id="4-GiB"),
        pytest.param({**crypto.DEFAULT_KDF.to_dict(), "t": 1000}, 16, id="1000-passes"),
        pytest.param(crypto.DEFAULT_KDF.to_dict(), 8, id="8-byte-salt"),
        pytest.param(crypto.DEFAULT_KDF.to_dict(), 0, id="empty-salt"),
        pytest.param(crypto.DEFAULT_KDF.to_dict(), 64, id="64-byte-salt"),
    ],
)
def test_lying_prelogin_answers_are_refused(web: Any, kdf: dict[str, Any], salt: int) -> None:
    """The 8/0/64-byte salts fail on today's code (any salt was used as given)."""
    answer = {
        "kdf": kdf,
        "salt": base64.b64encode(bytes(salt)).decode(),
        "recovery_salt": base64.b64encode(bytes(range(16))).decode(),
    }
    web.page.route(
        lambda url: "/api/v1/auth/prelogin" in url,
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(answer)
        ),
    )
    web.goto()
    text = try_login(web, "lied-to@example.org", PW)
    assert "Nothing" in text and "sent" in text, text
    assert login_requests(web) == []


def test_downgrade_and_changed_salt_after_a_login_here(web: Any, server: str) -> None:
    """Fails on today's code: the page remembered nothing, so weaker (still legal)
    parameters and another salt went through silently."""
    email = "remembered-web@example.org"
    with HygieiaClient(server) as api:
        acct.signup(api, email, PW, kdf=STRONGER)
    web.goto()
    flows.login(web, email, PW)  # remembers t = 9 and the salt
    flows.logout(web)

    with HygieiaClient(server) as other:  # another device: back to the default, t = 8
        acct.login(other, email, PW)
        acct.change_password(other, PW, PW2)
    before = len(login_requests(web))
    assert "weaker password protection than this account used" in try_login(web, email, PW2)
    assert len(login_requests(web)) == before

    with HygieiaClient(server) as other:  # t = 9 again: fine
        acct.login(other, email, PW2)
        acct.change_password(other, PW2, PW3, kdf=STRONGER)
    flows.login(web, email, PW3)
    flows.logout(web)

    # A server that hands out another salt (salts never change): refused until confirmed.
    page = web.page
    with HygieiaClient(server) as api:
        real = api.prelogin(email)
    lied = {
        "kdf": dict(real.kdf),
        "salt": base64.b64encode(bytes(16)).decode(),
        "recovery_salt": base64.b64encode(real.recovery_salt).decode(),
    }
    route = lambda url: "/api/v1/auth/prelogin" in url  # noqa: E731
    page.route(route, lambda r: r.fulfill(status=200, json=lied))
    before = len(login_requests(web))
    assert "salt changed" in try_login(web, email, PW3)
    assert len(login_requests(web)) == before
    confirm = page.locator("#login-accept-salt")
    assert confirm.is_visible() and not confirm.is_checked()
    confirm.check()
    page.locator("#form-login").get_by_role("button", name="Log in").click()
    assert "incorrect" in flows.flash_text(web)  # sent, with the wrong salt: 401
    assert len(login_requests(web)) == before + 1
    page.unroute(route)
    flows.login(web, email, PW3)  # the real salt, still the remembered one

    # A password change made here updates the memory: no complaint at the next login.
    page.get_by_role("button", name="Settings").click()
    page.locator("#pw-current").fill(PW3)
    page.locator("#pw-new").fill(PW)
    page.locator("#pw-new2").fill(PW)
    page.get_by_role("button", name="Change password").click()
    assert "Password changed" in flows.flash_text(web)
    flows.logout(web)
    flows.login(web, email, PW)
    assert web.problems == []
