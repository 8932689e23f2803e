"""Key and recovery-code rotation done client-side (protocol "Key rotation").

``key rotate``: a new OpenPGP identity locked with a new vault key is made here, the new
vault key wrapped under the same password-derived key and the same recovery key as the
current one, and stored on the server as the account's *pending* identity. Then, record
by record, the client opens the record's metadata and session key with the old key
(checking the session key against the record's content and CID), re-seals the PKESK,
metadata and envelope to the new key (content untouched; the metadata names the old
public key as ``content_signer``, since the segments stay signed by it), re-issues the
record's grants signed by the new key, and swaps the packets on the server with an
optimistic check. With ``reencrypt`` each record is instead sealed again under a new
session key as a new record whose id is derived from the old id and the new vault key
(so any resumed run, on any device, finds it), granted again, and the old one deleted.
The commit re-seals the emergency contacts' vault keys and the link labels and makes the
pending identity the account's; the server refuses it while anything is on the old key.

Every step is idempotent and the server's state says what is left, so a run killed at
any point is finished by running it again (here or on another device with the
password). A record is always sealed to the current or the pending key, both of which
the password (and the recovery code) unlock.

``recovery rotate``: a new code, salt, verifier and recovery-wrapped vault key.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hygieia import crypto
from hygieia.client import records as recs
from hygieia.client import sharing as shr
from hygieia.client.account import LoggedIn, RotationError, pending_session
from hygieia.client.contacts import ContactKeyRefused, Contacts
from hygieia.client.sdk import ApiError, HygieiaClient, KeyRotationState, RecordItem
from hygieia.encoding import from_b64, to_b64
from hygieia.errors import KeyConflict, RotationIncomplete

__all__ = [
    "RotationError",
    "RotationReport",
    "recovery_rotate",
    "rotate_keys",
]

#: For tests of an interrupted rotation: after this many records, say so on stderr and
#: wait (the test kills the process there).
STALL_ENV = "HYGIEIA_ROTATE_STALL_AFTER"
#: Commits tried when the server finds something new on the old key in between.
COMMIT_ATTEMPTS = 3


@dataclass(frozen=True)
class RotationReport:
    fingerprint: str
    old_fingerprint: str
    records: int
    resumed: bool
    #: With ``reencrypt``: old record id → new record id.
    moved: dict[str, str]
    new_recovery_code: str | None = None


def _recovery_wrap_key(session: LoggedIn, recovery_code: str) -> bytes:
    """The current recovery code's wrapping key, proven: it unwraps the current vault key."""
    try:
        code = crypto.parse_recovery_code(recovery_code)
    except ValueError as exc:
        raise RotationError(str(exc)) from exc
    rkeys = crypto.derive_recovery_keys(code, session.account.recovery_salt)
    try:
        opened = crypto.unwrap_vault_key(session.account.recovery_wrapped_vault_key, rkeys.wrap_key)
    except crypto.DecryptionError as exc:
        raise RotationError("that is not this account's recovery code") from exc
    if not hmac.compare_digest(opened, session.vault_key):
        raise RotationError("that is not this account's recovery code")
    return rkeys.wrap_key


def _auth_key(session: LoggedIn, password: str) -> bytes:
    keys = crypto.derive_keys(
        password, session.account.salt, crypto.KdfParams.from_dict(dict(session.account.kdf))
    )
    if session.wrap_key is not None and not hmac.compare_digest(keys.wrap_key, session.wrap_key):
        raise RotationError("wrong password")
    return keys.auth_key


def recovery_rotate(
    api: HygieiaClient,
    session: LoggedIn,
    password: str,
    *,
    factor: Mapping[str, Any] | None = None,
) -> str:
    """Install a new recovery code (the old one stops working); returns it (show it once).
    ``factor``: the ``FactorProof`` an account with a second factor must give."""
    auth_key = _auth_key(session, password)
    code = crypto.new_recovery_code()
    salt = crypto.new_salt()
    while salt == session.account.salt:  # pragma: no cover (2^-128)
        salt = crypto.new_salt()
    rkeys = crypto.derive_recovery_keys(crypto.parse_recovery_code(code), salt)
    api.rotate_recovery(
        {
            "auth_key": to_b64(auth_key),
            "factor": None if factor is None else dict(factor),
            "recovery_salt": to_b64(salt),
            "recovery_verifier": to_b64(rkeys.auth_key),
            "recovery_wrapped_vault_key": to_b64(
                crypto.wrap_vault_key(session.vault_key, rkeys.wrap_key)
            ),
        }
    )
    return code


