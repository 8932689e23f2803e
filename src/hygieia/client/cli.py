"""The ``hygieia`` command line: server, accounts and records (Typer + Rich).

Passwords come from a hidden prompt or, for scripts, ``HYGIEIA_PASSWORD`` /
``HYGIEIA_NEW_PASSWORD`` / ``HYGIEIA_RECOVERY_CODE``. They are never echoed or logged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client import session_store
from hygieia.client.sdk import ApiError, HygieiaClient

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Hygieia medical-record vault")
key_app = typer.Typer(no_args_is_help=True, help="Your OpenPGP key")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance")
admin_app = typer.Typer(no_args_is_help=True, help="Server administration")
app.add_typer(key_app, name="key")
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")

out = Console()
err = Console(stderr=True)

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server", envvar="HYGIEIA_SERVER", help="Server URL, e.g. http://127.0.0.1:8000"
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        raise fail(f"{exc.detail} ({exc.code})") from None
    except crypto.DecryptionError:
        raise fail("wrong password, recovery code or corrupted data") from None
    except ValueError as exc:
        raise fail(str(exc)) from None


def _secret(env: str, prompt: str, *, confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise fail(f"{env} is not set and there is no terminal to ask")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def password(confirm: bool = False) -> str:
    return _secret("HYGIEIA_PASSWORD", "Password", confirm=confirm)


def _server(explicit: str | None) -> str:
    if explicit:
        return explicit
    saved = session_store.load()
    if saved:
        return saved.server
    return "http://127.0.0.1:8000"


def authed_client(server: str | None) -> tuple[HygieiaClient, session_store.SavedSession]:
    saved = session_store.load()
    if saved is None:
        raise fail("not logged in: run `hygieia login EMAIL`")
    return HygieiaClient(server or saved.server, token=saved.token), saved


def _remember(api: HygieiaClient, email: str, session: acct.LoggedIn) -> None:
    session_store.save(
        session_store.SavedSession(
            server=api.server, email=email, token=session.token, expires_at=session.expires_at
        )
    )


# --- server -----------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HYGIEIA_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (HYGIEIA_PORT)")] = None,
) -> None:
    """Run the Hygieia server."""
    from hygieia.server import run

    run(host=host, port=port)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations."""
    from hygieia.config import Settings
    from hygieia.db.engine import make_engine, migrate

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    migrate(engine)
    engine.dispose()
    out.print("database is up to date")


# --- accounts ---------------------------------------------------------------------------
@app.command()
def signup(email: str, server: ServerOpt = None) -> None:
    """Create an account; prints the recovery code once."""
    with friendly_errors(), HygieiaClient(_server(server)) as api:
        pw = password(confirm=True)
        result = acct.signup(api, email, pw)
        session = acct.login(api, email, pw)
        _remember(api, result.account["email"], session)
    out.print(f"Account created for [bold]{result.account['email']}[/bold]")
    out.print(f"Key fingerprint: {result.account['fingerprint']}")
    out.print("Recovery code (shown once; store it offline — it is the only way back):")
    out.print(f"  [bold]{result.recovery_code}[/bold]", highlight=False)


@app.command()
def login(email: str, server: ServerOpt = None) -> None:
    """Log in and keep the session token."""
    with friendly_errors(), HygieiaClient(_server(server)) as api:
        session = acct.login(api, email, password())
        _remember(api, session.account["email"], session)
    out.print(f"Logged in as {session.account['email']}")


@app.command()
def logout(server: ServerOpt = None) -> None:
    """Revoke the session on the server and forget it here."""
    saved = session_store.load()
    if saved is None:
        out.print("not logged in")
        return
    try:
        with HygieiaClient(server or saved.server, token=saved.token) as api:
            api.logout()
    except ApiError as exc:
        if exc.code not in {"invalid_token", "token_expired", "token_revoked"}:
            session_store.clear()
            raise fail(f"{exc.detail} ({exc.code}); local session forgotten") from None
    session_store.clear()
    out.print("Logged out")


@app.command()
def whoami(server: ServerOpt = None) -> None:
    """Show the logged-in account."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        me = api.me()
    out.print(f"{me['email']}  key {me['fingerprint']}  server {api.server}", highlight=False)


@app.command()
def passwd(server: ServerOpt = None) -> None:
    """Change the password (re-wraps the vault key; other sessions are revoked)."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        old = password()
        new = _secret("HYGIEIA_NEW_PASSWORD", "New password", confirm=True)
        acct.change_password(api, old, new)
    out.print("Password changed; other sessions were logged out")


@app.command()
def recover(email: str, server: ServerOpt = None) -> None:
    """Set a new password with the recovery code."""
    with friendly_errors(), HygieiaClient(_server(server)) as api:
        code = _secret("HYGIEIA_RECOVERY_CODE", "Recovery code")
        new = _secret("HYGIEIA_NEW_PASSWORD", "New password", confirm=True)
        session = acct.recover(api, email, code, new)
        _remember(api, session.account["email"], session)
    out.print(f"Password reset; logged in as {session.account['email']}")


@key_app.command("export")
def key_export(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file")
    ] = None,
    server: ServerOpt = None,
) -> None:
    """Export your secret key (armored, for gpg), locked with a passphrase you choose."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        pw = password()
        session = acct.unlock_vault(api, pw)
        passphrase = os.environ.get("HYGIEIA_EXPORT_PASSPHRASE") or pw
        armored = acct.export_key(session, passphrase)
    if output is None:
        sys.stdout.write(armored)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(armored)
    err.print(f"Secret key written to {output} (passphrase: your account password)")


def main() -> None:
    app()
