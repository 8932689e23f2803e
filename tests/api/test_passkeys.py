"""Passkeys as a second factor (protocol §10, "Passkeys") through the real HTTP API, on
both databases, answered by a software authenticator (tests/support/soft_authenticator):
enrolment, login, proofs for sensitive actions, and every refusal a relying party owes.

The app is spoken to as ``http://localhost:PORT`` (``Host: localhost:PORT``): WebAuthn
refuses IP addresses as RP IDs, which is checked too.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.db.models import AuditEvent, AuthSession, UserFactor
from hygieia.encoding import from_b64, to_b64
from hygieia.services.common import token_hash
from tests.support.accounts import new_account
from tests.support.live import LiveApp
from tests.support.soft_authenticator import SoftAuthenticator, b64u

PASSWORD = "passkey test password 123"


class Web:
    """One browser's view of the app: ``Host: localhost:PORT``, origin to match."""

    def __init__(self, live: LiveApp, email: str) -> None:
        port = urlsplit(live.url).port
        self.live = live
        self.email = email
        self.origin = f"http://localhost:{port}"
        self.http = httpx.Client(
            base_url=f"{live.url}/api/v1", headers={"host": f"localhost:{port}"}, timeout=30
        )

    def auth(self, token: str) -> None:
        self.http.headers["authorization"] = f"Bearer {token}"

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(path, json=body if body is not None else {})

    def auth_key(self) -> str:
        pre = self.http.get("/auth/prelogin", params={"email": self.email}).json()
        kdf = crypto.KdfParams.from_dict(pre["kdf"])
        return to_b64(crypto.derive_keys(PASSWORD, from_b64(pre["salt"]), kdf).auth_key)


def _signed_up(live: LiveApp, email: str) -> Web:
    api = live.client()
    new_account(api, email, PASSWORD)
    web = Web(live, email)
    assert api.token is not None
    web.auth(api.token)
    return web


def _enrol(web: Web, auth: SoftAuthenticator, label: str = "Laptop") -> dict[str, Any]:
    got = web.post("/auth/factors/passkey/options")
    assert got.status_code == 200, got.text
    options = got.json()["options"]
    assert options["rp"]["id"] == "localhost"
    answer = auth.register(options, origin=web.origin)
    done = web.post("/auth/factors/passkey", {"label": label, "credential": answer})
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


def _pending(web: Web) -> dict[str, Any]:
    got = web.http.post("/auth/login", json={"email": web.email, "auth_key": web.auth_key()})
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    assert body["factor_required"] is True and "passkey" in body["methods"]
    return body


def _login_options(web: Web, pending: dict[str, Any]) -> dict[str, Any]:
    got = web.post("/auth/login/passkey/options", {"pending_token": pending["pending_token"]})
    assert got.status_code == 200, got.text
    options: dict[str, Any] = got.json()["options"]
    return options


def _login_factor(web: Web, pending: dict[str, Any], answer: dict[str, Any]) -> httpx.Response:
    return web.post(
        "/auth/login/factor",
        {"pending_token": pending["pending_token"], "method": "passkey", "credential": answer},
    )


def _events(live: LiveApp, event: str) -> list[AuditEvent]:
    with Session(live.engine) as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event == event)))


def _refused(resp: httpx.Response, code: str = "factor_invalid", status: int = 401) -> None:
    assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text


