"""The accounts side under abuse (security review, issue 9: findings 2, 3, 4 and 9).

Each test says how it fails on the code before the fix. All of them run through real
HTTP against a live server on SQLite and on PostgreSQL. Client addresses are told
apart the way production does it: a trusted reverse proxy (here, the test itself on
loopback) sending ``X-Forwarded-For``.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.config import Settings
from hygieia.crypto._identity import load_public_key
from tests.support.accounts import TEST_KDF
from tests.support.live import LiveApp

PASSWORD = "abuse test password 123"
ATTACKER = "203.0.113.66"
VICTIM = "198.51.100.7"


def from_address(live: LiveApp, address: str, token: str | None = None) -> HygieiaClient:
    """A client whose requests arrive through the trusted proxy for ``address``."""
    client = live.client(token)
    client._http.headers["x-forwarded-for"] = address
    return client


def raw_login(live: LiveApp, email: str, address: str | None = None) -> httpx.Response:
    """A login guess that costs the client nothing (a random ``auth_key``)."""
    headers = {"x-forwarded-for": address} if address else {}
    body = {"email": email, "auth_key": base64.b64encode(secrets.token_bytes(32)).decode()}
    return httpx.post(f"{live.url}/api/v1/auth/login", json=body, headers=headers, timeout=120)


def in_parallel(n: int, call: Any) -> list[httpx.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: call(), range(n)))


@pytest.fixture
def behind_proxy(app_settings: Settings) -> Settings:
    app_settings.trusted_proxies = ["127.0.0.1/32"]
    app_settings.login_max_failures = 3
    return app_settings


# --- finding 2: lock-outs, races, proxies ------------------------------------------


def test_attacker_cannot_lock_the_victim_out(behind_proxy: Settings, live: LiveApp) -> None:
    """Failures from one address slow down that address only, for logins only.

    Fails before the fix: failures were counted per account, so after the attacker's
    guesses the victim's own login from another address, the recovery and an
    authenticated password change were all refused with 429.
    """
    victim = acct.signup(from_address(live, VICTIM), "victim@example.org", PASSWORD, kdf=TEST_KDF)
    for _ in range(3):
        assert raw_login(live, "victim@example.org", ATTACKER).status_code == 401
    throttled = raw_login(live, "victim@example.org", ATTACKER)
    assert throttled.status_code == 429 and throttled.json()["code"] == "rate_limited"
    assert int(throttled.headers["retry-after"]) >= 1

    # The victim, from their own address, with the right password: let in.
    acct.login(from_address(live, VICTIM), "victim@example.org", PASSWORD)
    # Even from the attacker's address (a shared NAT), recovery and a signed-in
    # password change have counters of their own.
    recovered = acct.recover(
        from_address(live, ATTACKER),
        "victim@example.org",
        victim.recovery_code,
        "second passphrase 42!",
        kdf=TEST_KDF,
    )
    acct.change_password(
        from_address(live, ATTACKER, recovered.token),
        "second passphrase 42!",
        "third passphrase 42!!",
        kdf=TEST_KDF,
    )
    acct.login(from_address(live, VICTIM), "victim@example.org", "third passphrase 42!!")


@pytest.fixture
def roomy_hashing(app_settings: Settings) -> Settings:
    app_settings.login_max_failures = 10
    app_settings.hash_queue = 64  # every guess waits for a hashing slot, none gets 503
    return app_settings


def test_parallel_guesses_cannot_outrun_the_limit(roomy_hashing: Settings, live: LiveApp) -> None:
    """30 concurrent wrong logins against a limit of 10: exactly 10 are checked.

    Fails before the fix: the failures were counted after the check and written
    with the answer, so all 30 concurrent guesses got 401.
    """
    acct.signup(live.client(), "target@example.org", PASSWORD, kdf=TEST_KDF)
    answers = in_parallel(30, lambda: raw_login(live, "target@example.org"))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 20, statuses
    for r in answers:
        if r.status_code == 429:
            assert r.json()["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1


def _audit_addresses(live: LiveApp, token: str) -> list[str | None]:
    return [e["address"] for e in live.client(token).json("GET", "/audit")["events"]]


def test_forwarded_for_is_ignored_from_untrusted_peers(
    app_settings: Settings, live: LiveApp
) -> None:
    """Without HYGIEIA_TRUSTED_PROXIES a client can't pick its address by a header.

    Passes before the fix too (the header was never read); it guards the new code.
    """
    app_settings.login_max_failures = 3
    acct.signup(live.client(), "xena@example.org", PASSWORD, kdf=TEST_KDF)
    session = acct.login(from_address(live, "192.0.2.200"), "xena@example.org", PASSWORD)
    assert _audit_addresses(live, session.token)[0] == "127.0.0.1"
    acct.signup(live.client(), "walt@example.org", PASSWORD, kdf=TEST_KDF)
    for i in range(3):
        assert raw_login(live, "walt@example.org", f"192.0.2.{i}").status_code == 401
    assert raw_login(live, "walt@example.org", "192.0.2.99").status_code == 429


def test_forwarded_for_is_honoured_from_trusted_proxies(
    behind_proxy: Settings, live: LiveApp
) -> None:
    """Behind a trusted proxy each client has its own limits and audit address.

    Fails before the fix: every request counted as the proxy's address, so clients
    behind one proxy shared one limit, and the audit trail named the proxy.
    """
    acct.signup(from_address(live, VICTIM), "yves@example.org", PASSWORD, kdf=TEST_KDF)
    # Three guesses each from five addresses: nobody is throttled but the guessers.
    for i in range(5):
        for _ in range(3):
            assert raw_login(live, "yves@example.org", f"192.0.2.{i}").status_code == 401
    assert raw_login(live, "yves@example.org", "192.0.2.0").status_code == 429
    # A spoofed entry left of what the proxy appended proves nothing.
    session = acct.login(from_address(live, f"10.9.9.9, {VICTIM}"), "yves@example.org", PASSWORD)
    addresses = _audit_addresses(live, session.token)
    assert addresses[0] == VICTIM  # the login
    assert "192.0.2.3" in addresses  # a failed guess, by its own address


# --- finding 3: enumeration ------------------------------------------------------


def _signup_body(email: str) -> dict[str, Any]:
    """What the Python client sends at sign-up (made here to reuse its key)."""
    return acct.signup_request(email, PASSWORD, TEST_KDF).body


def _timed_signup(live: LiveApp, body: dict[str, Any]) -> tuple[float, tuple[int, str, str]]:
    t0 = time.perf_counter()
    r = httpx.post(f"{live.url}/api/v1/auth/signup", json=body, timeout=120)
    elapsed = time.perf_counter() - t0
    return elapsed, (r.status_code, r.json()["code"], r.json()["detail"])


def test_signup_conflicts_look_alike(live: LiveApp) -> None:
    """An existing email and an existing key get the same answer after the same work.

    Fails before the fix: an existing email got "an account with this email exists"
    in ~36 ms, any other clash "…email or key exists" after two Argon2id hashes.
    """
    first = _signup_body("owner@example.org")
    assert httpx.post(f"{live.url}/api/v1/auth/signup", json=first).status_code == 201
    same_email = {**_signup_body("owner@example.org")}
    same_key = {**first, "email": "someone-new@example.org"}
    # Interleaved, so load from other processes on this shared machine falls on both
    # kinds alike, and compared by their fastest run, which load can only slow down.
    email_runs, key_runs = [], []
    for _ in range(5):
        email_runs.append(_timed_signup(live, same_email))
        key_runs.append(_timed_signup(live, same_key))
    answers = {answer for _, answer in email_runs + key_runs}
    assert answers == {(409, "email_taken", "an account with this email or key exists")}
    email_time = min(t for t, _ in email_runs)
    key_time = min(t for t, _ in key_runs)
    # Both paths run the two hashes; before the fix the ratio was ~13.
    assert 0.4 < email_time / key_time < 2.5, (email_time, key_time)


def test_signup_is_rate_limited_per_address(app_settings: Settings, live: LiveApp) -> None:
    """Fails before the fix: sign-up had no limit at all."""
    app_settings.signup_max_per_address = 2
    acct.signup(live.client(), "one@example.org", PASSWORD, kdf=TEST_KDF)
    acct.signup(live.client(), "two@example.org", PASSWORD, kdf=TEST_KDF)
    with pytest.raises(ApiError) as exc:
        acct.signup(live.client(), "three@example.org", PASSWORD, kdf=TEST_KDF)
    assert exc.value.status == 429 and exc.value.code == "rate_limited"


def test_key_lookup_is_no_oracle(app_settings: Settings, live: LiveApp) -> None:
    """Unknown emails get a stable, valid stand-in key; the email never rides in a URL.

    Fails before the fix: ``GET /users/{email}/key`` answered 404 for unknown emails
    (and put the email in the access log); there was no ``POST /users/key``.
    """
    app_settings.key_lookup_max = 4  # the fifth lookup below is one too many
    acct.signup(live.client(), "ivy@example.org", PASSWORD, kdf=TEST_KDF)
    me = acct.login(live.client(), "ivy@example.org", PASSWORD)
    api = live.client(me.token)
    # Two of the four lookups read the answer raw, to see all of its fields.
    raw = api.json("POST", "/users/key", json={"email": "ghost@example.org"})
    assert set(raw) == {"email", "fingerprint", "public_key"}
    ghost = api.user_key("ghost@example.org")
    assert (ghost.email, ghost.fingerprint, ghost.public_key) == (  # stable
        raw["email"],
        raw["fingerprint"],
        raw["public_key"],
    )
    other = api.user_key("ghost2@example.org")
    assert other.fingerprint != ghost.fingerprint
    key = load_public_key(ghost.public_key)  # a key rPGP accepts, bindings verified
    assert key.fingerprint.upper() == ghost.fingerprint
    assert key.created_at <= time.time()
    # The shape of a real key's answer is the same.
    assert set(api.json("POST", "/users/key", json={"email": "ivy@example.org"})) == set(raw)
    # The old route, with the email in the path, is gone.
    r = httpx.get(
        f"{live.url}/api/v1/users/ghost@example.org/key",
        headers={"authorization": f"Bearer {me.token}"},
    )
    assert r.status_code in (404, 405)
    # Rate-limited per session (and per address).
    with pytest.raises(ApiError) as exc:
        api.user_key("ghost3@example.org")
    assert exc.value.status == 429 and exc.value.code == "rate_limited"


def test_prelogin_salt_never_changes(live: LiveApp) -> None:
    """A real account's prelogin answer stays put, as an unknown email's does.

    Fails before the fix: a password change or a recovery installed a new salt, so
    prelogin showed a change that a stand-in answer never shows.
    """
    api = live.client()
    result = acct.signup(api, "stable@example.org", PASSWORD, kdf=TEST_KDF)
    before = api.prelogin("stable@example.org")
    ghost = api.prelogin("ghost@example.org")
    s = acct.login(live.client(), "stable@example.org", PASSWORD)
    acct.change_password(live.client(s.token), PASSWORD, "changed password 1", kdf=TEST_KDF)
    assert api.prelogin("stable@example.org") == before
    acct.recover(
        live.client(),
        "stable@example.org",
        result.recovery_code,
        "changed passphrase 2!!",
        kdf=TEST_KDF,
    )
    assert api.prelogin("stable@example.org") == before
    assert api.prelogin("ghost@example.org") == ghost
    # A client that tries to change the salt is refused (after proving the password).
    s2 = acct.login(live.client(), "stable@example.org", "changed passphrase 2!!")
    keys = crypto.derive_keys("changed passphrase 2!!", before.salt, TEST_KDF)
    body = {
        "auth_key": base64.b64encode(keys.auth_key).decode(),
        **acct._new_password_material("changed pw 3!!", s2.vault_key, crypto.new_salt(), TEST_KDF),
    }
    with pytest.raises(ApiError) as exc:
        live.client(s2.token).change_password(body)
    assert exc.value.status == 422 and exc.value.code == "salt_changed"


def test_no_email_in_any_log(live: LiveApp, caplog: pytest.LogCaptureFixture) -> None:
    """Fails before the fix: the access log wrote ``GET /api/v1/users/<email>/key``."""
    caplog.set_level(logging.DEBUG)
    api = live.client()
    acct.signup(api, "private.person@example.org", PASSWORD, kdf=TEST_KDF)
    s = acct.login(live.client(), "private.person@example.org", PASSWORD)
    with pytest.raises(ApiError):
        acct.login(live.client(), "private.person@example.org", "wrong password")
    live.client(s.token).user_key("private.person@example.org")
    live.client(s.token).user_key("someone.else@example.org")
    # The server's records only: not the test's own HTTP client, nor uvicorn's access
    # log, which `hygieia serve` turns off (pytest re-attaches it to capture it).
    client_side = ("httpx", "httpcore", "uvicorn.access")
    messages = [r.getMessage() for r in caplog.records if not r.name.startswith(client_side)]
    assert any("/auth/login" in m for m in messages)  # the access log did log
    leaks = [m for m in messages if "private.person" in m or "someone.else" in m]
    assert leaks == []


# --- finding 4: server hashing is bounded ----------------------------------------


def test_server_hashing_is_bounded(app_settings: Settings, live: LiveApp) -> None:
    """Past the hashing slots and queue the answer is 503 ``server_busy``, at once.

    Fails before the fix: every request ran its Argon2id at once (20 sign-ups cost
    32 s of CPU) and nothing was ever refused.
    """
    app_settings.hash_concurrency = 1
    app_settings.hash_queue = 0
    # The limiter is built with the app; rebuild it with these settings.
    from hygieia.services.hashing import HashLimiter

    limiter = HashLimiter(slots=1, queue=0)
    live.app.state.hash_limiter = limiter
    # The one slot is taken (as by a long hash) for the whole burst, so whether the
    # requests overlap does not depend on how loaded the machine is.
    with limiter.slot():
        answers = in_parallel(16, lambda: raw_login(live, f"u{secrets.token_hex(4)}@example.org"))
    codes = {(r.status_code, r.json()["code"]) for r in answers}
    assert codes == {(503, "server_busy")}, codes
    assert all(int(r.headers["retry-after"]) >= 1 for r in answers)
    # Once the slot is free the same request is served again.
    after = raw_login(live, "late@example.org")
    assert (after.status_code, after.json()["code"]) == (401, "invalid_credentials")


# --- finding 9: a recovery grant is used once ------------------------------------


def test_recovery_grant_is_used_once_under_concurrency(live: LiveApp) -> None:
    """Four concurrent completions with one grant: exactly one succeeds.

    Fails before the fix: the grant was checked, then revoked with the rest of the
    account's sessions, so all four concurrent requests got 200.
    """
    api = live.client()
    result = acct.signup(api, "gina@example.org", PASSWORD, kdf=TEST_KDF)
    pre = api.prelogin("gina@example.org")
    rkeys = crypto.derive_recovery_keys(
        crypto.parse_recovery_code(result.recovery_code), pre.recovery_salt
    )
    grant = api.recover("gina@example.org", base64.b64encode(rkeys.auth_key).decode())
    vault_key = crypto.unwrap_vault_key(grant.recovery_wrapped_vault_key, rkeys.wrap_key)
    body = {
        "recovery_token": grant.recovery_token,
        **acct._new_password_material("new pw one!!", vault_key, pre.salt, TEST_KDF),
    }
    answers = in_parallel(
        4,
        lambda: httpx.post(f"{live.url}/api/v1/auth/recover/complete", json=body, timeout=120),
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 401, 401, 401], statuses
    assert {r.json()["code"] for r in answers if r.status_code == 401} <= {
        "token_revoked",
        "invalid_token",
    }
