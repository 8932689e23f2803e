"""Account flows through the real HTTP API and the Python SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import os

import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import ApiError
from hygieia.config import Settings
from hygieia.crypto._identity import load_public_key
from hygieia.encoding import to_b64
from tests.support.accounts import TEST_KDF
from tests.support.live import LiveApp

PASSWORD = "correct horse battery staple ünïcødé"


def test_signup_login_me_logout(live: LiveApp) -> None:
    """The whole flow with the production KDF (every other account here uses TEST_KDF)."""
    api = live.client()
    result = acct.signup(api, "Alice@Example.org", PASSWORD)
    assert result.account.email == "alice@example.org"
    assert len(crypto.parse_recovery_code(result.recovery_code)) == 20

    session = acct.login(api, "alice@example.org", PASSWORD)
    me = live.client(session.token).me()
    assert me.fingerprint == result.account.fingerprint
    assert me.kdf == crypto.DEFAULT_KDF.to_dict()
    # The vault key from the password unlocks the stored secret key.
    crypto.unlock(me.locked_secret_key, session.vault_key)

    live.client(session.token).logout()
    with pytest.raises(ApiError) as exc:
        live.client(session.token).me()
    assert exc.value.status == 401 and exc.value.code == "token_revoked"


def test_duplicate_email_refused(live: LiveApp) -> None:
    api = live.client()
    acct.signup(api, "bob@example.org", PASSWORD, kdf=TEST_KDF)
    with pytest.raises(ApiError) as exc:
        acct.signup(api, "BOB@example.org", PASSWORD, kdf=TEST_KDF)
    assert exc.value.status == 409 and exc.value.code == "email_taken"


def test_prelogin_does_not_reveal_accounts(live: LiveApp) -> None:
    api = live.client()
    acct.signup(api, "real@example.org", PASSWORD)
    real = api.prelogin("real@example.org")
    fake1 = api.prelogin("ghost@example.org")
    fake2 = api.prelogin("ghost@example.org")
    assert fake1 == fake2  # stable
    assert fake1 != api.prelogin("ghost2@example.org")
    # The same fields, not only the ones the SDK reads.
    emails = ("real@example.org", "ghost@example.org")
    raw = [api.json("GET", "/auth/prelogin", params={"email": e}) for e in emails]
    assert set(raw[0]) == set(raw[1])
    assert real.kdf == fake1.kdf
    for info in (real, fake1):
        assert len(info.salt) == 16
        assert info.salt != info.recovery_salt


def test_login_failure_identical_for_unknown_and_wrong_password(live: LiveApp) -> None:
    api = live.client()
    acct.signup(api, "carol@example.org", PASSWORD, kdf=TEST_KDF)
    with pytest.raises(ApiError) as wrong:
        acct.login(api, "carol@example.org", "not the password")
    with pytest.raises(ApiError) as unknown:
        acct.login(api, "nobody@example.org", "not the password")
    assert (wrong.value.status, wrong.value.code, wrong.value.detail) == (
        unknown.value.status,
        unknown.value.code,
        unknown.value.detail,
    )
    assert wrong.value.code == "invalid_credentials"


def test_change_password_rewraps_and_revokes_other_sessions(live: LiveApp) -> None:
    api = live.client()
    acct.signup(api, "dave@example.org", PASSWORD, kdf=TEST_KDF)
    first = acct.login(live.client(), "dave@example.org", PASSWORD)
    second = acct.login(live.client(), "dave@example.org", PASSWORD)
    before = live.client(first.token).me()

    acct.change_password(
        live.client(first.token), PASSWORD, "a brand new passphrase 42", kdf=TEST_KDF
    )

    # The session that changed it lives on; the other one is revoked.
    after = live.client(first.token).me()
    with pytest.raises(ApiError) as exc:
        live.client(second.token).me()
    assert exc.value.code == "token_revoked"
    # The locked secret key never changes; the vault key is the same.
    assert after.locked_secret_key == before.locked_secret_key
    assert after.wrapped_vault_key != before.wrapped_vault_key
    new = acct.login(live.client(), "dave@example.org", "a brand new passphrase 42")
    assert new.vault_key == first.vault_key
    with pytest.raises(ApiError) as old:
        acct.login(live.client(), "dave@example.org", PASSWORD)
    assert old.value.code == "invalid_credentials"


def test_change_password_with_wrong_current_password_is_refused(live: LiveApp) -> None:
    api = live.client()
    acct.signup(api, "erin@example.org", PASSWORD, kdf=TEST_KDF)
    s = acct.login(api, "erin@example.org", PASSWORD)
    with pytest.raises(crypto.DecryptionError):
        acct.change_password(live.client(s.token), "wrong", "new password here!", kdf=TEST_KDF)
    # Even a client that skips the local check is refused by the server.
    keys = crypto.derive_keys("wrong", crypto.new_salt(), TEST_KDF)
    body = {
        "auth_key": to_b64(keys.auth_key),
        "new_auth_key": to_b64(keys.auth_key),
        "new_salt": to_b64(crypto.new_salt()),
        "new_kdf": crypto.DEFAULT_KDF.to_dict(),
        "new_wrapped_vault_key": to_b64(bytes(61)),
    }
    with pytest.raises(ApiError) as exc:
        live.client(s.token).change_password(body)
    assert exc.value.code == "invalid_credentials"
    acct.login(live.client(), "erin@example.org", PASSWORD)  # unchanged


def test_recovery_sets_new_password_and_loses_nothing(live: LiveApp) -> None:
    api = live.client()
    result = acct.signup(api, "frank@example.org", PASSWORD, kdf=TEST_KDF)
    old = acct.login(live.client(), "frank@example.org", PASSWORD)
    before = live.client(old.token).me()

    recovered = acct.recover(
        live.client(),
        "frank@example.org",
        result.recovery_code.lower(),
        "recovered passphrase!",
        kdf=TEST_KDF,
    )
    assert recovered.vault_key == old.vault_key
    after = live.client(recovered.token).me()
    assert after.locked_secret_key == before.locked_secret_key
    with pytest.raises(ApiError) as exc:
        live.client(old.token).me()
    assert exc.value.code == "token_revoked"
    acct.login(live.client(), "frank@example.org", "recovered passphrase!")
    # The recovery code keeps working (it is not consumed), a wrong one does not.
    acct.recover(
        live.client(), "frank@example.org", result.recovery_code, "third password!!", kdf=TEST_KDF
    )
    with pytest.raises(ApiError) as bad:
        acct.recover(
            live.client(),
            "frank@example.org",
            crypto.new_recovery_code(),
            "never set passphrase 9",
            kdf=TEST_KDF,
        )
    assert bad.value.code == "invalid_recovery_code"


def test_kdf_parameters_are_the_accounts_own(live: LiveApp) -> None:
    """A password change installs the parameters the client chose; logins follow them."""
    api = live.client()
    acct.signup(api, "kim@example.org", PASSWORD, kdf=TEST_KDF)
    assert api.prelogin("kim@example.org").kdf == TEST_KDF.to_dict()
    s = acct.login(api, "kim@example.org", PASSWORD)
    acct.change_password(live.client(s.token), PASSWORD, "upgraded password 77")
    assert live.client(s.token).me().kdf == crypto.DEFAULT_KDF.to_dict()
    assert api.prelogin("kim@example.org").kdf == crypto.DEFAULT_KDF.to_dict()
    again = acct.login(live.client(), "kim@example.org", "upgraded password 77")
    assert again.vault_key == s.vault_key


def test_recovery_grant_is_single_use(live: LiveApp) -> None:
    api = live.client()
    result = acct.signup(api, "gina@example.org", PASSWORD, kdf=TEST_KDF)
    pre = api.prelogin("gina@example.org")
    rkeys = crypto.derive_recovery_keys(
        crypto.parse_recovery_code(result.recovery_code), pre.recovery_salt
    )
    grant = api.recover("gina@example.org", to_b64(rkeys.auth_key))
    vault_key = crypto.unwrap_vault_key(grant.recovery_wrapped_vault_key, rkeys.wrap_key)
    body = {
        "recovery_token": grant.recovery_token,
        **acct._new_password_material("pw one!!", vault_key, pre.salt, TEST_KDF),
    }
    api.recover_complete(body)
    with pytest.raises(ApiError) as exc:
        api.recover_complete(body)
    assert exc.value.status == 401
    # A recovery grant is not a session token.
    with pytest.raises(ApiError) as exc2:
        live.client(grant.recovery_token).me()
    assert exc2.value.status == 401


@pytest.fixture
def strict_limits(app_settings: Settings) -> Settings:
    app_settings.login_max_failures = 3
    app_settings.login_address_max_failures = 3
    return app_settings


def test_login_rate_limited_per_account_and_address(strict_limits: Settings, live: LiveApp) -> None:
    api = live.client()
    acct.signup(api, "hank@example.org", PASSWORD, kdf=TEST_KDF)
    for _ in range(3):
        with pytest.raises(ApiError):
            acct.login(api, "hank@example.org", "guess")
    with pytest.raises(ApiError) as exc:
        acct.login(api, "hank@example.org", PASSWORD)  # even the right password, from here
    assert exc.value.status == 429 and exc.value.code == "rate_limited"


def test_login_rate_limited_per_address(strict_limits: Settings, live: LiveApp) -> None:
    api = live.client()
    # Guessed auth keys sent straight to /auth/login: what a password sprayer sends. (The
    # SDK would first derive each from the unknown emails' fake, default-KDF parameters.)
    for i in range(3):
        with pytest.raises(ApiError) as guess:
            api.login(f"spray{i}@example.org", to_b64(os.urandom(32)))
        assert guess.value.code == "invalid_credentials"
    with pytest.raises(ApiError) as exc:
        api.login("someone-else@example.org", to_b64(os.urandom(32)))
    assert exc.value.code == "rate_limited"


def test_user_key_lookup(live: LiveApp) -> None:
    api = live.client()
    bob = acct.signup(api, "ivy@example.org", PASSWORD, kdf=TEST_KDF)
    acct.signup(api, "jack@example.org", PASSWORD, kdf=TEST_KDF)
    s = acct.login(live.client(), "jack@example.org", PASSWORD)
    key = live.client(s.token).user_key("ivy@example.org")
    assert key.email == "ivy@example.org"
    assert key.fingerprint == bob.account.fingerprint
    assert load_public_key(key.public_key).fingerprint.upper() == key.fingerprint


def test_audit_trail_records_security_events(live: LiveApp) -> None:
    api = live.client()
    acct.signup(api, "audit@example.org", PASSWORD, kdf=TEST_KDF)
    with pytest.raises(ApiError):
        acct.login(live.client(), "audit@example.org", "wrong password")
    s = acct.login(live.client(), "audit@example.org", PASSWORD)
    acct.change_password(live.client(s.token), PASSWORD, "another password 123", kdf=TEST_KDF)
    events = [e["event"] for e in live.client(s.token).json("GET", "/audit")["events"]]
    assert events[:4] == [
        "auth.password_changed",
        "auth.login",
        "auth.login_failed",
        "account.signup",
    ]
    # Someone else's trail is not visible.
    acct.signup(api, "other-audit@example.org", PASSWORD, kdf=TEST_KDF)
    o = acct.login(live.client(), "other-audit@example.org", PASSWORD)
    assert [e["event"] for e in live.client(o.token).json("GET", "/audit")["events"]] == [
        "auth.login",
        "account.signup",
    ]
