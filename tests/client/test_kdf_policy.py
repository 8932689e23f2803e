"""A server can't weaken the KDF a client derives the password with (review finding 5).

The review's fake server answered prelogin with Argon2id m = 8 MiB, t = 1, got the
``auth_key`` the client sent, and found the password by dictionary in 0.25 s. Here a
hostile server (tests/support/hostile.py) and real servers on both databases check that
the Python client and the CLI refuse such parameters, bad salts and silent downgrades
before anything derived from the password leaves the machine.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.kdf_policy import (
    KDF_FLOOR_ENV,
    KdfRefused,
    KnownKdf,
    Remembered,
    kdf_floor,
)
from hygieia.client.sdk import HygieiaClient, InvalidResponse
from tests.support.cli import Cli
from tests.support.hostile import Hostile, hostile_server
from tests.support.kdf import TEST_KDF_FLOOR

PW = "kdf policy passphrase 31 ✓"
PW2 = "second kdf passphrase 62 ✓"
PW3 = "third kdf passphrase 93 ✓"
CHEAP = {"alg": "argon2id", "v": 19, "m": 8192, "t": 1, "p": 1}  # what the review's server sent
STRICT = crypto.DEFAULT_KDF
STRONGER = crypto.KdfParams(t=9)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def prelogin_answer(kdf: Any, salt: str | None = None) -> tuple[int, Any]:
    return 200, {
        "kdf": kdf,
        "salt": salt if salt is not None else b64(bytes(range(16))),
        "recovery_salt": b64(bytes(range(16, 32))),
    }


@pytest.fixture
def hostile() -> Any:
    with hostile_server() as server:
        server.answers["/api/v1/auth/login"] = (401, {"code": "invalid_credentials", "detail": "x"})
        yield server


def sent_login(server: Hostile) -> bool:
    return "/api/v1/auth/login" in server.paths()


def test_weak_kdf_from_prelogin_is_refused_before_anything_is_sent(hostile: Hostile) -> None:
    """Fails on today's code: the client derived with m=8 MiB, t=1 and sent auth_key."""
    hostile.answers["/api/v1/auth/prelogin"] = prelogin_answer(CHEAP)
    with HygieiaClient(hostile.url) as api, pytest.raises(KdfRefused, match="weaker"):
        acct.login(api, "victim@example.org", PW, floor=STRICT)
    assert hostile.paths() == ["/api/v1/auth/prelogin"]
    # Just below the default on either axis is refused as well.
    for weaker in (
        {**STRICT.to_dict(), "m": STRICT.m - 1},
        {**STRICT.to_dict(), "t": STRICT.t - 1},
    ):
        hostile.answers["/api/v1/auth/prelogin"] = prelogin_answer(weaker)
        with HygieiaClient(hostile.url) as api, pytest.raises(KdfRefused):
            acct.login(api, "victim@example.org", PW, floor=STRICT)
    assert not sent_login(hostile)


@pytest.mark.parametrize(
    ("kdf", "salt"),
    [
        pytest.param({**STRICT.to_dict(), "m": 4 * 1024 * 1024}, None, id="4-GiB-memory"),
        pytest.param({**STRICT.to_dict(), "t": 1000}, None, id="1000-passes"),
        pytest.param({**STRICT.to_dict(), "p": 64}, None, id="64-lanes"),
        pytest.param({**STRICT.to_dict(), "alg": "argon2i"}, None, id="argon2i"),
        pytest.param({**STRICT.to_dict(), "m": "47104"}, None, id="string-memory"),
        pytest.param(STRICT.to_dict(), b64(bytes(8)), id="8-byte-salt"),
        pytest.param(STRICT.to_dict(), "", id="empty-salt"),
        pytest.param(STRICT.to_dict(), b64(bytes(64)), id="64-byte-salt"),
        pytest.param(STRICT.to_dict(), "not base64!", id="garbage-salt"),
    ],
)
def test_out_of_bounds_parameters_and_bad_salts_are_refused(
    hostile: Hostile, kdf: dict[str, Any], salt: str | None
) -> None:
    """Upper bounds keep a server from making the client allocate gigabytes or spin for
    minutes; a salt of the wrong size is refused before any derivation. (Today these were
    refused too, by a ValueError from deep inside; now by the policy, with a reason.)"""
    hostile.answers["/api/v1/auth/prelogin"] = prelogin_answer(kdf, salt)
    # Not base64 at all: the SDK refuses the answer's shape before the policy sees it.
    refusal = InvalidResponse if salt == "not base64!" else KdfRefused
    with HygieiaClient(hostile.url) as api, pytest.raises(refusal):
        acct.login(api, "victim@example.org", PW, floor=STRICT)
    assert not sent_login(hostile)


