"""The ``hygieia`` command line of the client: accounts, keys and records (Typer + Rich).

The server's commands (``serve``, ``db upgrade``, ``admin reconcile``) share the
``hygieia`` name but live in :mod:`hygieia.server`; ``hygieia.__main__`` dispatches.

Passwords come from a hidden prompt or, for scripts, ``HYGIEIA_PASSWORD`` /
``HYGIEIA_NEW_PASSWORD`` / ``HYGIEIA_RECOVERY_CODE``; a second factor's code from
``HYGIEIA_TOTP`` or a prompt. They are never echoed or logged.

Everything printed that a server or a user supplied (titles, e-mails, error details) is
printed with Rich markup, emoji codes and highlighting off: a record titled ``[/]`` is
text, not a markup error, and ``[link=…]`` is not a link. Styling comes only from
:class:`rich.text.Text` parts written here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from hygieia import crypto
from hygieia._memory import tune_glibc_malloc
from hygieia.client import account as acct
from hygieia.client import activity, session_store
from hygieia.client import records as recs
from hygieia.client.contacts import ContactKeyRefused, Contacts, Pinned
from hygieia.client.kdf_policy import KDF_FLOOR_ENV, KdfRefused, KnownKdf
from hygieia.client.passwords import WeakPassword
from hygieia.client.sdk import (
    Account,
    ApiError,
    FactorChallenge,
    HygieiaClient,
    InsecureTransport,
    RecordItem,
)
from hygieia.client.shlink import InvalidLink, LinkError
from hygieia.errors import InvalidToken, TokenExpired, TokenRevoked
from hygieia.ipfs import BlockSource, ContentError, open_block_source


def _lazy(name: str) -> ModuleType:
    """``name``, loaded at its first attribute access: the commands that need it pay for
    it (the recovery kit's pydantic models, sharing, emergency access, restore and CAR
    export cost ~11 MB of memory that `get` and `put` must not carry)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from hygieia.client import emergency as emg
    from hygieia.client import kit as kits
    from hygieia.client import restore, vault_car
    from hygieia.client import rotation as rot
    from hygieia.client import sharing as shr
else:
    emg = _lazy("hygieia.client.emergency")
    kits = _lazy("hygieia.client.kit")
    restore = _lazy("hygieia.client.restore")
    vault_car = _lazy("hygieia.client.vault_car")
    shr = _lazy("hygieia.client.sharing")
    rot = _lazy("hygieia.client.rotation")

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Hygieia medical-record vault",
    epilog="Server commands: hygieia serve | db upgrade | admin reconcile (each with --help).",
)
key_app = typer.Typer(no_args_is_help=True, help="Your OpenPGP key")
account_app = typer.Typer(no_args_is_help=True, help="Your account (deleting it)")
app.add_typer(account_app, name="account")
app.add_typer(key_app, name="key")
recovery_app = typer.Typer(no_args_is_help=True, help="Your recovery code")
app.add_typer(recovery_app, name="recovery")
export_app = typer.Typer(no_args_is_help=True, help="Export your vault")
app.add_typer(export_app, name="export")
kit_app = typer.Typer(no_args_is_help=True, help="Your recovery kit (the vault without its server)")
app.add_typer(kit_app, name="kit")
offline_app = typer.Typer(
    no_args_is_help=True,
    help="List and open records from a recovery kit and IPFS, never contacting the server",
)
app.add_typer(offline_app, name="offline")
share_app = typer.Typer(no_args_is_help=True, help="Share your records with other accounts")
app.add_typer(share_app, name="share")
shared_app = typer.Typer(no_args_is_help=True, help="Records other accounts shared with you")
app.add_typer(shared_app, name="shared")
emergency_app = typer.Typer(
    no_args_is_help=True,
    help="Emergency access: trusted contacts who may read your vault after a waiting "
    "period you can refuse, and the vaults you are a contact for",
)
app.add_typer(emergency_app, name="emergency")
link_app = typer.Typer(
    no_args_is_help=True,
    help="Share links for people without an account (SMART Health Links)",
)
app.add_typer(link_app, name="link")
factor_app = typer.Typer(
    no_args_is_help=True,
    help="Second factors: an authenticator app (TOTP) and backup codes",
)
app.add_typer(factor_app, name="factor")
sessions_app = typer.Typer(
    help="Where you are logged in: list your sessions (the default), end one, end all others"
)
app.add_typer(sessions_app, name="sessions")

# Markup, emoji codes and highlighting off for everything printed (module docstring).
# Lines are never folded by us (soft_wrap): a path, id or CID cut by a newline at the
# console's width can't be copied or pasted back; the terminal folds for display.
out = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)


class _Options:
    """Options of the ``hygieia`` command itself, before the subcommand."""

    insecure = False


options = _Options()


@app.callback()
def _global_options(
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow a plain http:// server that is not on this machine (anyone on "
            "the way sees your session token and can pose as the server)",
        ),
    ] = False,
) -> None:
    options.insecure = insecure


ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server", envvar="HYGIEIA_SERVER", help="Server URL, e.g. http://127.0.0.1:8000"
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text.assemble(("error:", "red"), " ", message))
    return typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """One line instead of a traceback for what the user can act on: the server's
    answer, a wrong secret, a record that failed verification, a file problem. Bad input
    is refused where it enters (the parsers below); anything else is a bug and shows as
    one."""
    try:
        yield
    except ApiError as exc:
        raise fail(f"{exc.detail} ({exc.code})") from None
    except (
        KdfRefused,
        InsecureTransport,
        WeakPassword,
        ContactKeyRefused,
        shr.ShareError,
        emg.EmergencyError,
        rot.RotationError,
    ) as exc:
        raise fail(str(exc)) from None
    except (LinkError, InvalidLink) as exc:
        raise fail(str(exc)) from None
    except crypto.DecryptionError:
        raise fail("wrong password, recovery code or corrupted data") from None
    except recs.RecordVerificationError as exc:
        raise fail(f"{exc}; nothing was written") from None
    except kits.KitError as exc:
        raise fail(f"recovery kit refused: {exc}") from None
    except ContentError as exc:
        raise fail(f"{exc} ({exc.code}); nothing was written") from None
    except OSError as exc:
        raise fail(f"{exc.strerror or exc}: {exc.filename or ''}") from None


# The key's user id is <email>: the shape crypto.generate_identity takes.
_EMAIL = re.compile(r"[^<>\s@]+@[^<>\s@]+")


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise typer.BadParameter("must look like local@domain")
    return value


def _iso_date(value: str) -> str:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("expected a date, YYYY-MM-DD") from None
    return value


EmailArg = Annotated[str, typer.Argument(parser=_email)]
AcceptNewKeyOpt = Annotated[
    bool,
    typer.Option(
        "--accept-new-key",
        help="Accept a key other than the one remembered for this email (only after "
        "checking the new fingerprint with its owner, not through the server)",
    ),
]


