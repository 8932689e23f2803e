"""New passwords: at least 15 characters and a zxcvbn score of 3 (review finding 5).

The password is the only factor and derives the key that unwraps the vault, so the CLI
must not take a 1-character one, as it did. On both databases where a server is used.
"""

from __future__ import annotations

import pytest

from hygieia.client import account as acct
from hygieia.client.passwords import (
    MIN_PASSWORD_LENGTH,
    WeakPassword,
    check_export_passphrase,
    check_new_password,
)
from hygieia.client.sdk import HygieiaClient
from tests.support.cli import Cli
from tests.support.hostile import hostile_server

GOOD = "plenty of quiet otters 1987"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("x", "at least 15 characters"),
        ("correct horse", "at least 15 characters"),
        ("e\u0301" * 10, "at least 15 characters"),  # 20 code points, 10 after NFKC
        ("passwordpassword", "too easy to guess"),
        ("123456789012345678", "too easy to guess"),
        ("qwertyuiopasdfghjkl", "too easy to guess"),
        ("aaaaaaaaaaaaaaaaaaaaaaa", "too easy to guess"),
        ("alice.smith@example.org", "too easy to guess"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, why: str) -> None:
    with pytest.raises(WeakPassword, match=why) as exc:
        check_new_password(password, user_inputs=["alice.smith@example.org"])
    if why == "too easy to guess":
        assert len(str(exc.value)) > len("this password is too easy to guess")  # feedback


@pytest.mark.parametrize(
    "password",
    [GOOD, "correct horse battery staple ☃", "Tr0ub4dor&3 is not enough, 42!", "ü" * 3 + GOOD],
)
def test_strong_passwords_pass(password: str) -> None:
    check_new_password(password, user_inputs=["alice@example.org"])


def test_length_limit_is_fifteen() -> None:
    assert MIN_PASSWORD_LENGTH == 15


def test_sdk_refuses_a_weak_password_before_sending_anything() -> None:
    with hostile_server() as server, HygieiaClient(server.url) as api:
        with pytest.raises(WeakPassword):
            acct.signup(api, "alice@example.org", "short")
        with pytest.raises(WeakPassword):
            acct.recover(api, "alice@example.org", "A" * 32, "password12345678")
        assert server.received == []


def test_cli_refuses_short_and_guessable_passwords(cli: Cli) -> None:
    """Fails on today's code: ``hygieia signup`` took a 1-character password."""
    for weak in ("x", "password12345678"):
        proc = cli.run("signup", "weak@example.org", password=weak, check=False)
        assert proc.returncode == 1, proc.stdout
        assert "error:" in proc.stderr
    assert (
        "at least 15 characters"
        in cli.run("signup", "weak@example.org", password="x", check=False).stderr
    )
    guessable = cli.run("signup", "weak@example.org", password="password12345678", check=False)
    assert "too easy to guess" in guessable.stderr and "common" in guessable.stderr
    # Nothing was created: the strong password signs up the same email afterwards.
    cli.run("signup", "weak@example.org", password=GOOD)

    refused = cli.run(
        "passwd", password=GOOD, check=False, HYGIEIA_NEW_PASSWORD="weak@example.org1234"
    )
    assert refused.returncode == 1 and "too easy to guess" in refused.stderr
    cli.run("login", "weak@example.org", password=GOOD)  # unchanged


ACCOUNT_PW = "Plenty of Quiet Otters 1987"


@pytest.mark.parametrize(
    ("passphrase", "why"),
    [
        (ACCOUNT_PW, "account password"),
        (f"  {ACCOUNT_PW}\n", "account password"),  # surrounding whitespace
        (ACCOUNT_PW.lower(), "account password"),  # case
        ("plentyofquietotters1987", "account password"),  # spaces taken out
        ("\uff30lenty of Quiet Otters 1987", "account password"),  # NFKC, as the KDF sees it
        (ACCOUNT_PW + "!!", "account password"),  # characters added
        ("1" + ACCOUNT_PW, "account password"),
        (ACCOUNT_PW[:-2], "account password"),  # characters taken away
        ("", "passphrase of its own"),
        ("   ", "passphrase of its own"),
        ("short", "at least 15 characters"),
        ("passwordpassword", "too easy to guess"),
        ("alice.smith@example.org", "too easy to guess"),
    ],
)
def test_export_passphrase_refusals(passphrase: str, why: str) -> None:
    with pytest.raises(WeakPassword, match=why):
        check_export_passphrase(
            passphrase, account_password=ACCOUNT_PW, user_inputs=["alice.smith@example.org"]
        )


def test_export_passphrase_of_its_own_is_taken() -> None:
    check_export_passphrase(
        "amber lantern drifts over quiet fjords 41", account_password=ACCOUNT_PW
    )