def _start(
    api: HygieiaClient,
    session: LoggedIn,
    password: str,
    recovery_code: str,
    factor: Mapping[str, Any] | None,
) -> KeyRotationState:
    recovery_wrap = _recovery_wrap_key(session, recovery_code)
    auth_key = _auth_key(session, password)
    assert session.wrap_key is not None  # _auth_key checked the password against it
    vault_key = crypto.new_vault_key()
    identity = crypto.generate_identity(session.account.email, vault_key)
    return api.start_key_rotation(
        {
            "auth_key": to_b64(auth_key),
            "factor": None if factor is None else dict(factor),
            "public_key": identity.public_key,
            "locked_secret_key": identity.locked_secret_key,
            "wrapped_vault_key": to_b64(crypto.wrap_vault_key(vault_key, session.wrap_key)),
            "recovery_wrapped_vault_key": to_b64(crypto.wrap_vault_key(vault_key, recovery_wrap)),
        }
    )


def moved_record_id(new_vault_key: bytes, old_id: str) -> str:
    """The id a re-encrypted record gets: the same on every device for this rotation
    (HMAC of the old id under the new vault key, as a random-looking UUIDv4)."""
    digest = hmac.new(new_vault_key, b"hygieia/rotate-id/" + old_id.encode(), "sha256").digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _remaining(api: HygieiaClient) -> Iterator[str]:
    """The ids still sealed to the old key, page by page, until there are none."""
    seen: set[str] = set()
    while True:
        state = api.key_rotation()
        fresh = [i for i in state.record_ids if i not in seen]
        if not fresh:
            if state.remaining:
                raise RotationError(
                    f"{state.remaining} record(s) could not be moved to the new key"
                )
            return
        for record_id in fresh:
            seen.add(record_id)
            yield record_id


def _fields(meta: dict[str, Any], old_public: str) -> dict[str, Any]:
    fields = {k: v for k, v in meta.items() if k not in ("v", "id")}
    fields.setdefault("content_signer", old_public)
    return fields


def _seal_metadata(
    item: RecordItem, meta: dict[str, Any], fields: dict[str, Any], new: crypto.UnlockedKey
) -> bytes:
    if crypto.metadata_is_bound(meta):
        return crypto.seal_record_metadata(
            fields, record_id=item.id, recipients=[new.public_key], signer=new
        )
    # A legacy (unbound) record stays unbound: nothing proves the id it is filed under.
    body = {"v": crypto.LEGACY_METADATA_VERSION, **fields}
    return crypto.seal_message(
        json.dumps(body, ensure_ascii=False).encode("utf-8"),
        recipients=[new.public_key],
        signer=new,
    )


def _regrant(
    api: HygieiaClient,
    record_id: str,
    meta: dict[str, Any],
    session_key: bytes,
    grants: Any,
    new: crypto.UnlockedKey,
    *,
    contacts: Contacts,
    accept_new: bool,
) -> None:
    bodies = []
    for grant in grants:
        public_key, pinned = shr.check_recipient(api, contacts, grant.email, accept_new=accept_new)
        if pinned.fingerprint != grant.fingerprint and not accept_new:
            raise ContactKeyRefused(
                f"the key for {grant.email} is not the one record {record_id} was shared "
                "with; repeat with --accept-new-key to use it"
            )
        bodies.append(
            shr._grant_body(
                record_id,
                meta,
                session_key,
                email=grant.email,
                recipient_key=public_key,
                signer=new,
            )
        )
    if bodies:
        shr._send(api, bodies)


def _rekey(
    api: HygieiaClient,
    record_id: str,
    old: crypto.UnlockedKey,
    new: crypto.UnlockedKey,
    old_fingerprint: str,
    *,
    contacts: Contacts,
    accept_new: bool,
) -> None:
    """Seal one record's PKESK, metadata and envelope (and its grants) to the new key."""
    item, meta, session_key = shr.owned_session_key(api, old, record_id)
    fields = _fields(meta, old.public_key)
    _regrant(
        api,
        record_id,
        {"v": meta.get("v"), **fields},
        session_key,
        api.record_grants(record_id).items,
        new,
        contacts=contacts,
        accept_new=accept_new,
    )
    body = {
        "expected_fingerprint": old_fingerprint,
        "pkesk": to_b64(crypto.make_pkesk(session_key, new.public_key)),
        "sealed_metadata": to_b64(_seal_metadata(item, meta, fields, new)),
        "envelope": to_b64(
            crypto.seal_session_key_envelope(
                session_key, owner_public_key=new.public_key, signer=new
            )
        ),
    }
    try:
        api.swap_record_keys(record_id, body)
    except ApiError as exc:
        # Another device moved it meanwhile: it is on the new key either way.
        if exc.code != KeyConflict.code:
            raise


def _reencrypt(
    api: HygieiaClient,
    record_id: str,
    old_session: LoggedIn,
    new_session: LoggedIn,
    *,
    contacts: Contacts,
    accept_new: bool,
    workdir: Path | None,
) -> str:
    """Seal one record again under a new session key as a new record (new CID) for the
    new key, grant it to the same recipients, then delete the old one."""
    new_id = moved_record_id(new_session.vault_key, record_id)
    grants = api.record_grants(record_id).items
    new_key = new_session.unlock()
    if not recs.record_exists(api, new_id):
        recs.reseal_as(
            api, record_id, reader=old_session, writer=new_session, new_id=new_id, workdir=workdir
        )
    _item, meta, session_key = shr.owned_session_key(api, new_key, new_id)
    _regrant(
        api, new_id, meta, session_key, grants, new_key, contacts=contacts, accept_new=accept_new
    )
    with contextlib.suppress(ApiError):
        api.delete_record(record_id)
    if recs.record_exists(api, record_id):
        raise RotationError(f"record {record_id} could not be deleted after re-encryption")
    return new_id