def _secret(env: str, prompt: str, *, confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise fail(f"{env} is not set and there is no terminal to ask")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def password(confirm: bool = False) -> str:
    return _secret("HYGIEIA_PASSWORD", "Password", confirm=confirm)


def factor_code() -> str:
    """A current authenticator code or a backup code (``HYGIEIA_TOTP`` or a prompt)."""
    return _secret("HYGIEIA_TOTP", "Authenticator code (or backup code)")


def sensitive_factor(api: HygieiaClient) -> dict[str, str] | None:
    """The ``FactorProof`` a sensitive step (deleting the account, rotating the keys or
    the recovery code) needs: a code for an account with a second factor, else None."""
    return acct.factor_proof(factor_code() if api.factors().factors else None)


def _ask_factor(challenge: FactorChallenge) -> tuple[str, str]:
    return acct.factor_answer(factor_code())


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
    return client(server or saved.server, token=saved.token), saved


def client(server: str, token: str | None = None) -> HygieiaClient:
    """An API client; plain http:// to another machine only with ``--insecure``."""
    try:
        return HygieiaClient(server, token=token, allow_insecure=options.insecure)
    except InsecureTransport as exc:
        raise fail(str(exc)) from None


def known_kdf() -> KnownKdf:
    """The KDF parameters and salts remembered per account, beside the session file."""
    if os.environ.get(KDF_FLOOR_ENV, "").strip():
        # Never silent: a lowered floor lets a server hand out cheap parameters.
        err.print(f"warning: {KDF_FLOOR_ENV} is set: weak KDF parameters are accepted")
    return KnownKdf(session_store.home() / "known_kdf.json")


def _remember(api: HygieiaClient, email: str, session: acct.LoggedIn) -> None:
    session_store.save(
        session_store.SavedSession(
            server=api.server, email=email, token=session.token, expires_at=session.expires_at
        )
    )


# --- accounts ---------------------------------------------------------------------------
@app.command()
def signup(email: EmailArg, server: ServerOpt = None) -> None:
    """Create an account; prints the recovery code once."""
    with friendly_errors(), client(_server(server)) as api:
        pw = password(confirm=True)
        known = known_kdf()
        result = acct.signup(api, email, pw, known=known)
        session = acct.login(api, email, pw, known=known)
        _remember(api, result.account.email, session)
    out.print(Text.assemble("Account created for ", (result.account.email, "bold")))
    out.print(f"Key fingerprint: {result.account.fingerprint}")
    out.print("Recovery code (shown once; store it offline — it is the only way back):")
    out.print(Text.assemble("  ", (result.recovery_code, "bold")))


@app.command()
def login(
    email: str,
    server: ServerOpt = None,
    accept_new_salt: Annotated[
        bool,
        typer.Option(
            "--accept-new-salt",
            help="Accept a salt other than the one remembered for this account "
            "(only if you know the account was re-created)",
        ),
    ] = False,
) -> None:
    """Log in and keep the session token."""
    with friendly_errors(), client(_server(server)) as api:
        session = acct.login(
            api,
            email,
            password(),
            known=known_kdf(),
            accept_new_salt=accept_new_salt,
            factor=_ask_factor,
        )
        _remember(api, session.account.email, session)
    out.print(f"Logged in as {session.account.email}")


@app.command()
def logout(server: ServerOpt = None) -> None:
    """Revoke the session on the server and forget it here."""
    saved = session_store.load()
    if saved is None:
        out.print("not logged in")
        return
    try:
        with client(server or saved.server, token=saved.token) as api:
            api.logout()
    except ApiError as exc:
        if exc.code not in {InvalidToken.code, TokenExpired.code, TokenRevoked.code}:
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
    out.print(f"{me.email}  key {me.fingerprint}  server {api.server}")


@app.command()
def passwd(server: ServerOpt = None) -> None:
    """Change the password (re-wraps the vault key; other sessions are revoked)."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        old = password()
        new = _secret("HYGIEIA_NEW_PASSWORD", "New password", confirm=True)
        acct.change_password(api, old, new, known=known_kdf())
    out.print("Password changed; other sessions were logged out")


@app.command()
def recover(email: str, server: ServerOpt = None) -> None:
    """Set a new password with the recovery code."""
    with friendly_errors(), client(_server(server)) as api:
        code = _secret("HYGIEIA_RECOVERY_CODE", "Recovery code")
        try:
            crypto.parse_recovery_code(code)
        except ValueError as exc:  # before asking for the new password
            raise fail(str(exc)) from None
        new = _secret("HYGIEIA_NEW_PASSWORD", "New password", confirm=True)
        session = acct.recover(api, email, code, new, known=known_kdf())
        _remember(api, session.account.email, session)
    out.print(f"Password reset; logged in as {session.account.email}")
    if session.factors_removed:
        out.print(
            "Your second factors (authenticator apps, passkeys, backup codes) were removed: "
            "add them again with `hygieia factor add-totp`"
        )


@key_app.command("export")
def key_export(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file")
    ] = None,
    server: ServerOpt = None,
) -> None:
    """Export your secret key (armored, for gpg), locked with a passphrase of its own.

    The passphrase is asked twice (HYGIEIA_EXPORT_PASSPHRASE for scripts); your account
    password, or a near variant of it, is refused, and so is a weak one: the file is
    locked with OpenPGP's fast iterated SHA-256, which gpg needs.
    """
    api, _ = authed_client(server)
    with friendly_errors(), api:
        pw = password()
        session = acct.unlock_vault(api, pw, known=known_kdf())
        chosen = _secret(
            "HYGIEIA_EXPORT_PASSPHRASE",
            "Passphrase for the exported key (not your account password)",
            confirm=True,
        )
        armored = acct.export_key(session, chosen, account_password=pw)
    which = (
        "the export passphrase from HYGIEIA_EXPORT_PASSPHRASE"
        if os.environ.get("HYGIEIA_EXPORT_PASSPHRASE")
        else "the export passphrase you just chose"
    )
    truth = f"locked with {which}, not with your account password; gpg asks for it"
    if output is None:
        sys.stdout.write(armored)
        err.print(f"Secret key written to standard output ({truth})")
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(armored)
    err.print(f"Secret key written to {output} ({truth})")


# --- leaving ----------------------------------------------------------------------------
@account_app.command("delete")
def account_delete(
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Do not ask to type the email (for scripts: HYGIEIA_PASSWORD, and "
            "HYGIEIA_TOTP for an account with a second factor)",
        ),
    ] = False,
    server: ServerOpt = None,
) -> None:
    """Delete your account for good: every record, share, emergency contact, link and
    session. Export your recovery kit and records first (the command says how)."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        me = api.me()
        if not yes:
            err.print(
                Text.assemble(
                    "This deletes the account ",
                    (me.email, "bold"),
                    f" on {api.server} for good: every record (unpinned from the "
                    "server's stores), every share both ways, emergency contacts, "
                    "share links and sessions. The server keeps nothing to restore.",
                )
            )
            err.print("Keep your records first, if you want them:")
            err.print("  hygieia kit export -o hygieia-kit.json   (keys and index, offline)")
            err.print("  hygieia export car -o hygieia-vault.car  (every record's ciphertext)")
            if not sys.stdin.isatty():
                raise fail("no terminal to confirm on: pass --yes to delete from a script")
            typed = str(typer.prompt("Type the account's email to delete it"))
            if typed.strip().lower() != me.email.lower():
                raise fail("that is not the account's email; nothing was deleted")
        pw = password()
        # An account with a second factor proves one too (HYGIEIA_TOTP, or asked).
        acct.delete_account(api, pw, factor=sensitive_factor(api), known=known_kdf())
    session_store.clear()
    out.print(
        Text.assemble(
            "Account ", (me.email, "bold"), " deleted; this computer's session is forgotten"
        )
    )


@key_app.command("rotate")
def key_rotate(
    reencrypt: Annotated[
        bool,
        typer.Option(
            "--reencrypt",
            help="Also seal every record's content again under a new session key "
            "(new ids and CIDs; the old ones are deleted and unpinned)",
        ),
    ] = False,
    new_recovery_code: Annotated[
        bool,
        typer.Option(
            "--new-recovery-code",
            help="Make a new recovery code first (printed once) instead of asking for "
            "the current one",
        ),
    ] = False,
    accept_new_key: AcceptNewKeyOpt = False,
    server: ServerOpt = None,
) -> None:
    """A new OpenPGP key and vault key: every record is sealed to the new key, then the
    old one is retired and your other sessions are logged out. Resumes a rotation that
    was interrupted (here or on another device)."""

    def show(done: int, total: int) -> None:
        if err.is_terminal:
            err.print(f"record {done}/{total} re-sealed")

    with friendly_errors():
        api, _ = authed_client(server)
        with api:
            pw = password()
            session = acct.unlock_vault(api, pw, known=known_kdf())
            code: str | None = None
            factor: dict[str, str] | None = None
            pending = api.key_rotation().pending is not None
            if not pending:
                if new_recovery_code and api.factors().factors:
                    # Each authenticator code works once: one can't prove both steps.
                    raise fail(
                        "with a second factor, run `hygieia recovery rotate` first (it "
                        "prints the new code), then `hygieia key rotate`"
                    )
                # Starting a rotation needs a second factor too, if the account has one.
                factor = sensitive_factor(api)
                if new_recovery_code:
                    code = rot.recovery_rotate(api, session, pw)
                    out.print("New recovery code (shown once; store it offline):")
                    out.print(Text.assemble("  ", (code, "bold")))
                    session = acct.unlock_vault(api, pw, known=known_kdf())
                else:
                    code = _secret("HYGIEIA_RECOVERY_CODE", "Current recovery code")
            report = rot.rotate_keys(
                api,
                session,
                pw,
                recovery_code=code,
                contacts=_contacts(),
                factor=factor,
                reencrypt=reencrypt,
                accept_new=accept_new_key,
                say=err.print,
                progress=show,
            )
            # The kit holds the account's key and every record's packets: rebuilt.
            _refresh_kit(api, api.me(), None)
    if report.resumed:
        err.print("Resumed the key rotation that was under way")
    for old_id, new_id in report.moved.items():
        out.print(f"{old_id} -> {new_id}")
    out.print(
        f"Key rotated: {report.old_fingerprint} -> {report.fingerprint} "
        f"({report.records} record(s) re-sealed); other sessions were logged out"
    )


@recovery_app.command("rotate")
def recovery_rotate(server: ServerOpt = None) -> None:
    """A new recovery code (printed once); the old one stops working."""
    with friendly_errors():
        api, _ = authed_client(server)
        with api:
            pw = password()
            session = acct.unlock_vault(api, pw, known=known_kdf())
            code = rot.recovery_rotate(api, session, pw, factor=sensitive_factor(api))
            _refresh_kit(api, api.me(), None)
    out.print("New recovery code (shown once; store it offline — the old one no longer works):")
    out.print(Text.assemble("  ", (code, "bold")))


# --- records ----------------------------------------------------------------------------
@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.update(task, advance=n)


def _vault(server: str | None) -> tuple[HygieiaClient, acct.LoggedIn]:
    api, _ = authed_client(server)
    return api, acct.unlock_vault(api, password(), known=known_kdf())


@app.command()
def put(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    title: Annotated[str | None, typer.Option(help="Title (default: file name)")] = None,
    record_type: Annotated[
        str | None, typer.Option("--type", help="lab, imaging, letter, fhir, …")
    ] = None,
    date: Annotated[
        str | None, typer.Option(help="Date of the record, YYYY-MM-DD", parser=_iso_date)
    ] = None,
    provider: Annotated[str | None, typer.Option(help="Clinic, lab or doctor")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable)")] = None,
    media_type: Annotated[str | None, typer.Option(help="MIME type (default: guessed)")] = None,
    server: ServerOpt = None,
) -> None:
    """Encrypt FILE on this machine and store it; prints the record id and CID."""
    _not_in_emergency(server)
    with friendly_errors():
        fields = recs.RecordFields(
            title=title,
            record_type=record_type,
            date=date,
            provider=provider,
            tags=tuple(tag or ()),
            media_type=media_type,
        )
        api, session = _vault(server)
        size = file.stat().st_size
        with api, progress_bar("sealing", size) as seal, progress_bar("uploading", None) as up:
            rec = recs.put(api, session, file, fields, seal_progress=seal, upload_progress=up)
            _refresh_kit(api, session.account, lambda kit: kits.with_record(kit, rec))
    out.print(f"{rec.id} {rec.cid}")


@app.command("ls")
def list_records(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    record_type: Annotated[str | None, typer.Option("--type")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Has this tag")] = None,
    since: Annotated[
        str | None, typer.Option(help="Record date ≥ YYYY-MM-DD", parser=_iso_date)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Record date ≤ YYYY-MM-DD", parser=_iso_date)
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Words in title, type, provider, file name or tags")
    ] = None,
    server: ServerOpt = None,
) -> None:
    """List your records (metadata decrypted here), or, after `hygieia emergency open
    OWNER`, that owner's."""
    with friendly_errors():
        api, session = _vault(server)
        with api:
            vault = _emergency_vault(api, session)
            if vault is not None:
                listed = list(emg.iter_records(api, vault))
            else:
                items = list(kits.all_items(api))
                ring = recs.KeyRing(api, session)
                listed = [recs.record_info(item, ring.for_item(item)) for item in items]
                _refresh_kit(api, session.account, None, items=items)
        _print_listing(
            listed,
            as_json=as_json,
            text=search,
            record_type=record_type,
            tags=tag or (),
            since=since,
            until=until,
        )


def _print_listing(
    listed: list[recs.RecordInfo],
    *,
    as_json: bool,
    text: str | None,
    record_type: str | None,
    tags: Sequence[str],
    since: str | None,
    until: str | None,
) -> None:
    """What ``ls`` and ``offline ls`` print: a table, tab-separated lines, or JSON."""
    chosen = recs.filter_records(
        listed, text=text, record_type=record_type, tags=tags, since=since, until=until
    )
    items = [r.as_json() for r in chosen]
    unbound = [it["id"] for it in items if not it["bound"]]
    if unbound:
        err.print(
            f"warning: {len(unbound)} unbound (legacy) record(s), sealed before records named "
            f"their id, so the server could have swapped them: {', '.join(unbound)}"
        )
    if as_json:
        sys.stdout.write(json.dumps(items, ensure_ascii=False, indent=2) + "\n")
        return
    # copies: stores holding a good copy / stores configured ("2/2"), as the server counts.
    columns = ("id", "date", "type", "title", "provider", "tags", "size", "copies")
    rows = [
        (
            it["id"],
            it["date"] or "",
            it["type"] or "",
            it["title"] or "",
            it["provider"] or "",
            ", ".join(it["tags"]),
            str(it["size"]),
            f"{it['copies']['ok']}/{it['copies']['total']}" if it["copies"] else "",
        )
        for it in items
    ]
    if not out.is_terminal:  # piped: one tab-separated line per record, never truncated
        for row in rows:
            sys.stdout.write("\t".join(col.replace("\t", " ") for col in row) + "\n")
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text(col) for col in row))  # never markup, whatever the console
    out.print(table)


