"""Every authenticated account route by every kind of bad credential."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.db.models import AuthSession
from hygieia.services.common import token_hash
from tests.support.accounts import TEST_KDF
from tests.support.live import LiveApp

PASSWORD = "authz test password 123"


def _body_for(route: str, auth_key: bytes) -> dict[str, object] | None:
    if route == "/auth/password":
        return {
            "auth_key": base64.b64encode(auth_key).decode(),
            "new_auth_key": base64.b64encode(b"\x01" * 32).decode(),
            "new_salt": base64.b64encode(b"\x02" * 16).decode(),
            "new_kdf": crypto.DEFAULT_KDF.to_dict(),
            "new_wrapped_vault_key": base64.b64encode(b"\x01" + b"\x03" * 60).decode(),
        }
    if route == "/users/key":
        return {"email": "alice@example.org"}
    return None


ROUTES = [
    ("GET", "/me"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/password"),
    ("POST", "/users/key"),
    ("GET", "/audit"),
]


@pytest.fixture
def accounts(live: LiveApp) -> dict[str, object]:
    api = live.client()
    acct.signup(api, "alice@example.org", PASSWORD, kdf=TEST_KDF)
    acct.signup(api, "mallory@example.org", PASSWORD, kdf=TEST_KDF)
    alice = acct.login(live.client(), "alice@example.org", PASSWORD)
    mallory = acct.login(live.client(), "mallory@example.org", PASSWORD)
    pre = api.prelogin("alice@example.org")
    alice_keys = crypto.derive_keys(PASSWORD, pre.salt, crypto.KdfParams.from_dict(pre.kdf))
    return {"alice": alice, "mallory": mallory, "alice_auth": alice_keys.auth_key}


def _bad_token(live: LiveApp, kind: str, accounts: dict[str, object]) -> dict[str, str]:
    if kind == "none":
        return {}
    if kind == "garbage":
        return {"authorization": "Bearer hyg_not-a-real-token"}
    if kind == "wrong_scheme":
        return {"authorization": "Basic YWxpY2U6cHc="}
    session = acct.login(live.client(), "alice@example.org", PASSWORD)
    with live.engine.begin() as conn:
        values = (
            {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}
            if kind == "expired"
            else {"revoked_at": datetime.now(UTC)}
        )
        conn.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash(session.token))
            .values(**values)
        )
    return {"authorization": f"Bearer {session.token}"}


EXPECTED = {
    "none": "unauthorized",
    "garbage": "invalid_token",
    "wrong_scheme": "invalid_token",
    "expired": "token_expired",
    "revoked": "token_revoked",
}


def test_bad_credentials_refused(live: LiveApp, accounts: dict[str, object]) -> None:
    """Every route x every kind of bad credential (one server and one pair of accounts)."""
    failures = []
    for method, route in ROUTES:
        for kind, code in EXPECTED.items():
            headers = _bad_token(live, kind, accounts)
            body = _body_for(route, accounts["alice_auth"])  # type: ignore[arg-type]
            r = httpx.request(method, f"{live.url}/api/v1{route}", headers=headers, json=body)
            got = (r.status_code, r.json().get("code"), r.headers.get("cache-control"))
            if got != (401, code, "no-store"):
                failures.append(f"{method} {route} with {kind} token: {got}")
    assert failures == []


def test_other_users_token_cannot_act_for_alice(live: LiveApp, accounts: dict[str, object]) -> None:
    mallory = accounts["mallory"]
    headers = {"authorization": f"Bearer {mallory.token}"}  # type: ignore[attr-defined]
    # /me answers for the token's owner only.
    me = httpx.get(f"{live.url}/api/v1/me", headers=headers).json()
    assert me["email"] == "mallory@example.org"
    # Alice's password proof under Mallory's token does not change anybody's password.
    body = _body_for("/auth/password", accounts["alice_auth"])  # type: ignore[arg-type]
    r = httpx.post(f"{live.url}/api/v1/auth/password", headers=headers, json=body)
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    acct.login(live.client(), "alice@example.org", PASSWORD)
    acct.login(live.client(), "mallory@example.org", PASSWORD)
    # Logging out with Mallory's token does not end Alice's session.
    httpx.post(f"{live.url}/api/v1/auth/logout", headers=headers)
    alice = accounts["alice"]
    assert live.client(alice.token).me().email == "alice@example.org"  # type: ignore[attr-defined]