def _commit_body(
    api: HygieiaClient,
    state: KeyRotationState,
    session: LoggedIn,
    new_session: LoggedIn,
    *,
    contacts: Contacts,
    accept_new: bool,
) -> dict[str, Any]:
    old, new = session.unlock(), new_session.unlock()
    emergency = []
    wanted = set(state.emergency_contact_ids)
    for contact in api.emergency_contacts().items:
        if contact.id not in wanted:
            continue
        public_key, pinned = shr.check_recipient(
            api, contacts, contact.email, accept_new=accept_new
        )
        if pinned.fingerprint != contact.fingerprint and not accept_new:
            raise ContactKeyRefused(
                f"the key for emergency contact {contact.email} changed; repeat with "
                "--accept-new-key to use it"
            )
        sealed = crypto.seal_emergency_vault_key(
            new_session.vault_key,
            contact_email=contact.email,
            contact_public_key=public_key,
            signer=new,
        )
        emergency.append({"id": contact.id, "sealed_vault_key": to_b64(sealed)})
    labels = []
    wanted = set(state.link_ids)
    for link in api.list_links():
        if link.get("id") not in wanted or not link.get("sealed_label"):
            continue
        try:
            raw = crypto.open_message(
                from_b64(link["sealed_label"]), key=old, signer_public_key=old.public_key
            )
        except crypto.DecryptionError as exc:
            raise RotationError(f"the label of link {link['id']} does not open") from exc
        sealed = crypto.seal_message(raw, recipients=[new.public_key], signer=new)
        labels.append({"id": link["id"], "sealed_label": to_b64(sealed)})
    return {"emergency_keys": emergency, "link_labels": labels}


def _stall(done: int, stall_after: int | None, say: Callable[[str], None]) -> None:
    if stall_after is not None and done >= stall_after:
        say(f"rotation: stalled after {done} record(s)")
        while True:  # pragma: no cover (killed by the test)
            time.sleep(60)


def rotate_keys(
    api: HygieiaClient,
    session: LoggedIn,
    password: str,
    *,
    recovery_code: str | None,
    contacts: Contacts,
    factor: Mapping[str, Any] | None = None,
    reencrypt: bool = False,
    accept_new: bool = False,
    workdir: Path | None = None,
    say: Callable[[str], None] = lambda _m: None,
    progress: Callable[[int, int], None] = lambda _d, _t: None,
) -> RotationReport:
    """Rotate the account's key (or finish a rotation under way); see the module doc.
    ``factor``: the ``FactorProof`` that starting one needs on an account with a second
    factor (finishing one needs none)."""
    state = api.key_rotation()
    resumed = state.pending is not None
    if state.pending is None:
        if recovery_code is None:
            raise RotationError("a key rotation needs the recovery code (or a new one)")
        state = _start(api, session, password, recovery_code, factor)
    else:
        _auth_key(session, password)
    assert state.pending is not None
    new_session = pending_session(session, state.pending)
    old, new = session.unlock(), new_session.unlock()
    old_fingerprint = session.account.fingerprint
    total = state.remaining
    stall_env = os.environ.get(STALL_ENV, "").strip()
    stall_after = int(stall_env) if stall_env else None
    done = 0
    moved: dict[str, str] = {}
    for attempt in range(COMMIT_ATTEMPTS):
        for record_id in _remaining(api):
            if reencrypt:
                moved[record_id] = _reencrypt(
                    api,
                    record_id,
                    session,
                    new_session,
                    contacts=contacts,
                    accept_new=accept_new,
                    workdir=workdir,
                )
            else:
                _rekey(
                    api,
                    record_id,
                    old,
                    new,
                    old_fingerprint,
                    contacts=contacts,
                    accept_new=accept_new,
                )
            done += 1
            progress(done, total)
            _stall(done, stall_after, say)
        state = api.key_rotation()
        body = _commit_body(
            api, state, session, new_session, contacts=contacts, accept_new=accept_new
        )
        try:
            api.commit_key_rotation(body)
            break
        except ApiError as exc:
            # Another device uploaded a record, named a contact or made a link while
            # this one moved records: move those too, then commit again.
            if exc.code != RotationIncomplete.code or attempt == COMMIT_ATTEMPTS - 1:
                raise
    return RotationReport(
        fingerprint=new.fingerprint,
        old_fingerprint=old_fingerprint,
        records=done,
        resumed=resumed,
        moved=moved,
    )