@app.command()
def get(
    record_id: str,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to write")] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="The ciphertext as stored (+ OUTPUT.pkesk), for gpg")
    ] = False,
    accept_new_key: AcceptNewKeyOpt = False,
    server: ServerOpt = None,
) -> None:
    """Download a record (yours or shared with you), verify its CID and signatures,
    decrypt it."""
    with friendly_errors():
        if raw:
            if output is None:
                raise fail("--raw needs -o PATH")
            _not_in_emergency(server)
            # The password too: the sealed metadata says which CID is this record's.
            # (Your own records only: a shared record's PKESK is for your key, but
            # `get` without --raw is the way to open one.)
            api, session = _vault(server)
            with api, progress_bar("downloading", None) as bar:
                item, meta = recs.get_raw(api, session, record_id, output, progress=bar)
            out.print(f"{output} ({item.size} bytes, CID {item.cid})")
            out.print(f"{output}.pkesk (your PKESK for gpg)")
            _warn_if_unbound(meta, record_id)
            return
        api, session = _vault(server)
        with api:
            vault = _emergency_vault(api, session)
            if vault is not None:
                with progress_bar("downloading", None) as bar:
                    target, meta = emg.get(api, vault, record_id, output, progress=bar)
                out.print(
                    f"{target} ({meta['size']} bytes, verified; {vault.owner.email}'s record, "
                    f"key {vault.owner.spaced})"
                )
                _warn_if_unbound(dict(meta), record_id)
                return
            try:
                item = api.get_record(record_id)
            except ApiError as exc:
                if exc.code != "not_found":
                    raise
                # Not one of mine: perhaps a record shared with me.
                _get_shared(api, session, record_id, output, accept_new_key)
                return
            meta = recs.open_metadata(
                item, recs.KeyRing(api, session).for_item(item), record_id=record_id
            )
            target = output or Path(Path(str(meta.get("filename") or record_id)).name)
            with progress_bar("downloading", item.size) as bar:
                recs.get(api, session, record_id, target, progress=bar)
    out.print(f"{target} ({meta['size']} bytes, verified)")
    _warn_if_unbound(meta, record_id)


