"""The ``hygieia`` CLI against a real server: accounts, session file, key export to gpg."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from hygieia import crypto
from tests.support.cli import Cli
from tests.support.gpg import Gpg

PW = "cli test password ✓ 2026"
CODE_RE = re.compile(r"\b([A-Z2-7]{4}(?:-[A-Z2-7]{4}){7})\b")


def test_account_lifecycle(cli: Cli) -> None:
    out = cli.run("signup", "cli@example.org", password=PW).stdout
    code = CODE_RE.search(out)
    assert code, out
    session_file = cli.home / "session.json"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert PW not in session_file.read_text()

    assert "cli@example.org" in cli.run("whoami").stdout

    cli.run("passwd", password=PW, HYGIEIA_NEW_PASSWORD="second password ✓✓")
    cli.run("logout")
    assert not session_file.exists()
    bad = cli.run("whoami", check=False)
    assert bad.returncode != 0 and "not logged in" in bad.stderr

    wrong = cli.run("login", "cli@example.org", password=PW, check=False)
    assert wrong.returncode == 1 and "invalid_credentials" in wrong.stderr
    cli.run("login", "cli@example.org", password="second password ✓✓")

    cli.run(
        "recover",
        "cli@example.org",
        HYGIEIA_RECOVERY_CODE=code.group(1),
        HYGIEIA_NEW_PASSWORD="third password after recovery",
    )
    assert "cli@example.org" in cli.run("whoami").stdout
    cli.run("login", "cli@example.org", password="third password after recovery")


def test_no_password_without_terminal_is_a_clear_error(cli: Cli) -> None:
    proc = cli.run("signup", "nopw@example.org", check=False)
    assert proc.returncode != 0
    assert "HYGIEIA_PASSWORD" in proc.stderr


EXPORT_PP = "amber lantern drifts over quiet fjords 41"


def test_key_export_opens_in_gpg(cli: Cli, tmp_path: Path) -> None:
    cli.new_account("gpg@example.org", PW)
    key_file = tmp_path / "secret.asc"
    proc = cli.run(
        "key", "export", "-o", str(key_file), password=PW, HYGIEIA_EXPORT_PASSPHRASE=EXPORT_PP
    )
    assert "not with your account password" in proc.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    armored = key_file.read_text()
    assert armored.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")

    gpg = Gpg(tmp_path / "gnupg")
    imp = gpg.run("--import", str(key_file))
    assert imp.returncode == 0, imp.stderr

    # A message sealed by hygieia.crypto for this account's public key...
    public = gpg.run("--armor", "--export", "gpg@example.org").stdout.decode()
    signer_vault = crypto.new_vault_key()
    signer = crypto.generate_identity("sender@example.org", signer_vault)
    message = crypto.seal_message(
        b"lab result: all fine",
        recipients=[public],
        signer=crypto.unlock(signer.locked_secret_key, signer_vault),
    )
    msg_file = tmp_path / "msg.gpg"
    msg_file.write_bytes(message)
    assert gpg.run("--import", input=signer.public_key.encode()).returncode == 0
    # ...opens in stock gpg with the export passphrase...
    dec = gpg.run("--decrypt", str(msg_file), passphrase=EXPORT_PP)
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout == b"lab result: all fine"
    assert b"Good signature" in dec.stderr
    # ...and not with a wrong one, nor with the account password.
    for n, wrong in enumerate(("wrong", PW)):
        gpg2 = Gpg(tmp_path / f"gnupg-wrong{n}")
        gpg2.run("--import", str(key_file))
        assert gpg2.run("--decrypt", str(msg_file), passphrase=wrong).returncode != 0


def test_key_export_with_chosen_passphrase(cli: Cli, tmp_path: Path) -> None:
    cli.new_account("pp@example.org", PW)
    proc = cli.run("key", "export", password=PW, HYGIEIA_EXPORT_PASSPHRASE=EXPORT_PP)
    out = proc.stdout
    # It says which passphrase locks the file, and that it is not the account password.
    assert "locked with the export passphrase from HYGIEIA_EXPORT_PASSPHRASE" in proc.stderr
    assert "not with your account password" in proc.stderr
    gpg = Gpg(tmp_path / "gnupg")
    key_file = tmp_path / "k.asc"
    key_file.write_text(out)
    assert gpg.run("--import", str(key_file)).returncode == 0
    # gpg can use the secret key with the chosen passphrase (sign proves the unlock).
    signed = gpg.run("--local-user", "pp@example.org", "--sign", input=b"x", passphrase=EXPORT_PP)
    assert signed.returncode == 0, signed.stderr


def test_key_export_refuses_the_account_password_and_weak_ones(cli: Cli, tmp_path: Path) -> None:
    cli.new_account("refuse@example.org", PW)
    key_file = tmp_path / "k.asc"
    refusals = {
        PW: "account password",
        f"  {PW}\t": "account password",  # surrounding whitespace
        PW.upper(): "account password",  # case
        PW + "!": "account password",  # a character added
        "password123456789": "too easy to guess",
        "short one": "at least 15 characters",
        "refuse@example.org 2026": "too easy to guess",  # the email
    }
    for phrase, why in refusals.items():
        proc = cli.run(
            "key",
            "export",
            "-o",
            str(key_file),
            password=PW,
            check=False,
            HYGIEIA_EXPORT_PASSPHRASE=phrase,
        )
        assert proc.returncode == 1 and why in proc.stderr, (phrase, proc.stderr)
        assert not key_file.exists()
    # No passphrase and no terminal: a clear error, never a fallback to the password.
    proc = cli.run("key", "export", "-o", str(key_file), password=PW, check=False)
    assert proc.returncode == 1 and "HYGIEIA_EXPORT_PASSPHRASE" in proc.stderr
    assert not key_file.exists()


def test_bad_input_is_refused_where_it_enters(cli: Cli) -> None:
    # Before any prompt: no password is set, so reaching one would fail differently.
    bad_email = cli.run("signup", "not-an-address", check=False)
    assert bad_email.returncode == 2 and "local@domain" in bad_email.stderr
    assert "HYGIEIA_PASSWORD" not in bad_email.stderr
    bad_code = cli.run("recover", "a@example.org", HYGIEIA_RECOVERY_CODE="nope", check=False)
    assert bad_code.returncode == 1 and "recovery code must be" in bad_code.stderr
    assert "HYGIEIA_NEW_PASSWORD" not in bad_code.stderr
    bad_date = cli.run("ls", "--since", "2025-13-01", check=False)
    assert bad_date.returncode == 2 and "YYYY-MM-DD" in bad_date.stderr
    assert "Traceback" not in bad_email.stderr + bad_code.stderr + bad_date.stderr
