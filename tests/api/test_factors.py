"""Second factors (protocol §10) through the real HTTP API and the SDK, on both databases:
TOTP enrolment and login, backup codes, the shared throttle, pending logins, removal,
recovery, new backup codes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import ApiError, FactorChallenge, HygieiaClient, SessionGrant
from hygieia.config import Settings
from hygieia.db.models import AuditEvent, AuthSession, BackupCode, Throttle, UserFactor
from hygieia.encoding import to_b64
from hygieia.services.common import token_hash
from tests.support.accounts import TEST_KDF, new_account
from tests.support.live import LiveApp

PASSWORD = "factor test password 123"


@dataclass
class Enrolled:
    email: str
    api: HygieiaClient
    totp: pyotp.TOTP
    factor_id: str
    backup_codes: tuple[str, ...]


def _code_at(totp: pyotp.TOTP, steps_ahead: int) -> str:
    return totp.at(time.time() + 30 * steps_ahead)


def _wrong_code(totp: pyotp.TOTP) -> str:
    """Six digits that no step of the accepted window gives."""
    valid = {_code_at(totp, k) for k in (-1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)


def _enrol(live: LiveApp, email: str) -> Enrolled:
    api = live.client()
    new_account(api, email, PASSWORD)
    started = api.start_totp("Phone")
    assert api.factors().factors == ()  # unconfirmed: not a factor yet
    totp = pyotp.TOTP(started.secret)
    assert pyotp.parse_uri(started.otpauth_uri).secret == started.secret
    done = api.confirm_totp(started.factor_id, totp.now())
    assert done.backup_codes is not None
    return Enrolled(email, api, totp, started.factor_id, done.backup_codes)


def _challenge(live: LiveApp, email: str) -> FactorChallenge:
    pre = live.client().prelogin(email)
    keys = crypto.derive_keys(PASSWORD, pre.salt, crypto.KdfParams.from_dict(pre.kdf))
    answer = live.client().login(email, to_b64(keys.auth_key))
    assert isinstance(answer, FactorChallenge)
    return answer


def _auth_key(api: HygieiaClient) -> str:
    return acct.password_proof(api, PASSWORD)


def _events(live: LiveApp, event: str) -> list[AuditEvent]:
    with Session(live.engine) as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event == event)))


def test_enrol_confirm_and_login_with_totp(live: LiveApp) -> None:
    api = live.client()
    new_account(api, "tina@example.org", PASSWORD)
    started = api.start_totp("Phone")
    totp = pyotp.TOTP(started.secret)
    with pytest.raises(ApiError) as wrong:
        api.confirm_totp(started.factor_id, _wrong_code(totp))
    assert (wrong.value.status, wrong.value.code) == (401, "factor_invalid")
    done = api.confirm_totp(started.factor_id, totp.now())
    assert done.factor.kind == "totp" and done.factor.label == "Phone"
    assert done.backup_codes is not None and len(set(done.backup_codes)) == 10
    listed = api.factors()
    assert [f.id for f in listed.factors] == [started.factor_id]
    assert listed.backup_codes_left == 10
    # The secret is sealed at rest: neither it nor its bytes are in the row.
    with live.engine.connect() as conn:
        sealed = conn.execute(select(UserFactor.totp_secret)).scalar_one()
        codes = list(conn.execute(select(BackupCode.code_hash)).scalars())
    assert sealed is not None and started.secret.encode() not in sealed
    assert not any(c.replace("-", "") in h.upper() for c in done.backup_codes for h in codes)

    # The password alone gives no session and no wrapped vault key.
    challenge = _challenge(live, "tina@example.org")
    assert challenge.methods == ("totp", "backup_code")
    with pytest.raises(acct.FactorNeeded):
        acct.login(live.client(), "tina@example.org", PASSWORD)
    session = acct.login(
        live.client(),
        "tina@example.org",
        PASSWORD,
        factor=lambda ch: ("totp", _code_at(totp, 1)),
    )
    session.unlock()  # the vault key came with the session
    assert live.client(session.token).me().email == "tina@example.org"
    assert len(_events(live, "auth.factor_added")) == 1


def test_login_without_factors_is_unchanged(live: LiveApp) -> None:
    api = live.client()
    acct.signup(api, "una@example.org", PASSWORD, kdf=TEST_KDF)
    pre = api.prelogin("una@example.org")
    keys = crypto.derive_keys(PASSWORD, pre.salt, crypto.KdfParams.from_dict(pre.kdf))
    grant = api.login("una@example.org", to_b64(keys.auth_key))
    assert isinstance(grant, SessionGrant) and not grant.factors_removed
    assert live.client(grant.token).factors().factors == ()


def test_replayed_code_refused(live: LiveApp) -> None:
    who = _enrol(live, "rita@example.org")
    code = _code_at(who.totp, 1)
    acct.login(live.client(), who.email, PASSWORD, factor=lambda ch: ("totp", code))
    with pytest.raises(ApiError) as again:
        acct.login(live.client(), who.email, PASSWORD, factor=lambda ch: ("totp", code))
    assert (again.value.status, again.value.code) == (401, "factor_invalid")
    # The code that confirmed the enrolment is spent too.
    with pytest.raises(ApiError):
        acct.login(live.client(), who.email, PASSWORD, factor=lambda ch: ("totp", who.totp.now()))


def test_backup_code_single_use(live: LiveApp) -> None:
    who = _enrol(live, "bea@example.org")
    code = who.backup_codes[3].lower().replace("-", " ")  # typed loosely: still the code
    session = acct.login(
        live.client(), who.email, PASSWORD, factor=lambda ch: ("backup_code", code)
    )
    assert live.client(session.token).factors().backup_codes_left == 9
    with pytest.raises(ApiError) as again:
        acct.login(live.client(), who.email, PASSWORD, factor=lambda ch: ("backup_code", code))
    assert again.value.code == "factor_invalid"
    assert len(_events(live, "auth.backup_code_used")) == 1
    failed = _events(live, "auth.factor_failed")
    assert len(failed) == 1 and failed[0].detail == {"kind": "backup_code"}


@pytest.fixture
def strict_limits(app_settings: Settings) -> Settings:
    app_settings.login_max_failures = 3
    return app_settings


def test_wrong_code_counts_like_a_wrong_password(strict_limits: Settings, live: LiveApp) -> None:
    who = _enrol(live, "gus@example.org")
    wrong = _wrong_code(who.totp)
    with pytest.raises(ApiError):
        acct.login(live.client(), who.email, "not the password")  # 1
    # 2: the right password's attempt stays counted until the login completes, and pays
    # for the first factor try; the second try is 3.
    challenge = _challenge(live, who.email)
    for _ in range(2):
        with pytest.raises(ApiError) as bad:
            live.client().login_factor(challenge.pending_token, "totp", wrong)
        assert bad.value.code == "factor_invalid"
    # The same (account, address) bucket: now even the right password waits.
    pre = live.client().prelogin(who.email)
    keys = crypto.derive_keys(PASSWORD, pre.salt, crypto.KdfParams.from_dict(pre.kdf))
    body = {"email": who.email, "auth_key": to_b64(keys.auth_key)}
    r = httpx.post(f"{live.url}/api/v1/auth/login", json=body)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    first_wait = int(r.headers["retry-after"])
    # And the pending login's next try is refused by the same bucket.
    with pytest.raises(ApiError) as limited:
        live.client().login_factor(challenge.pending_token, "totp", _code_at(who.totp, 1))
    assert limited.value.code == "rate_limited"

    # Let the wait pass (move the bucket's last attempt back), fail once more: the
    # next wait is longer (growing delays).
    def wait_out(seconds: int) -> None:
        with live.engine.begin() as conn:
            conn.execute(
                update(Throttle)
                .where(Throttle.scope == "login")
                .values(last_at=datetime.now(UTC) - timedelta(seconds=seconds + 1))
            )

    wait_out(first_wait)
    with pytest.raises(ApiError) as bad:
        live.client().login_factor(challenge.pending_token, "totp", wrong)
    assert bad.value.code == "factor_invalid"
    r = httpx.post(f"{live.url}/api/v1/auth/login", json=body)
    assert r.status_code == 429
    second_wait = int(r.headers["retry-after"])
    assert second_wait > first_wait
    assert len(_events(live, "auth.factor_failed")) == 3
    # A complete login ends the streak.
    wait_out(second_wait)
    acct.login(
        live.client(), who.email, PASSWORD, factor=lambda ch: ("backup_code", who.backup_codes[0])
    )
    with live.engine.connect() as conn:
        left = conn.execute(select(Throttle.count).where(Throttle.scope == "login")).all()
    assert left == []


def test_pending_login_expires_and_has_an_attempt_cap(live: LiveApp) -> None:
    who = _enrol(live, "pia@example.org")
    right = who.backup_codes[0]
    # Expired (the row's expiry moved into the past, as five minutes would).
    challenge = _challenge(live, who.email)
    with live.engine.begin() as conn:
        conn.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash(challenge.pending_token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(ApiError) as expired:
        live.client().login_factor(challenge.pending_token, "backup_code", right)
    assert (expired.value.status, expired.value.code) == (401, "factor_expired")
    # Five wrong tries use a pending login up; the right code then comes too late.
    challenge = _challenge(live, who.email)
    assert datetime.fromisoformat(challenge.expires_at) <= datetime.now(UTC) + timedelta(
        minutes=5, seconds=5
    )
    for _ in range(5):
        with pytest.raises(ApiError) as bad:
            live.client().login_factor(challenge.pending_token, "totp", _wrong_code(who.totp))
        assert bad.value.code == "factor_invalid"
    with pytest.raises(ApiError) as capped:
        live.client().login_factor(challenge.pending_token, "backup_code", right)
    assert capped.value.code == "factor_expired"
    # A pending login is no session, and a used one can't be used again.
    r = httpx.get(
        f"{live.url}/api/v1/me", headers={"authorization": f"Bearer {challenge.pending_token}"}
    )
    assert r.status_code == 401
    challenge = _challenge(live, who.email)
    live.client().login_factor(challenge.pending_token, "backup_code", right)
    with pytest.raises(ApiError) as used:
        live.client().login_factor(challenge.pending_token, "backup_code", who.backup_codes[1])
    assert used.value.code == "factor_expired"
    # Unknown tokens look alike.
    with pytest.raises(ApiError) as unknown:
        live.client().login_factor("hyg_nothing", "totp", "123456")
    assert unknown.value.code == "factor_expired"


def test_removal_needs_password_and_factor(live: LiveApp) -> None:
    who = _enrol(live, "rex@example.org")
    api = who.api
    good_key = _auth_key(api)
    wrong_key = to_b64(b"\x07" * 32)
    backup = {"method": "backup_code", "code": who.backup_codes[5]}
    with pytest.raises(ApiError) as e:
        api.remove_factor(who.factor_id, wrong_key, backup)
    assert e.value.code == "invalid_credentials"
    with pytest.raises(ApiError) as e:
        api.remove_factor(who.factor_id, good_key, None)
    assert (e.value.status, e.value.code) == (401, "factor_required")
    with pytest.raises(ApiError) as e:
        api.remove_factor(who.factor_id, good_key, {"method": "totp", "code": "000000"})
    assert e.value.code == "factor_invalid"
    assert len(api.factors().factors) == 1
    # Another account can't remove it, even with its own proofs.
    other = live.client()
    new_account(other, "eve@example.org", PASSWORD)
    with pytest.raises(ApiError) as e:
        other.remove_factor(who.factor_id, _auth_key(other), None)
    assert (e.value.status, e.value.code) == (404, "factor_not_found")
    api.remove_factor(who.factor_id, good_key, backup)
    assert api.factors().factors == () and api.factors().backup_codes_left == 0
    removed = _events(live, "auth.factor_removed")
    assert len(removed) == 1
    assert removed[0].detail == {"factor_id": who.factor_id, "kind": "totp", "label": "Phone"}
    # Back to a one-step login.
    acct.login(live.client(), who.email, PASSWORD)


def test_recovery_removes_factors_and_says_so(live: LiveApp) -> None:
    api = live.client()
    signed = acct.signup(api, "ron@example.org", PASSWORD, kdf=TEST_KDF)
    acct.login(api, "ron@example.org", PASSWORD)
    started = api.start_totp()
    api.confirm_totp(started.factor_id, pyotp.TOTP(started.secret).now())
    new_password = "a brand new password 456"
    recovered = acct.recover(
        live.client(), "ron@example.org", signed.recovery_code, new_password, kdf=TEST_KDF
    )
    assert recovered.factors_removed
    assert live.client(recovered.token).factors().factors == ()
    acct.login(live.client(), "ron@example.org", new_password)  # no factor asked
    events = _events(live, "auth.factors_removed")
    assert len(events) == 1 and events[0].detail == {"by": "recovery"}
    # A recovery without factors says nothing of the kind.
    again = acct.recover(
        live.client(), "ron@example.org", signed.recovery_code, PASSWORD, kdf=TEST_KDF
    )
    assert not again.factors_removed


def test_new_backup_codes_kill_the_old(live: LiveApp) -> None:
    who = _enrol(live, "nia@example.org")
    proof = {"method": "backup_code", "code": who.backup_codes[0]}
    fresh = who.api.renew_backup_codes(_auth_key(who.api), proof)
    assert len(set(fresh)) == 10 and not set(fresh) & set(who.backup_codes)
    assert who.api.factors().backup_codes_left == 10
    with pytest.raises(ApiError) as old:
        acct.login(
            live.client(),
            who.email,
            PASSWORD,
            factor=lambda ch: ("backup_code", who.backup_codes[1]),
        )
    assert old.value.code == "factor_invalid"
    acct.login(live.client(), who.email, PASSWORD, factor=lambda ch: ("backup_code", fresh[1]))
    assert len(_events(live, "auth.backup_codes_renewed")) == 1
    # Without a factor, the account has no backup codes to renew.
    api = live.client()
    new_account(api, "nofactor@example.org", PASSWORD)
    with pytest.raises(ApiError) as none:
        api.renew_backup_codes(_auth_key(api), None)
    assert none.value.code == "factor_not_found"