@export_app.command("car")
def export_car(
    output: Annotated[Path, typer.Option("-o", "--output", help="The CAR file to write")],
    server: ServerOpt = None,
) -> None:
    """Every record's ciphertext as one CARv1 (roots: the record CIDs) for
    `ipfs dag import` or `hygieia kit restore --car`. Nothing is decrypted."""
    with friendly_errors():
        api, _ = authed_client(server)
        with api, progress_bar("exporting", None) as bar:
            done = vault_car.export_car(api, output, progress=bar)
    records = f"{done.records} record" + ("" if done.records == 1 else "s")
    out.print(
        f"{output}: {records}, {done.content_bytes} bytes of ciphertext "
        f"({done.car_bytes} bytes of CAR)",
        soft_wrap=True,
    )


def _get_shared(
    api: HygieiaClient,
    session: acct.LoggedIn,
    record_id: str,
    output: Path | None,
    accept_new_key: bool,
) -> None:
    contacts = _contacts()
    key = session.unlock()
    item = api.get_shared(record_id)
    meta, owner = shr.open_shared_metadata(
        api, item, key, contacts=contacts, record_id=record_id, accept_new=accept_new_key
    )
    _tell_pinned(owner)
    target = output or Path(Path(str(meta.get("filename") or record_id)).name)
    with progress_bar("downloading", item.size) as bar:
        shr.get_shared(
            api,
            session,
            record_id,
            target,
            contacts=contacts,
            accept_new=accept_new_key,
            progress=bar,
        )
    out.print(
        f"{target} ({meta['size']} bytes, verified; shared by {item.owner.email}, "
        f"key {owner.spaced})"
    )


def _warn_if_unbound(meta: dict[str, Any], record_id: str) -> None:
    if not crypto.metadata_is_bound(meta):
        err.print(
            f"warning: {record_id} is an unbound (legacy) record: it was sealed before "
            "records named their id, so nothing proves it is the record listed under it"
        )


@app.command()
def rm(record_id: str, server: ServerOpt = None) -> None:
    """Delete a record."""
    _not_in_emergency(server)
    api, saved = authed_client(server)
    with friendly_errors(), api:
        recs.remove(api, record_id)
        _refresh_kit(api, None, lambda kit: kits.without_record(kit, record_id), email=saved.email)
    out.print(f"deleted {record_id}")


# --- recovery kit -----------------------------------------------------------------------
KIT_NOTICE = (
    "The kit holds nothing the server doesn't already hold and no plaintext metadata "
    "(titles, types, dates, file names stay sealed). It is still a target for guessing "
    "your password offline: keep it private."
)


def _refresh_kit(
    api: HygieiaClient,
    account: Account | None,
    update: Callable[[kits.Kit], kits.Kit] | None,
    *,
    items: Sequence[RecordItem] | None = None,
    email: str | None = None,
) -> None:
    """Keep the cached kit (``$HYGIEIA_HOME/kit.json``) in step after a change.

    With ``items`` (a complete listing), the kit is rewritten from them; with ``update``
    the cached kit is changed in place if it is this account's on this server, else
    rebuilt from the server. A failure only warns: the command itself succeeded.
    """
    path = kits.cache_path()
    try:
        if items is not None and account is not None:
            kit = kits.kit_from(api.server, account, items)
        else:
            cached = _cached_kit_of(path, api.server, account, email)
            if cached is not None and update is not None:
                kit = update(cached)
            else:
                kit = kits.fetch_kit(api, account=account)
        kits.write_kit(path, kit)
    except (ApiError, kits.KitError, OSError) as exc:
        err.print(f"warning: the cached recovery kit {path} was not updated: {exc}")


def _cached_kit_of(
    path: Path, server: str, account: Account | None, email: str | None
) -> kits.Kit | None:
    try:
        cached = kits.read_kit(path)
    except kits.KitError:
        return None
    ours = cached.server == server and (
        (account is not None and cached.account.id == account.id)
        or (account is None and email is not None and cached.account.email == email)
    )
    return cached if ours else None


