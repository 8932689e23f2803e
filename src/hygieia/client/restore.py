"""``hygieia kit restore``: a vault moved onto a fresh server from its recovery kit.

The account is re-created with the same keys: public key, locked secret key, salt, KDF
parameters and password-wrapped vault key exactly as in the kit, so the same password
logs in afterwards. The recovery verifier is not in a kit (it is a server secret), so:
with the old recovery code, it is derived again and the recovery salt and
recovery-wrapped vault key are kept; without it, a new recovery code is made (new
recovery salt, the vault key wrapped again) and the old code works on the old server
only. Then every record is uploaded with its own id, CID, PKESK, sealed metadata and
envelope, its ciphertext streamed from IPFS (a gateway, a Kubo RPC API or a CAR file)
and verified block by block: the new server recomputes the same CID.

Resumable: an account that already exists and takes the password is logged into (it
must have the kit's fingerprint), and a record already there under its id with the
same CID is skipped. Nothing derived from the password is sent before the kit's wrapped
vault key unwrapped with it (:func:`hygieia.client.kit.unlock_kit`), which proves the
kit's KDF parameters are the account owner's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hygieia import crypto
from hygieia.client.account import LoggedIn
from hygieia.client.kdf_policy import KnownKdf, Remembered
from hygieia.client.kit import (
    KitError,
    KitRecord,
    OpenedKit,
    list_kit,
    verified_content,
)
from hygieia.client.records import Progress, RecordMismatchError, same_cid
from hygieia.client.sdk import ApiError, FactorChallenge, HygieiaClient
from hygieia.encoding import to_b64
from hygieia.errors import EmailTaken, InvalidCredentials, NotFound, RecordIdTaken
from hygieia.ipfs import BlockSource

__all__ = ["RestoreReport", "restore"]


@dataclass
class RestoreReport:
    """What a restore did. ``recovery_code`` is set only when a new one was made."""

    account_created: bool
    recovery_code: str | None = field(default=None, repr=False)
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _recovery_material(
    opened: OpenedKit, recovery_code: str | None
) -> tuple[dict[str, Any], str | None]:
    account = opened.kit.account
    if recovery_code is not None:
        try:
            code = crypto.parse_recovery_code(recovery_code)
        except ValueError as exc:
            raise KitError(str(exc)) from None
        rkeys = crypto.derive_recovery_keys(code, account.recovery_salt)
        try:
            same = crypto.unwrap_vault_key(account.recovery_wrapped_vault_key, rkeys.wrap_key)
        except crypto.DecryptionError:
            same = b""
        if same != opened.vault_key:
            raise KitError("the recovery code given is not this kit's")
        return {
            "recovery_salt": to_b64(account.recovery_salt),
            "recovery_wrapped_vault_key": to_b64(account.recovery_wrapped_vault_key),
            "recovery_verifier": to_b64(rkeys.auth_key),
        }, None
    new_code = crypto.new_recovery_code()
    salt = crypto.new_salt()
    rkeys = crypto.derive_recovery_keys(crypto.parse_recovery_code(new_code), salt)
    return {
        "recovery_salt": to_b64(salt),
        "recovery_wrapped_vault_key": to_b64(
            crypto.wrap_vault_key(opened.vault_key, rkeys.wrap_key)
        ),
        "recovery_verifier": to_b64(rkeys.auth_key),
    }, new_code


def _login(api: HygieiaClient, opened: OpenedKit, auth_key: bytes) -> LoggedIn | None:
    account = opened.kit.account
    try:
        grant = api.login(account.email, to_b64(auth_key))
    except ApiError as exc:
        if exc.code == InvalidCredentials.code:
            return None
        raise
    if isinstance(grant, FactorChallenge):
        raise KitError(
            f"the account {account.email} has a second factor: log in with "
            "`hygieia login` (which asks for it), then run this again"
        )
    if grant.account.fingerprint != account.fingerprint:
        raise KitError(
            f"{api.server} has another account for {account.email} (key "
            f"{grant.account.fingerprint}, the kit's is {account.fingerprint})"
        )
    api.token = grant.token
    return LoggedIn(grant.token, grant.expires_at, grant.account, vault_key=opened.vault_key)


def _sign_in(
    api: HygieiaClient, opened: OpenedKit, password: str, recovery_code: str | None
) -> tuple[LoggedIn, bool, str | None]:
    account = opened.kit.account
    params = account.kdf.params()
    keys = crypto.derive_keys(password, account.salt, params)
    # The kit unlocked with this password already (unlock_kit); checked again here so
    # that no auth_key leaves for the server unless it is the kit owner's.
    if crypto.unwrap_vault_key(account.wrapped_vault_key, keys.wrap_key) != opened.vault_key:
        raise crypto.DecryptionError()
    session = _login(api, opened, keys.auth_key)
    if session is not None:
        return session, False, None
    recovery, new_code = _recovery_material(opened, recovery_code)
    body = {
        "email": account.email,
        "kdf": params.to_dict(),
        "salt": to_b64(account.salt),
        "auth_key": to_b64(keys.auth_key),
        "public_key": account.public_key,
        "locked_secret_key": account.locked_secret_key,
        "wrapped_vault_key": to_b64(account.wrapped_vault_key),
        **recovery,
    }
    try:
        created = api.signup(body)
    except ApiError as exc:
        if exc.code == EmailTaken.code:
            raise KitError(
                f"{api.server} already has an account with this email or key, and the "
                "password does not log into it"
            ) from None
        raise
    if created.fingerprint != account.fingerprint:
        raise KitError("the server registered another key than the kit's")
    session = _login(api, opened, keys.auth_key)
    if session is None:
        raise KitError("the account was created but does not take the password")
    return session, True, new_code


def _already_there(api: HygieiaClient, rec: KitRecord) -> bool:
    """True if the server holds ``rec`` under its id with its CID (a resumed restore)."""
    try:
        there = api.get_record(rec.id)
    except ApiError as exc:
        if exc.code == NotFound.code:
            return False
        raise
    if not same_cid(there.cid, rec.cid):
        raise RecordMismatchError(f"{api.server} holds record {rec.id} with another CID")
    return True


def _upload(
    api: HygieiaClient,
    rec: KitRecord,
    source: BlockSource,
    workdir: Path | None,
    progress: Progress,
) -> bool:
    """Upload one record from ``source``; False if it turned out to be there already."""
    fd, tmp = tempfile.mkstemp(prefix=".hygieia-restore-", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in verified_content(rec, source, canonical=True):
                out.write(chunk)
                progress(len(chunk))
        meta = {
            "id": rec.id,
            "cid": rec.cid,
            "size": rec.size,
            "segments": rec.segments,
            "pkesk": to_b64(rec.pkesk),
            "sealed_metadata": to_b64(rec.sealed_metadata),
            "envelope": to_b64(rec.envelope),
        }
        with open(tmp, "rb") as fh:
            try:
                stored = api.upload_record(meta, fh, filename=rec.cid)
            except ApiError as exc:
                if exc.code == RecordIdTaken.code and _already_there(api, rec):
                    return False
                raise
        if stored.id != rec.id or not same_cid(stored.cid, rec.cid):
            raise RecordMismatchError("the server stored the record under another id or CID")
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def restore(
    api: HygieiaClient,
    opened: OpenedKit,
    password: str,
    source: BlockSource,
    *,
    recovery_code: str | None = None,
    known: KnownKdf | None = None,
    workdir: Path | None = None,
    progress: Progress = lambda _n: None,
    on_record: Callable[[str, str], None] = lambda _id, _what: None,
) -> tuple[LoggedIn, RestoreReport]:
    """Re-create the kit's account and records on the server ``api`` talks to.

    Every record of the kit is checked first (:func:`~hygieia.client.kit.list_kit`), so
    a tampered kit is refused before anything is sent. ``on_record(id, "uploaded" |
    "skipped")`` reports progress per record. Returns the session (``api`` keeps its
    token) and what was done.
    """
    list_kit(opened)
    session, created, new_code = _sign_in(api, opened, password, recovery_code)
    account = opened.kit.account
    if known is not None:
        known.put(
            api.server, account.email, Remembered(kdf=account.kdf.params(), salt=account.salt)
        )
    report = RestoreReport(account_created=created, recovery_code=new_code)
    for rec in reversed(opened.kit.records):  # oldest first: the new listing keeps the order
        if _already_there(api, rec) or not _upload(api, rec, source, workdir, progress):
            report.skipped.append(rec.id)
            on_record(rec.id, "skipped")
        else:
            report.uploaded.append(rec.id)
            on_record(rec.id, "uploaded")
    return session, report
