"""``hygieia account delete`` against a real server on both databases: it offers the
exports first and asks for the email on a terminal, refuses without one unless
``--yes``, refuses a wrong password, and once done the account is gone (session file
cleared, login refused) while the email can sign up and log in again from this same
computer (the remembered salt is forgotten with the account)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pyotp
from sqlalchemy import create_engine, func, select

from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient
from hygieia.db.models import Record, User
from tests.support.accounts import TEST_KDF
from tests.support.cli import Cli
from tests.support.kdf import CLIENT_ENV

EMAIL = "leaving.cli@example.org"
PW = "cli deletion password 2026 ✓"


def _rows(cli: Cli, db_url: str) -> tuple[int, int]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            users = conn.scalar(select(func.count()).select_from(User).where(User.email == EMAIL))
            records = conn.scalar(select(func.count()).select_from(Record))
    finally:
        engine.dispose()
    return int(users or 0), int(records or 0)


def _on_terminal(cli: Cli, *args: str, answer: str) -> tuple[int, str]:
    """Run the CLI with a terminal as its standard input, typing ``answer``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
    env.update(CLIENT_ENV)
    env.update(
        {"HYGIEIA_HOME": str(cli.home), "HYGIEIA_SERVER": cli.server, "HYGIEIA_PASSWORD": PW}
    )
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hygieia", *args],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        os.write(master, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=300)
    finally:
        os.close(master)
        os.close(slave)
    return proc.returncode, out.decode()


def test_account_delete(cli: Cli, db_url: str, tmp_path: Path) -> None:
    cli.new_account(EMAIL, PW)
    record = tmp_path / "r.txt"
    record.write_text("a record to take away")
    cli.run("put", str(record), password=PW)
    assert _rows(cli, db_url) == (1, 1)

    # No terminal and no --yes: refused, and the exports are offered first.
    proc = cli.run("account", "delete", password=PW, check=False)
    assert proc.returncode == 1 and "--yes" in proc.stderr
    assert "hygieia kit export" in proc.stderr and "hygieia export car" in proc.stderr
    # On a terminal, a wrong email typed: nothing deleted.
    code, out = _on_terminal(cli, "account", "delete", answer="someone.else@example.org")
    assert code == 1 and "nothing was deleted" in out, out
    # --yes with a wrong password: refused before anything is sent.
    proc = cli.run("account", "delete", "--yes", password=PW + "x", check=False)
    assert proc.returncode == 1 and "wrong password" in proc.stderr
    assert _rows(cli, db_url) == (1, 1)
    assert EMAIL in cli.run("whoami").stdout

    # The email typed on the terminal: deleted.
    code, out = _on_terminal(cli, "account", "delete", answer=EMAIL.upper())
    assert code == 0, out
    assert f"Account {EMAIL} deleted" in out
    assert _rows(cli, db_url) == (0, 0)
    assert not (cli.home / "session.json").exists()
    gone = cli.run("login", EMAIL, password=PW, check=False)
    assert gone.returncode == 1 and "invalid_credentials" in gone.stderr

    # The email signs up again and logs in from here without --accept-new-salt.
    with HygieiaClient(cli.server) as api:
        acct.signup(api, EMAIL, "the same email, a new account 7", kdf=TEST_KDF)
    cli.run("login", EMAIL, password="the same email, a new account 7")
    # ... and a script deletes it with --yes.
    proc = cli.run("account", "delete", "--yes", password="the same email, a new account 7")
    assert f"Account {EMAIL} deleted" in proc.stdout
    assert _rows(cli, db_url) == (0, 0)


def test_account_delete_with_a_second_factor(cli: Cli, db_url: str) -> None:
    """An account with TOTP (enrolled through the SDK, pyotp as the app): a script must
    give HYGIEIA_TOTP; a wrong code deletes nothing; the right one deletes."""
    cli.new_account(EMAIL, PW)
    with HygieiaClient(cli.server) as api:
        api.token = acct.login(api, EMAIL, PW).token
        started = api.start_totp("Phone")
        totp = pyotp.TOTP(started.secret)
        api.confirm_totp(started.factor_id, totp.now())
    no_code = cli.run("account", "delete", "--yes", password=PW, check=False)
    assert no_code.returncode == 1 and "HYGIEIA_TOTP" in no_code.stderr
    valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)
    bad = cli.run("account", "delete", "--yes", password=PW, check=False, HYGIEIA_TOTP=wrong)
    assert bad.returncode == 1 and "factor_invalid" in bad.stderr
    assert _rows(cli, db_url) == (1, 0)
    code = totp.at(time.time() + 30)
    done = cli.run("account", "delete", "--yes", password=PW, HYGIEIA_TOTP=code)
    assert f"Account {EMAIL} deleted" in done.stdout
    assert _rows(cli, db_url) == (0, 0)