@kit_app.command("export")
def kit_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="Write the kit to this file")],
    server: ServerOpt = None,
) -> None:
    """Write your recovery kit: list and open your records without the server."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        kit = kits.fetch_kit(api)
        kits.check_keys(kit)
        kits.write_kit(output, kit)
        with contextlib.suppress(OSError):
            kits.write_kit(kits.cache_path(), kit)
    out.print(f"Recovery kit written to {output.resolve()} ({len(kit.records)} records)")
    out.print(KIT_NOTICE)


KitOpt = Annotated[
    Path | None,
    typer.Option("--kit", help="Recovery kit (default: the cached $HYGIEIA_HOME/kit.json)"),
]
RecoveryFlag = Annotated[
    bool,
    typer.Option(
        "--recovery-code",
        help="Unlock with the recovery code (asked for unless HYGIEIA_RECOVERY_CODE is set)",
    ),
]


def _load_kit(path: Path | None) -> kits.Kit:
    chosen = path or kits.cache_path()
    if path is None and not chosen.exists():
        raise fail(
            f"no cached recovery kit at {chosen}: pass --kit FILE (made by `hygieia kit export`)"
        )
    return kits.read_kit(chosen)


def _open_kit(kit: kits.Kit, use_code: bool) -> kits.OpenedKit:
    """Unlock with HYGIEIA_PASSWORD, else HYGIEIA_RECOVERY_CODE, else a prompt."""
    if os.environ.get("HYGIEIA_PASSWORD") and not use_code:
        return kits.unlock_kit(kit, password=os.environ["HYGIEIA_PASSWORD"])
    if os.environ.get("HYGIEIA_RECOVERY_CODE") or use_code:
        code = _secret("HYGIEIA_RECOVERY_CODE", "Recovery code")
        return kits.unlock_kit(kit, recovery_code=code)
    return kits.unlock_kit(kit, password=password())


@offline_app.command("ls")
def offline_ls(
    kit: KitOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    record_type: Annotated[str | None, typer.Option("--type")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Has this tag")] = None,
    since: Annotated[
        str | None, typer.Option(help="Record date ≥ YYYY-MM-DD", parser=_iso_date)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Record date ≤ YYYY-MM-DD", parser=_iso_date)
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Words in title, type, provider, file name or tags")
    ] = None,
    recovery_code: RecoveryFlag = False,
) -> None:
    """List the records in a recovery kit (no server contacted)."""
    with friendly_errors():
        opened = _open_kit(_load_kit(kit), recovery_code)
        listed = kits.list_kit(opened)
        _print_listing(
            listed,
            as_json=as_json,
            text=search,
            record_type=record_type,
            tags=tag or (),
            since=since,
            until=until,
        )


GatewayOpt = Annotated[
    str | None,
    typer.Option("--gateway", help="IPFS trustless gateway URL (blocks as ?format=raw)"),
]
GatewayCarOpt = Annotated[
    bool,
    typer.Option("--gateway-car", help="Ask the gateway for one CAR per record (?format=car)"),
]
IpfsApiOpt = Annotated[
    str | None, typer.Option("--ipfs-api", help="Kubo RPC API URL, e.g. http://127.0.0.1:5001")
]
CarOpt = Annotated[
    Path | None,
    typer.Option("--car", help="A CAR file holding the records' blocks (hygieia export car)"),
]


def _block_source(
    gateway: str | None, gateway_car: bool, ipfs_api: str | None, car: Path | None
) -> BlockSource:
    if sum(x is not None for x in (gateway, ipfs_api, car)) != 1:
        raise fail("give exactly one of --gateway URL, --ipfs-api URL or --car FILE")
    if car is not None and not car.is_file():
        raise fail(f"no CAR file at {car}")
    return open_block_source(gateway=gateway, ipfs_api=ipfs_api, car=car, gateway_car=gateway_car)


@offline_app.command("get")
def offline_get(
    record_id: str,
    kit: KitOpt = None,
    gateway: GatewayOpt = None,
    gateway_car: GatewayCarOpt = False,
    ipfs_api: IpfsApiOpt = None,
    car: CarOpt = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to write")] = None,
    recovery_code: RecoveryFlag = False,
) -> None:
    """Fetch a record of the kit from IPFS, verify every block and signature, decrypt it
    (no server contacted)."""
    with friendly_errors():
        opened = _open_kit(_load_kit(kit), recovery_code)
        rec = opened.kit.record(record_id)
        meta = kits.open_record(opened, rec).meta
        target = output or Path(Path(str(meta.get("filename") or record_id)).name)
        with (
            _block_source(gateway, gateway_car, ipfs_api, car) as source,
            progress_bar("fetching", rec.size) as bar,
        ):
            kits.get_offline(opened, record_id, source, target, progress=bar)
    out.print(f"{target} ({meta['size']} bytes, verified)")
    _warn_if_unbound(meta, record_id)


@kit_app.command("restore")
def kit_restore(
    kit: Annotated[Path, typer.Option("--kit", help="The recovery kit")],
    server: Annotated[
        str, typer.Option("--server", help="The new server's URL (its account must not exist)")
    ],
    gateway: GatewayOpt = None,
    gateway_car: GatewayCarOpt = False,
    ipfs_api: IpfsApiOpt = None,
    car: CarOpt = None,
    recovery_code: Annotated[
        bool,
        typer.Option(
            "--recovery-code",
            help="Keep your recovery code (asked for unless HYGIEIA_RECOVERY_CODE is set); "
            "without it a new one is made",
        ),
    ] = False,
) -> None:
    """Re-create your account and records on a new server from a kit (same password,
    same keys, same CIDs). Re-running it resumes."""
    with friendly_errors():
        loaded = kits.read_kit(kit)
        pw = password()
        code: str | None = None
        if recovery_code or os.environ.get("HYGIEIA_RECOVERY_CODE"):
            code = _secret("HYGIEIA_RECOVERY_CODE", "Recovery code")
        opened = kits.unlock_kit(loaded, password=pw)
        with (
            client(server) as api,
            _block_source(gateway, gateway_car, ipfs_api, car) as source,
            progress_bar("uploading", None) as bar,
        ):
            session, report = restore.restore(
                api,
                opened,
                pw,
                source,
                recovery_code=code,
                known=known_kdf(),
                progress=bar,
                on_record=lambda rid, what: err.print(f"{what} {rid}"),
            )
            _remember(api, loaded.account.email, session)
            _refresh_kit(api, session.account, None)
    verb = "created" if report.account_created else "already there, logged in"
    out.print(f"Account {loaded.account.email} on {server}: {verb}")
    out.print(
        f"{len(report.uploaded)} record(s) uploaded, {len(report.skipped)} already there; "
        f"log in with your usual password"
    )
    if report.recovery_code:
        out.print(
            "New recovery code (shown once; store it offline). Your old recovery code does "
            "not work on this server:"
        )
        out.print(Text.assemble("  ", (report.recovery_code, "bold")))


# --- sharing ------------------------------------------------------------------------------
WithOpt = Annotated[list[str], typer.Option("--with", help="Recipient email (repeatable)")]


def _contacts() -> Contacts:
    return Contacts(session_store.home() / "contacts.json")


def _tell_pinned(pinned: Pinned) -> None:
    if pinned.first_use:
        err.print(
            f"new contact {pinned.email}: key fingerprint {pinned.spaced} (remembered; "
            "compare it with them through another channel)"
        )
    elif pinned.replaced:
        err.print(f"warning: accepted a NEW key for {pinned.email}: {pinned.spaced}")


def _json_out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    if not out.is_terminal:  # piped: one tab-separated line per row, never truncated
        for row in rows:
            sys.stdout.write("\t".join(col.replace("\t", " ") for col in row) + "\n")
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text(col) for col in row))
    out.print(table)


@share_app.command("add")
def share_add(
    record_ids: Annotated[list[str], typer.Argument(help="Record id(s)")],
    with_: WithOpt,
    accept_new_key: AcceptNewKeyOpt = False,
    server: ServerOpt = None,
) -> None:
    """Share records with accounts: their keys get a copy of each record's session key."""
    _not_in_emergency(server)
    with friendly_errors():
        recipients = [_email(e) for e in with_]
        api, session = _vault(server)
        with api:
            grants, pinned = shr.share(
                api,
                session,
                record_ids,
                recipients,
                contacts=_contacts(),
                accept_new=accept_new_key,
            )
    for p in pinned:
        _tell_pinned(p)
    for g in grants:
        out.print(f"shared {g.record_id} with {g.email} (key {g.fingerprint})")


