"""``hygieia factor …``, a login with a second factor, and the key and recovery-code
rotations that ask for one, against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pyotp

from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient
from tests.support.accounts import TEST_KDF
from tests.support.cli import Cli
from tests.support.kdf import CLIENT_ENV

PW = "cli factor password ✓ 2026"
SECRET_RE = re.compile(r"Secret: ([A-Z2-7]{32})")
BACKUP_RE = re.compile(r"^\s+([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})$", re.M)
ID_RE = re.compile(r"Factor id: (\S+)")


def _add_totp(cli: Cli) -> tuple[pyotp.TOTP, list[str], str]:
    """``factor add-totp``, answering with a code computed from the secret it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
    env.update({"HYGIEIA_HOME": str(cli.home), "HYGIEIA_SERVER": cli.server, **CLIENT_ENV})
    proc = subprocess.Popen(
        [sys.executable, "-m", "hygieia", "factor", "add-totp", "--label", "CLI phone"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    seen = ""
    while (match := SECRET_RE.search(seen)) is None:
        line = proc.stdout.readline()
        assert line, f"no secret printed: {seen}"
        seen += line
    totp = pyotp.TOTP(match.group(1))
    rest, errors = proc.communicate(totp.now() + "\n", timeout=120)
    assert proc.returncode == 0, seen + rest + errors
    assert "▀" in seen or "█" in seen or "▄" in seen  # a QR code in the terminal
    codes = BACKUP_RE.findall(rest)
    assert len(codes) == 10 and "shown this once" in rest, rest
    factor_id = ID_RE.search(rest)
    assert factor_id, rest
    return totp, codes, factor_id.group(1)


def test_enrol_and_log_in_with_a_code(cli: Cli) -> None:
    cli.new_account("fa@example.org", PW)
    assert "No second factor" in cli.run("factor", "ls").stdout
    totp, codes, factor_id = _add_totp(cli)
    listed = cli.run("factor", "ls").stdout
    assert factor_id in listed and "CLI phone" in listed and "Backup codes left: 10" in listed
    cli.run("logout")

    # No code and no terminal: a clean error, no session.
    bare = cli.run("login", "fa@example.org", password=PW, check=False)
    assert bare.returncode == 1 and "HYGIEIA_TOTP" in bare.stderr
    assert "Traceback" not in bare.stderr
    # A wrong code: refused with its stable code, no traceback.
    valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    wrong_code = next(f"{n:06d}" for n in range(1000) if f"{n:06d}" not in valid)
    wrong = cli.run("login", "fa@example.org", password=PW, check=False, HYGIEIA_TOTP=wrong_code)
    assert wrong.returncode == 1 and "factor_invalid" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    bad = cli.run("whoami", check=False)
    assert bad.returncode != 0

    # The right code (the next step's: the enrolment used the current one).
    cli.run("login", "fa@example.org", password=PW, HYGIEIA_TOTP=totp.at(time.time() + 30))
    assert "fa@example.org" in cli.run("whoami").stdout

    # A backup code works once.
    cli.run("logout")
    cli.run("login", "fa@example.org", password=PW, HYGIEIA_TOTP=codes[0])
    cli.run("logout")
    again = cli.run("login", "fa@example.org", password=PW, check=False, HYGIEIA_TOTP=codes[0])
    assert again.returncode == 1 and "factor_invalid" in again.stderr
    cli.run("login", "fa@example.org", password=PW, HYGIEIA_TOTP=codes[1])
    assert "Backup codes left: 8" in cli.run("factor", "ls").stdout


def test_new_backup_codes_and_removal(cli: Cli) -> None:
    cli.new_account("fb@example.org", PW)
    _, codes, factor_id = _add_totp(cli)
    renewed = cli.run("factor", "backup-codes", password=PW, HYGIEIA_TOTP=codes[0]).stdout
    fresh = BACKUP_RE.findall(renewed)
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    no_factor = cli.run("factor", "rm", factor_id, password=PW, check=False)
    assert no_factor.returncode == 1 and "HYGIEIA_TOTP" in no_factor.stderr
    old = cli.run("factor", "rm", factor_id, password=PW, check=False, HYGIEIA_TOTP=codes[1])
    assert old.returncode == 1 and "factor_invalid" in old.stderr
    done = cli.run("factor", "rm", factor_id, password=PW, HYGIEIA_TOTP=fresh[0]).stdout
    assert "password only" in done
    cli.run("logout")
    cli.run("login", "fb@example.org", password=PW)  # no code asked


def test_recover_says_factors_were_removed(cli: Cli) -> None:
    out = cli.run("signup", "fc@example.org", password=PW).stdout
    code = re.search(r"\b([A-Z2-7]{4}(?:-[A-Z2-7]{4}){7})\b", out)
    assert code, out
    _add_totp(cli)
    recovered = cli.run(
        "recover",
        "fc@example.org",
        HYGIEIA_RECOVERY_CODE=code.group(1),
        HYGIEIA_NEW_PASSWORD="a new password after recovery",
    ).stdout
    assert "second factors" in recovered and "were removed" in recovered
    assert "No second factor" in cli.run("factor", "ls").stdout


def test_key_and_recovery_rotation_ask_for_a_factor(cli: Cli) -> None:
    """``key rotate`` and ``recovery rotate`` take the factor as ``account delete`` does
    (HYGIEIA_TOTP, else a prompt); none or a wrong one changes nothing."""
    with HygieiaClient(cli.server) as api:
        code = acct.signup(api, "fr@example.org", PW, kdf=TEST_KDF).recovery_code
    cli.run("login", "fr@example.org", password=PW)
    totp, codes, _ = _add_totp(cli)
    bare = cli.run("key", "rotate", password=PW, check=False, HYGIEIA_RECOVERY_CODE=code)
    assert bare.returncode == 1 and "HYGIEIA_TOTP" in bare.stderr
    valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)
    refused = cli.run("recovery", "rotate", password=PW, check=False, HYGIEIA_TOTP=wrong)
    assert refused.returncode == 1 and "factor_invalid" in refused.stderr
    both = cli.run("key", "rotate", "--new-recovery-code", password=PW, check=False)
    assert both.returncode == 1 and "hygieia recovery rotate" in both.stderr
    with HygieiaClient(cli.server) as api:
        before = acct.login(api, "fr@example.org", PW, factor=lambda _c: ("backup_code", codes[0]))
    assert "Key rotated" not in bare.stdout + refused.stdout + both.stdout

    now = totp.at(time.time() + 30)  # the enrolment spent the current step's code
    done = cli.run("key", "rotate", password=PW, HYGIEIA_RECOVERY_CODE=code, HYGIEIA_TOTP=now)
    assert "Key rotated" in done.stdout
    out = cli.run("recovery", "rotate", password=PW, HYGIEIA_TOTP=codes[1]).stdout
    new_code = out.strip().splitlines()[-1].strip()
    assert new_code != code
    with HygieiaClient(cli.server) as api:
        after = acct.login(api, "fr@example.org", PW, factor=lambda _c: ("backup_code", codes[2]))
    assert after.account.fingerprint != before.account.fingerprint
    assert after.account.recovery_salt != before.account.recovery_salt