def test_password_change_refuses_weak_parameters_from_me(hostile: Hostile) -> None:
    """Fails on today's code: ``/me`` was trusted, so a password change sent an auth_key
    derived with whatever the server put there."""
    hostile.answers["/api/v1/me"] = (
        200,
        {
            "id": "u",
            "email": "victim@example.org",
            "fingerprint": "F" * 40,
            "encryption_key_id": "E" * 16,
            "public_key": "",
            "locked_secret_key": "",
            "wrapped_vault_key": b64(bytes(61)),
            "kdf": CHEAP,
            "salt": b64(bytes(16)),
            "recovery_salt": b64(bytes(range(16, 32))),
            "recovery_wrapped_vault_key": b64(bytes(61)),
            "created_at": "2026-01-01T00:00:00Z",
        },
    )
    with HygieiaClient(hostile.url, token="t") as api, pytest.raises(KdfRefused):
        acct.change_password(api, PW, PW2, floor=STRICT)
    with HygieiaClient(hostile.url, token="t") as api, pytest.raises(KdfRefused):
        acct.unlock_vault(api, PW, floor=STRICT)
    assert "/api/v1/auth/password" not in hostile.paths()


def test_the_floor_is_lowered_only_by_the_local_environment(
    hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test/benchmark knob: nothing but this process's environment moves the floor."""
    monkeypatch.delenv(KDF_FLOOR_ENV, raising=False)
    assert kdf_floor() == crypto.DEFAULT_KDF
    monkeypatch.setenv(KDF_FLOOR_ENV, "")
    assert kdf_floor() == crypto.DEFAULT_KDF
    for bad in ("8192", "m=1", "m=8192,t=1,p=1", "m=x,t=1", "q=8192"):
        monkeypatch.setenv(KDF_FLOOR_ENV, bad)
        with pytest.raises(KdfRefused):
            kdf_floor()
    monkeypatch.setenv(KDF_FLOOR_ENV, "m=8192,t=1")
    assert kdf_floor() == TEST_KDF_FLOOR
    hostile.answers["/api/v1/auth/prelogin"] = prelogin_answer(CHEAP)
    with HygieiaClient(hostile.url) as api, pytest.raises(Exception, match="invalid_credentials"):
        acct.login(api, "victim@example.org", PW)  # the lowered floor lets it through
    assert sent_login(hostile)


def test_a_client_does_not_create_weak_parameters_itself(
    hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KDF_FLOOR_ENV, raising=False)
    with HygieiaClient(hostile.url) as api, pytest.raises(KdfRefused, match="floor"):
        acct.signup(api, "victim@example.org", PW, kdf=TEST_KDF_FLOOR)
    assert hostile.received == []


def test_remembered_parameters_refuse_a_downgrade(cli: Cli, tmp_path: Path) -> None:
    """Fails on today's code (no memory): a weaker KDF than last time went through. The
    server here accepts the test floor, as a compromised one would."""
    email = "remember@example.org"
    known_file = tmp_path / "home" / "known_kdf.json"
    known = KnownKdf(known_file)
    here = HygieiaClient(cli.server)
    acct.signup(here, email, PW, known=known)
    first = known.get(here.server, email)
    assert first is not None and first.kdf == crypto.DEFAULT_KDF
    assert stat.S_IMODE(known_file.stat().st_mode) == 0o600
    assert PW not in known_file.read_text()

    # This client raises the cost: remembered (the salt stays the account's).
    acct.login(here, email, PW, known=known)
    acct.change_password(here, PW, PW2, kdf=STRONGER, known=known)
    raised = known.get(here.server, email)
    assert raised == Remembered(kdf=STRONGER, salt=first.salt)
    acct.login(HygieiaClient(cli.server), email, PW2, known=known)

    # Another device (or the server's operator) lowers it again, still above the floor:
    # refused here, salt confirmation or not.
    elsewhere = HygieiaClient(cli.server)
    acct.login(elsewhere, email, PW2)
    acct.change_password(elsewhere, PW2, PW3)
    for accept in (False, True):
        with pytest.raises(KdfRefused, match="used here before"):
            acct.login(HygieiaClient(cli.server), email, PW3, known=known, accept_new_salt=accept)
    with pytest.raises(KdfRefused, match="used here before"):
        acct.unlock_vault(elsewhere, PW3, known=known)
    assert known.get(here.server, email) == raised  # a refusal changes nothing


def test_a_changed_salt_is_refused_unless_accepted(hostile: Hostile, tmp_path: Path) -> None:
    """Fails on today's code: any salt was used as given. Salts never change, so another
    one is a re-created account or a server picking salts (one for everyone would let it
    amortise a dictionary over every account)."""
    email = "victim@example.org"
    known = KnownKdf(tmp_path / "known_kdf.json")
    known.put(hostile.url, email, Remembered(kdf=STRICT, salt=bytes(range(16))))
    hostile.answers["/api/v1/auth/prelogin"] = prelogin_answer(STRICT.to_dict(), b64(bytes(16)))
    with HygieiaClient(hostile.url) as api, pytest.raises(KdfRefused, match="another salt"):
        acct.login(api, email, PW, known=known)
    assert not sent_login(hostile)
    with HygieiaClient(hostile.url) as api, pytest.raises(Exception, match="invalid_credentials"):
        acct.login(api, email, PW, known=known, accept_new_salt=True)
    assert sent_login(hostile)
    # Only a successful login would replace what is remembered.
    assert known.get(hostile.url, email) == Remembered(kdf=STRICT, salt=bytes(range(16)))


def test_cli_refuses_weak_kdf_and_remembers_the_account(cli: Cli, tmp_path: Path) -> None:
    """Fails on today's code: ``hygieia login`` sent auth_key to the weak server, kept
    nothing per account, and took a changed salt without a word."""
    # HYGIEIA_INSECURE_KDF_FLOOR="": the production default, not the test suite's floor.
    assert KDF_FLOOR_ENV == "HYGIEIA_INSECURE_KDF_FLOOR"
    email = "cli-kdf@example.org"
    cli.run("signup", email, password=PW, HYGIEIA_INSECURE_KDF_FLOOR="")
    known_file = cli.home / "known_kdf.json"
    assert stat.S_IMODE(known_file.stat().st_mode) == 0o600
    (entry,) = json.loads(known_file.read_text()).values()
    assert entry["kdf"] == crypto.DEFAULT_KDF.to_dict()
    cli.run("login", email, password=PW, HYGIEIA_INSECURE_KDF_FLOOR="")

    with hostile_server() as hostile:
        hostile.answers["/api/v1/auth/login"] = (
            401,
            {"code": "invalid_credentials", "detail": "x"},
        )
        victim = Cli(server=hostile.url, home=tmp_path / "victim", data_dir=tmp_path)
        hostile.answers["/api/v1/auth/prelogin"] = prelogin_answer(CHEAP)
        proc = victim.run(
            "login", "victim@example.org", password=PW, check=False, HYGIEIA_INSECURE_KDF_FLOOR=""
        )
        assert proc.returncode == 1
        assert "weaker key derivation" in proc.stderr
        assert hostile.paths() == ["/api/v1/auth/prelogin"]

        # What this home remembers for the account, then another salt from the server.
        KnownKdf(victim.home / "known_kdf.json").put(
            hostile.url, "victim@example.org", Remembered(kdf=STRICT, salt=bytes(range(16)))
        )
        hostile.answers["/api/v1/auth/prelogin"] = prelogin_answer(STRICT.to_dict(), b64(bytes(16)))
        refused = victim.run(
            "login", "victim@example.org", password=PW, check=False, HYGIEIA_INSECURE_KDF_FLOOR=""
        )
        assert refused.returncode == 1 and "--accept-new-salt" in refused.stderr
        assert not sent_login(hostile)
        accepted = victim.run(
            "login",
            "victim@example.org",
            "--accept-new-salt",
            password=PW,
            check=False,
            HYGIEIA_INSECURE_KDF_FLOOR="",
        )
        assert "invalid_credentials" in accepted.stderr
        assert sent_login(hostile)