@share_app.command("rm")
def share_rm(record_id: str, with_: WithOpt, server: ServerOpt = None) -> None:
    """Revoke a record's grant to an account (it stops being served to them at once)."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        for email in with_:
            shr.revoke(api, record_id, email)
            out.print(f"revoked {record_id} for {email}")
    err.print(
        "note: they may have kept the record's key; `hygieia share rotate "
        f"{record_id}` re-encrypts it under a new one"
    )


@share_app.command("ls")
def share_ls(
    record_id: Annotated[str | None, typer.Argument(help="Only this record")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    server: ServerOpt = None,
) -> None:
    """List the grants of your records (or of one)."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        if record_id:
            grants = list(api.record_grants(record_id).items)
        else:
            grants, cursor = [], None
            while True:
                page = api.list_grants(cursor=cursor)
                grants.extend(page.items)
                cursor = page.next_cursor
                if not cursor:
                    break
    items = [
        {
            "record_id": g.record_id,
            "email": g.email,
            "fingerprint": g.fingerprint,
            "created_at": g.created_at,
            "grant_id": g.id,
        }
        for g in grants
    ]
    if as_json:
        _json_out(items)
        return
    _table(
        ("record", "shared with", "key", "since"),
        [(i["record_id"], i["email"], i["fingerprint"], i["created_at"]) for i in items],
    )


@share_app.command("rotate")
def share_rotate(
    record_id: str,
    without: Annotated[
        list[str] | None, typer.Option("--without", help="Also drop this recipient")
    ] = None,
    accept_new_key: AcceptNewKeyOpt = False,
    server: ServerOpt = None,
) -> None:
    """Revoke and re-encrypt: the record is sealed again under a new key (new id and CID),
    shared again with its remaining recipients, and the old one deleted. Prints the new
    id. Safe to re-run after a failure: it resumes."""
    with friendly_errors():
        api, session = _vault(server)
        with api:
            done = shr.rotate(
                api,
                session,
                record_id,
                contacts=_contacts(),
                journal=shr.RotationJournal(session_store.home() / "rotations.json"),
                without=[_email(e) for e in without or ()],
                accept_new=accept_new_key,
            )
            # A new record and an old one gone: the cached kit is rebuilt.
            _refresh_kit(api, session.account, None)
    err.print(
        f"{record_id} re-encrypted as {done.new_id} (CID {done.new_cid}); shared again with "
        f"{', '.join(done.recipients) or 'nobody'}; the old record was deleted"
    )
    out.print(done.new_id)


@shared_app.command("ls")
def shared_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    accept_new_key: AcceptNewKeyOpt = False,
    server: ServerOpt = None,
) -> None:
    """Records shared with you (metadata checked against each owner's remembered key)."""
    with friendly_errors():
        api, session = _vault(server)
        stale: list[Any] = []
        with api:
            infos = list(
                shr.iter_shared(
                    api,
                    session.unlock(),
                    contacts=_contacts(),
                    accept_new=accept_new_key,
                    stale=stale,
                )
            )
    for info in infos:
        _tell_pinned(info.owner)
    for item in stale:
        err.print(
            f"warning: {item.id} (shared by {item.owner.email}) is sealed to a key you "
            "rotated away: ask them to share it again"
        )
    items = [i.as_json() for i in infos]
    if as_json:
        _json_out(items)
        return
    _table(
        ("id", "owner", "shared", "date", "type", "title", "size"),
        [
            (
                i["id"],
                i["owner"],
                i["granted_at"],
                i["date"] or "",
                i["type"] or "",
                i["title"] or "",
                str(i["size"]),
            )
            for i in items
        ],
    )


@shared_app.command("rm")
def shared_rm(record_id: str, server: ServerOpt = None) -> None:
    """Remove a record shared with you from your list (its owner keeps it)."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        api.remove_shared(record_id)
    out.print(f"removed {record_id} from your shared records")


# --- emergency access ---------------------------------------------------------------------
def _selection() -> emg.Selection:
    return emg.Selection(session_store.home() / "emergency.json")


def _selected_owner(server: str | None) -> str | None:
    saved = session_store.load()
    if saved is None:
        return None
    return _selection().get((server or saved.server).rstrip("/"), saved.email)


def _not_in_emergency(server: str | None) -> None:
    """Writes are refused while another owner's vault is selected: nothing must land in
    the wrong vault, and emergency access is read-only anyway."""
    owner = _selected_owner(server)
    if owner is not None:
        raise fail(
            f"you are reading {owner}'s vault (emergency access, read-only); run "
            "`hygieia emergency close` first"
        )


def _emergency_vault(api: HygieiaClient, session: acct.LoggedIn) -> emg.OwnerVault | None:
    """The selected owner's vault, opened (and every key checked) again for this command."""
    owner = _selection().get(api.server, session.account.email)
    if owner is None:
        return None
    err.print(
        f"reading {owner}'s vault (emergency access, read-only); "
        "`hygieia emergency close` goes back to yours"
    )
    return emg.open_vault(api, session, owner, contacts=_contacts())


def _wait(value: str) -> int:
    try:
        return emg.parse_wait(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@emergency_app.command("add")
def emergency_add(
    email: EmailArg,
    wait: Annotated[
        int, typer.Option("--wait", parser=_wait, help="Waiting period, 1d-30d (e.g. 7d)")
    ],
    accept_new_key: AcceptNewKeyOpt = False,
    server: ServerOpt = None,
) -> None:
    """Name EMAIL as a trusted contact: your vault key is sealed to their key. They may
    ask for access; unless you refuse within the wait, they can then read your records."""
    _not_in_emergency(server)
    with friendly_errors():
        api, session = _vault(server)
        with api:
            made, pinned = emg.add_contact(
                api, session, email, wait_days=wait, contacts=_contacts(), accept_new=accept_new_key
            )
    _tell_pinned(pinned)
    out.print(
        f"{made.email} is an emergency contact (key {made.fingerprint}, wait {made.wait_days} days)"
    )


def _since(at: str | None) -> str:
    return at or ""


@emergency_app.command("ls")
def emergency_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    server: ServerOpt = None,
) -> None:
    """Your emergency contacts (pending requests first, to deny or approve) and the vaults
    you are a contact for."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        mine = list(api.emergency_contacts().items)
        theirs = list(api.emergency_access().items)
    if as_json:
        _json_out(
            {
                "contacts": [
                    {
                        "email": c.email,
                        "fingerprint": c.fingerprint,
                        "wait_days": c.wait_days,
                        "status": c.status,
                        "requested_at": c.requested_at,
                        "release_at": c.release_at,
                    }
                    for c in mine
                ],
                "owners": [
                    {
                        "email": a.owner.email,
                        "fingerprint": a.owner.fingerprint,
                        "wait_days": a.wait_days,
                        "status": a.status,
                        "requested_at": a.requested_at,
                        "release_at": a.release_at,
                    }
                    for a in theirs
                ],
            }
        )
        return
    for c in mine:
        if c.status == "requested":
            err.print(
                f"PENDING REQUEST: {c.email} asked for access to your vault at "
                f"{c.requested_at}; it is released at {c.release_at} unless you run "
                f"`hygieia emergency deny {c.email}`"
            )
        elif c.status == "granted":
            err.print(
                f"GRANTED: {c.email} can read your vault; `hygieia emergency deny {c.email}` "
                "ends it"
            )
    out.print("your emergency contacts:")
    _table(
        ("contact", "key", "wait", "status", "requested", "released at"),
        [
            (
                c.email,
                c.fingerprint,
                f"{c.wait_days}d",
                c.status,
                _since(c.requested_at),
                _since(c.release_at),
            )
            for c in mine
        ],
    )
    out.print("vaults you are an emergency contact for:")
    _table(
        ("owner", "key", "wait", "status", "requested", "released at"),
        [
            (
                a.owner.email,
                a.owner.fingerprint,
                f"{a.wait_days}d",
                a.status,
                _since(a.requested_at),
                _since(a.release_at),
            )
            for a in theirs
        ],
    )


@emergency_app.command("rm")
def emergency_rm(email: EmailArg, server: ServerOpt = None) -> None:
    """Remove an emergency contact: their sealed key is deleted, any access ends now."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        emg.remove_contact(api, email)
    out.print(f"removed {email} as an emergency contact")