def test_enrol_and_log_in_with_a_passkey(live: LiveApp) -> None:
    web = _signed_up(live, "pia@example.org")
    auth = SoftAuthenticator()
    done = _enrol(web, auth)
    assert done["factor"]["kind"] == "passkey" and done["factor"]["label"] == "Laptop"
    assert done["backup_codes"] is not None and len(done["backup_codes"]) == 10
    listed = web.http.get("/auth/factors").json()
    assert [f["kind"] for f in listed["factors"]] == ["passkey"]
    assert len(_events(live, "auth.factor_added")) == 1
    event = _events(live, "auth.factor_added")[0]
    assert set(event.detail or {}) <= {"factor_id", "kind", "label"}

    pending = _pending(web)
    assert pending["methods"] == ["passkey", "backup_code"]
    options = _login_options(web, pending)
    assert options["rpId"] == "localhost"
    assert [c["id"] for c in options["allowCredentials"]] == [b64u(auth.credential_id)]
    resp = _login_factor(web, pending, auth.assert_(options, origin=web.origin))
    assert resp.status_code == 200, resp.text
    token = resp.json()["token"]
    web.auth(token)
    assert web.http.get("/me").status_code == 200
    with Session(live.engine) as db:
        factor = db.scalars(select(UserFactor)).one()
        assert factor.sign_count == 1 and factor.last_used_at is not None
        assert factor.transports == ["internal"]
    # the pending login is used up: its token makes no second session
    again = _login_factor(web, pending, auth.assert_(options, origin=web.origin))
    _refused(again, "factor_expired")


def test_wrong_assertions_are_refused_and_counted(live: LiveApp) -> None:
    web = _signed_up(live, "quin@example.org")
    auth = SoftAuthenticator()
    _enrol(web, auth)
    auth.sign_count = 7
    pending = _pending(web)
    ok_options = _login_options(web, pending)
    good = auth.assert_(ok_options, origin=web.origin)  # count 8
    assert _login_factor(web, pending, good).status_code == 200
    with Session(live.engine) as db:
        assert db.scalars(select(UserFactor.sign_count)).one() == 8

    stranger = SoftAuthenticator(credential_id=auth.credential_id)  # same id, other key
    other_key = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "signature from the wrong key": lambda o: auth.assert_(o, origin=web.origin, key=other_key),
        "another authenticator": lambda o: stranger.assert_(o, origin=web.origin),
        "wrong origin": lambda o: auth.assert_(o, origin="http://localhost:1"),
        "https instead of http": lambda o: auth.assert_(
            o, origin=web.origin.replace("http", "https")
        ),
        "wrong rpIdHash": lambda o: auth.assert_(o, origin=web.origin, rp_id="example.org"),
        "sign count regressed": lambda o: auth.assert_(o, origin=web.origin, sign_count=3),
        "another challenge": lambda o: auth.assert_(
            o, origin=web.origin, challenge=b64u(b"c" * 32)
        ),
    }
    failed = len(_events(live, "auth.factor_failed"))
    for name, make in cases.items():
        pending = _pending(web)
        answer = make(_login_options(web, pending))
        resp = _login_factor(web, pending, answer)
        assert resp.status_code == 401, name
        _refused(resp)
        failed += 1
        assert len(_events(live, "auth.factor_failed")) == failed, name
    # a challenge is used once: the answer sent again (on a new pending login) is refused
    replay = _pending(web)
    _login_options(web, replay)
    _refused(_login_factor(web, replay, good))
    # the answer to options that newer options replaced is refused
    first = _pending(web)
    stale = auth.assert_(_login_options(web, first), origin=web.origin)
    _login_options(web, first)
    _refused(_login_factor(web, first, stale))
    # the right answer still works (nothing above was refused for the wrong reason)
    pending = _pending(web)
    ok = _login_factor(web, pending, auth.assert_(_login_options(web, pending), origin=web.origin))
    assert ok.status_code == 200, ok.text


def test_a_passkey_works_only_for_its_own_account(live: LiveApp) -> None:
    alice, bob = _signed_up(live, "alice@example.org"), _signed_up(live, "bob@example.org")
    a_key, b_key = SoftAuthenticator(), SoftAuthenticator()
    _enrol(alice, a_key)
    _enrol(bob, b_key)
    pending = _pending(bob)
    options = _login_options(bob, pending)
    # Alice's authenticator answers Bob's challenge: a real signature, the wrong account
    _refused(_login_factor(bob, pending, a_key.assert_(options, origin=bob.origin)))
    # and Alice's credential can't be enrolled on Bob's account
    got = bob.post("/auth/factors/passkey/options").json()["options"]
    answer = a_key.register(got, origin=bob.origin)
    _refused(bob.post("/auth/factors/passkey", {"credential": answer}), "passkey_taken", 409)


