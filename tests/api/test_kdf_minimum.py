"""The server refuses passwords derived with weak KDF parameters (review finding 5).

A weak KDF makes a stolen database cheap to crack, and clients refuse to log in with one
anyway. ``HYGIEIA_KDF_MIN_MEMORY_KIB`` / ``HYGIEIA_KDF_MIN_PASSES`` default to
``crypto.DEFAULT_KDF``; only test suites and benchmarks lower them. On both databases.
"""

from __future__ import annotations

import base64

import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import ApiError
from hygieia.config import Settings
from tests.support.kdf import TEST_KDF_FLOOR
from tests.support.live import LiveApp

PASSWORD = "kdf minimum passphrase 55 ✓"
WEAK = crypto.KdfParams(m=8192, t=1)  # what the review's fake server asked for


@pytest.fixture
def production_kdf(app_settings: Settings) -> Settings:
    """The production default minimum (the test suite's servers accept TEST_KDF_FLOOR)."""
    defaults = Settings()
    app_settings.kdf_min_memory_kib = defaults.kdf_min_memory_kib
    app_settings.kdf_min_passes = defaults.kdf_min_passes
    return app_settings


def test_default_minimum_is_the_clients_default() -> None:
    settings = Settings()
    assert settings.kdf_floor() == crypto.DEFAULT_KDF


def test_signup_with_weak_kdf_is_refused(production_kdf: Settings, live: LiveApp) -> None:
    """Fails on today's code: sign-up took m = 8 MiB, t = 1."""
    for weak in (WEAK, crypto.KdfParams(m=crypto.DEFAULT_KDF.m - 1024), crypto.KdfParams(t=7)):
        with pytest.raises(ApiError) as exc:
            acct.signup(live.client(), "weak@example.org", PASSWORD, kdf=weak, floor=TEST_KDF_FLOOR)
        assert (exc.value.status, exc.value.code) == (422, "weak_kdf"), weak
    with pytest.raises(ApiError) as missing:
        live.client().me()
    assert missing.value.status == 401
    # Stronger than the minimum is fine.
    acct.signup(live.client(), "strong@example.org", PASSWORD, kdf=crypto.KdfParams(t=9))


def test_password_change_and_recovery_with_weak_kdf_are_refused(
    production_kdf: Settings, live: LiveApp
) -> None:
    """Fails on today's code: a password change or recovery could install m = 8 MiB, t = 1."""
    email = "change@example.org"
    signed = acct.signup(live.client(), email, PASSWORD)
    session = acct.login(live.client(), email, PASSWORD)
    with pytest.raises(ApiError) as exc:
        acct.change_password(
            live.client(session.token),
            PASSWORD,
            "weaker passphrase 77 ✓",
            kdf=WEAK,
            floor=TEST_KDF_FLOOR,
        )
    assert (exc.value.status, exc.value.code) == (422, "weak_kdf")
    with pytest.raises(ApiError) as rec:
        acct.recover(
            live.client(),
            email,
            signed.recovery_code,
            "weaker passphrase 77 ✓",
            kdf=WEAK,
            floor=TEST_KDF_FLOOR,
        )
    assert (rec.value.status, rec.value.code) == (422, "weak_kdf")
    # Nothing changed: the old password still logs in, with the default parameters.
    acct.login(live.client(), email, PASSWORD)
    assert live.client(session.token).me().kdf == crypto.DEFAULT_KDF.to_dict()


def test_raw_weak_signup_body_is_refused(production_kdf: Settings, live: LiveApp) -> None:
    """A client that skips its own checks gets the same answer."""
    identity = crypto.generate_identity("raw@example.org", crypto.new_vault_key())
    keys = crypto.derive_keys(PASSWORD, crypto.new_salt(), WEAK)
    body = {
        "email": "raw@example.org",
        "kdf": WEAK.to_dict(),
        "salt": base64.b64encode(crypto.new_salt()).decode(),
        "recovery_salt": base64.b64encode(crypto.new_salt()).decode(),
        "auth_key": base64.b64encode(keys.auth_key).decode(),
        "public_key": identity.public_key,
        "locked_secret_key": identity.locked_secret_key,
        "wrapped_vault_key": base64.b64encode(bytes(61)).decode(),
        "recovery_wrapped_vault_key": base64.b64encode(bytes(61)).decode(),
        "recovery_verifier": base64.b64encode(bytes(32)).decode(),
    }
    with pytest.raises(ApiError) as exc:
        live.client().signup(body)
    assert (exc.value.status, exc.value.code) == (422, "weak_kdf")
    assert f"m ≥ {crypto.DEFAULT_KDF.m} KiB" in exc.value.detail  # names the minimum


def test_a_lowered_minimum_accepts_the_test_kdf(live: LiveApp) -> None:
    """The test suite's servers take the cheap parameters its fixtures sign up with."""
    assert live.settings.kdf_floor() == TEST_KDF_FLOOR
    acct.signup(live.client(), "cheap@example.org", PASSWORD, kdf=TEST_KDF_FLOOR)
    acct.login(live.client(), "cheap@example.org", PASSWORD)