@emergency_app.command("approve")
def emergency_approve(contact: EmailArg, server: ServerOpt = None) -> None:
    """Grant CONTACT's waiting request now, without the rest of the wait."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        emg.approve(api, contact)
    out.print(f"{contact} can read your vault now; `hygieia emergency deny {contact}` ends it")


@emergency_app.command("deny")
def emergency_deny(contact: EmailArg, server: ServerOpt = None) -> None:
    """Refuse CONTACT's waiting request, or end their granted access."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        emg.deny(api, contact)
    out.print(f"{contact} has no access to your vault")


@emergency_app.command("request")
def emergency_request(owner: EmailArg, server: ServerOpt = None) -> None:
    """Ask OWNER's vault: granted after their waiting period unless they refuse."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        access = emg.request(api, owner)
    if access.status == "granted":
        out.print(f"access to {owner}'s vault is granted: `hygieia emergency open {owner}`")
    else:
        out.print(
            f"requested access to {owner}'s vault at {access.requested_at}; released at "
            f"{access.release_at} unless they refuse"
        )


@emergency_app.command("open")
def emergency_open(
    owner: EmailArg, accept_new_key: AcceptNewKeyOpt = False, server: ServerOpt = None
) -> None:
    """Open OWNER's vault (once granted): every key is checked, then `hygieia ls` and
    `hygieia get` read OWNER's records, read-only, until `hygieia emergency close`."""
    with friendly_errors():
        api, session = _vault(server)
        with api:
            vault = emg.open_vault(
                api, session, owner, contacts=_contacts(), accept_new=accept_new_key
            )
            count = sum(1 for _ in emg.iter_records(api, vault))
            _selection().put(api.server, session.account.email, owner)
    _tell_pinned(vault.owner)
    out.print(
        f"reading {owner}'s vault (key {vault.owner.spaced}, {count} records), read-only: "
        "`hygieia ls`, `hygieia get ID`; `hygieia emergency close` goes back to yours"
    )


@emergency_app.command("close")
def emergency_close() -> None:
    """Go back to your own vault after `hygieia emergency open`."""
    if _selection().clear():
        out.print("back to your own vault")
    else:
        out.print("no other vault was open")


def _audit_since(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return activity.parse_since(value)
    except ValueError:
        raise typer.BadParameter(
            "expected 7d, 12h, 30m, 2w, a date (2026-11-01) or a time with an offset"
        ) from None


def _kind(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z_]*(\.[a-z][a-z_]*)?", value):
        raise typer.BadParameter("an event kind (record.read) or a family (record, auth)")
    return value


def _client_label(kind: str | None, user_agent: str | None) -> str:
    if kind is None:
        return ""
    return f"{kind} ({user_agent})" if user_agent else kind


@sessions_app.callback(invoke_without_command=True)
def sessions_default(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    server: ServerOpt = None,
) -> None:
    """Your live sessions (`hygieia sessions ls`), unless a subcommand is given."""
    if ctx.invoked_subcommand is None:
        sessions_ls(as_json=as_json, server=server)


@sessions_app.command("ls")
def sessions_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    server: ServerOpt = None,
) -> None:
    """Every live session of your account: client, address, created and last used; `*`
    marks this one."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        sessions = api.sessions()
    if as_json:
        _json_out([vars(s) for s in sessions])
        return
    _table(
        ("", "id", "client", "address", "created", "last used"),
        [
            (
                "*" if s.current else "",
                s.id,
                _client_label(s.client, s.user_agent),
                s.address or "",
                s.created_at,
                s.last_used_at or "",
            )
            for s in sessions
        ],
    )


@sessions_app.command("rm")
def sessions_rm(
    session_id: Annotated[str, typer.Argument(help="Session id (from `hygieia sessions`)")],
    server: ServerOpt = None,
) -> None:
    """End one of your sessions: its next request is refused."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        current = next((s.id for s in api.sessions() if s.current), None)
        api.revoke_session(session_id)
    if session_id == current:
        session_store.clear()
        out.print("ended this session; logged out")
    else:
        out.print(f"ended session {session_id}")