def test_expired_and_missing_challenges(live: LiveApp) -> None:
    web = _signed_up(live, "rhea@example.org")
    auth = SoftAuthenticator()
    _enrol(web, auth)
    pending = _pending(web)
    # no options asked for: no challenge to answer
    fake = {"rpId": "localhost", "challenge": b64u(b"x" * 32)}
    _refused(_login_factor(web, pending, auth.assert_(fake, origin=web.origin)))
    options = _login_options(web, pending)
    with Session(live.engine) as db:  # six minutes pass (the challenge says when it was made)
        row = db.scalars(
            select(AuthSession).where(
                AuthSession.token_hash == token_hash(pending["pending_token"])
            )
        ).one()
        assert row.challenge is not None
        old = int((datetime.now(UTC) - timedelta(minutes=6)).timestamp())
        row.challenge = row.challenge[:1] + struct.pack(">q", old) + row.challenge[9:]
        db.commit()
    _refused(_login_factor(web, pending, auth.assert_(options, origin=web.origin)))
    # an unknown pending token gets no options
    _refused(web.post("/auth/login/passkey/options", {"pending_token": "A" * 43}), "factor_expired")
    # nor does a session token (not a pending login), nor a completed pending login
    session_token = web.http.headers["authorization"].split()[1]
    _refused(
        web.post("/auth/login/passkey/options", {"pending_token": session_token}),
        "factor_expired",
    )
    pending = _pending(web)
    done = _login_factor(
        web, pending, auth.assert_(_login_options(web, pending), origin=web.origin)
    )
    assert done.status_code == 200, done.text
    _refused(
        web.post("/auth/login/passkey/options", {"pending_token": pending["pending_token"]}),
        "factor_expired",
    )


def test_registration_refusals(live: LiveApp) -> None:
    web = _signed_up(live, "sara@example.org")
    auth = SoftAuthenticator()
    options = web.post("/auth/factors/passkey/options").json()["options"]
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    for bad in (
        auth.register(options, origin="http://localhost:1"),
        auth.register(options, origin=web.origin, rp_id="example.org"),
    ):
        _refused(web.post("/auth/factors/passkey", {"credential": bad}))
        options = web.post("/auth/factors/passkey/options").json()["options"]
    good = auth.register(options, origin=web.origin)
    assert web.post("/auth/factors/passkey", {"credential": good}).status_code == 200
    _refused(web.post("/auth/factors/passkey", {"credential": good}))  # challenge used
    assert web.http.get("/auth/factors").json()["factors"][0]["label"] == "Passkey"
    # by IP address there is no RP ID: a clear 400, not a broken ceremony
    by_ip = httpx.post(
        f"{live.url}/api/v1/auth/factors/passkey/options",
        headers={"authorization": web.http.headers["authorization"]},
    )
    _refused(by_ip, "passkey_unavailable", 400)


def test_passkey_proves_a_sensitive_action(live: LiveApp) -> None:
    web = _signed_up(live, "tess@example.org")
    auth = SoftAuthenticator()
    done = _enrol(web, auth)
    factor_id = done["factor"]["id"]
    path = f"/auth/factors/{factor_id}/remove"
    no_factor = web.post(path, {"auth_key": web.auth_key()})
    _refused(no_factor, "factor_required")
    options = web.post("/auth/factors/proof/passkey-options").json()["options"]
    wrong = auth.assert_(options, origin=web.origin, key=ec.generate_private_key(ec.SECP256R1()))
    proof = {"method": "passkey", "credential": wrong}
    _refused(web.post(path, {"auth_key": web.auth_key(), "factor": proof}))
    options = web.post("/auth/factors/proof/passkey-options").json()["options"]
    proof = {"method": "passkey", "credential": auth.assert_(options, origin=web.origin)}
    gone = web.post(path, {"auth_key": web.auth_key(), "factor": proof})
    assert gone.status_code == 204, gone.text
    assert web.http.get("/auth/factors").json()["factors"] == []
    assert len(_events(live, "auth.factor_removed")) == 1
    # a login needs no factor any more
    got = web.http.post("/auth/login", json={"email": web.email, "auth_key": web.auth_key()})
    assert "token" in got.json()