@sessions_app.command("rm-others")
def sessions_rm_others(server: ServerOpt = None) -> None:
    """End every session of your account except this one."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        n = api.revoke_other_sessions()
    out.print(f"ended {n} other session(s)")


@app.command()
def audit(
    since: Annotated[
        str | None,
        typer.Option(help="From: 7d, 12h, 30m, 2w ago, a date (2026-11-01, UTC) or a time"),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            parser=_kind,
            help="Only this kind (record.read) or family (record = every record.*); repeatable",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many events (default: all)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    server: ServerOpt = None,
) -> None:
    """Your activity trail, newest first: logins, password and session changes, record
    uploads, views, downloads and deletions, sharing, links and emergency access, each
    with its address and client. Pages through all of it."""
    after = _audit_since(since)
    api, _ = authed_client(server)
    with friendly_errors(), api:
        events = []
        for e in api.audit_all(since=after, kinds=kind or ()):
            events.append(e)
            if limit is not None and len(events) >= limit:
                break
    if as_json:
        _json_out(
            [
                {
                    "id": e.id,
                    "at": e.at,
                    "event": e.event,
                    "description": activity.describe(e.event),
                    "address": e.address,
                    "client": e.client,
                    "user_agent": e.user_agent,
                    **{k: v for k, v in vars(e.detail).items() if v is not None},
                }
                for e in events
            ]
        )
        return
    _table(
        ("at", "what", "address", "client", "record", "who"),
        [
            (
                e.at,
                activity.describe(e.event),
                e.address or "",
                _client_label(e.client, e.user_agent),
                e.detail.record_id or "",
                e.detail.recipient or e.detail.contact or "",
            )
            for e in events
        ],
    )


# --- share links (SMART Health Links, protocol §9) -----------------------------------------
_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(value: str) -> dt.timedelta:
    match = _DURATION.fullmatch(value.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise typer.BadParameter("expected a duration such as 30m, 12h, 7d or 2w")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _qr(link: str) -> None:
    import segno  # only here: nothing else needs it

    # Error correction M, as the SHL spec asks; half-block characters, two rows a line.
    segno.make(link, error="m", micro=False).terminal(out=sys.stdout, compact=True)


@link_app.command("create")
def link_create(
    record_ids: Annotated[list[str], typer.Argument(help="Record id(s)")],
    expires: Annotated[
        str, typer.Option("--expires", help="Lifetime: 30m, 12h, 7d, 2w (at most the server's)")
    ] = "7d",
    passcode: Annotated[
        bool,
        typer.Option(
            "--passcode",
            help="Ask for a passcode the recipient must give (or HYGIEIA_LINK_PASSCODE); "
            "tell it to them apart from the link",
        ),
    ] = False,
    max_opens: Annotated[
        int | None, typer.Option("--max-opens", min=1, help="Stop after this many opens")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="A short description (≤ 80 characters)")
    ] = None,
    direct: Annotated[
        bool,
        typer.Option("--direct", help="A U-flag link: one record, no passcode, fetched by GET"),
    ] = False,
    qr: Annotated[
        bool | None, typer.Option("--qr/--no-qr", help="Show a QR code (default: on a terminal)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    server: ServerOpt = None,
) -> None:
    """Make a SMART Health Link to records: anyone with it opens them, no account needed.

    The records are decrypted here and encrypted again under a new key that exists only
    in the link (after '#'); the server keeps the encrypted copy until the link ends.
    """
    from hygieia.client import links as lnk  # only here: it loads the JOSE library

    lifetime = _duration(expires)
    with friendly_errors():
        code = _secret("HYGIEIA_LINK_PASSCODE", "Link passcode", confirm=True) if passcode else None
        api, session = _vault(server)
        with api:
            link, created = lnk.create_link(
                api,
                session,
                record_ids,
                expires_in=lifetime,
                passcode=code,
                max_opens=max_opens,
                label=label,
                direct=direct,
            )
    if as_json:
        _json_out({"link": link, "id": created["id"], "expires_at": created["expires_at"]})
        return
    out.print(link)
    if qr or (qr is None and out.is_terminal):
        _qr(link)
    err.print(
        f"link {created['id']}: until {created['expires_at']}"
        + (f", {max_opens} open(s)" if max_opens else "")
        + (", passcode required" if code else "")
        + ". Anyone with the link can open the records: send it only to the recipient."
    )


@link_app.command("ls")
def link_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    server: ServerOpt = None,
) -> None:
    """Your share links: label, records, expiry, opens and state."""
    from hygieia.client import links as lnk  # only here: it loads the JOSE library

    with friendly_errors():
        api, session = _vault(server)
        with api:
            infos = lnk.list_links(api, session)
    if as_json:
        _json_out([vars(i) for i in infos])
        return

    def opens(i: lnk.LinkInfo) -> str:
        return f"{i.opens}/{i.max_opens}" if i.max_opens else str(i.opens)

    _table(
        ("id", "label", "records", "expires", "opens", "state"),
        [
            (i.id, i.label or "", " ".join(i.records), i.expires_at, opens(i), i.state)
            for i in infos
        ],
    )


@link_app.command("revoke")
def link_revoke(
    link: Annotated[str, typer.Argument(help="The link's id (or its first characters)")],
    server: ServerOpt = None,
) -> None:
    """End a link now: it answers 404 from then on and its encrypted copy is dropped."""
    from hygieia.client import links as lnk  # only here: it loads the JOSE library

    api, _ = authed_client(server)
    with friendly_errors(), api:
        link_id = lnk.revoke_link(api, link)
    out.print(f"revoked link {link_id}")


@link_app.command("open")
def link_open(
    link: Annotated[str, typer.Argument(help="The link: shlink:/… or https://…#shlink:/…")],
    output: Annotated[
        Path, typer.Option("-o", "--output", file_okay=False, help="Directory to write into")
    ] = Path("."),
    passcode: Annotated[
        bool,
        typer.Option("--passcode", help="Ask for the link's passcode (or HYGIEIA_LINK_PASSCODE)"),
    ] = False,
    recipient: Annotated[
        str, typer.Option("--recipient", help="Who you are, as the link's owner will see it")
    ] = "Hygieia CLI",
) -> None:
    """Open a SMART Health Link (Hygieia's or any other SHL's): no account needed."""
    from hygieia.client import links as lnk  # only here: it loads the JOSE library

    with friendly_errors():
        code = _secret("HYGIEIA_LINK_PASSCODE", "Link passcode") if passcode else None
        try:
            opened = lnk.open_link(link, output, passcode=code, recipient=recipient)
        except lnk.PasscodeRequired as exc:
            hint = "" if exc.given else "; run again with --passcode"
            raise fail(f"{exc}{hint}", code=3) from None
    for f in opened:
        out.print(f"wrote {f.path} ({f.content_type}, {f.size} bytes)")
        if f.attachment is not None:
            out.print(f"wrote {f.attachment} (the document inside it)")


def main() -> None:
    tune_glibc_malloc()
    app()


# --- second factors (protocol §10) -------------------------------------------------------
def _enrolment_code() -> str:
    """The first code of a new authenticator: ``HYGIEIA_TOTP``, a prompt, or one line on
    standard input (for scripts that read the secret printed above)."""
    value = os.environ.get("HYGIEIA_TOTP")
    if value:
        return value
    if sys.stdin.isatty():
        return str(typer.prompt("Code shown by the app"))
    sys.stdout.flush()
    line = sys.stdin.readline().strip()
    if not line:
        raise fail("HYGIEIA_TOTP is not set and no code came on standard input")
    return line


def _print_backup_codes(codes: Sequence[str]) -> None:
    out.print(
        Text(
            "Backup codes: shown this once. Store them offline; each works once, "
            "in place of an authenticator code.",
            style="bold",
        )
    )
    for code in codes:
        out.print(f"  {code}")


@factor_app.command("ls")
def factor_ls(server: ServerOpt = None) -> None:
    """List your second factors and how many backup codes are left."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        listed = api.factors()
    if not listed.factors:
        out.print("No second factor: `hygieia factor add-totp` adds an authenticator app")
        return
    rows = [
        (f.id, f.kind, f.label, f.created_at[:19], (f.last_used_at or "never")[:19])
        for f in listed.factors
    ]
    if not out.is_terminal:  # piped: one tab-separated line per factor, never truncated
        for row in rows:
            sys.stdout.write("\t".join(col.replace("\t", " ") for col in row) + "\n")
    else:
        table = Table("id", "kind", "label", "added", "last used")
        for row in rows:
            table.add_row(*(Text(col) for col in row))
        out.print(table)
    out.print(f"Backup codes left: {listed.backup_codes_left}")


@factor_app.command("add-totp")
def factor_add_totp(
    label: Annotated[
        str, typer.Option("--label", help="A name for this authenticator")
    ] = "Authenticator app",
    server: ServerOpt = None,
) -> None:
    """Add an authenticator app: shows the secret and a QR code, then asks for a code."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        started = api.start_totp(label)
        import segno  # only here and for links

        out.print("Scan this QR code with your authenticator app, or type in the secret.")
        sys.stdout.flush()
        segno.make(started.otpauth_uri, error="m", micro=False).terminal(
            out=sys.stdout, compact=True
        )
        out.print(Text.assemble("Secret: ", (started.secret, "bold")))
        done = api.confirm_totp(started.factor_id, _enrolment_code())
    out.print(Text.assemble("Second factor added: ", (done.factor.label, "bold")))
    out.print(f"Factor id: {done.factor.id}")
    if done.backup_codes:
        _print_backup_codes(done.backup_codes)


@factor_app.command("rm")
def factor_rm(
    factor_id: Annotated[str, typer.Argument(help="The factor's id (see `factor ls`)")],
    server: ServerOpt = None,
) -> None:
    """Remove a second factor (asks for the password and a current code)."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        proof = acct.password_proof(api, password(), known=known_kdf())
        api.remove_factor(factor_id, proof, acct.factor_proof(factor_code()))
        left = api.factors()
    out.print("Second factor removed")
    if not left.factors:
        out.print("No second factor is left: logins ask for the password only")


@factor_app.command("backup-codes")
def factor_backup_codes(server: ServerOpt = None) -> None:
    """Make ten new backup codes (the old ones stop working)."""
    api, _ = authed_client(server)
    with friendly_errors(), api:
        proof = acct.password_proof(api, password(), known=known_kdf())
        codes = api.renew_backup_codes(proof, acct.factor_proof(factor_code()))
    _print_backup_codes(codes)
    out.print("The earlier backup codes no longer work.")
