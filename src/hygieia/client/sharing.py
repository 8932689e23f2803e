"""Sharing done client-side (protocol §7): grant, revoke, rotate; read what others shared.

Granting: the recipient's key comes from ``POST /users/key`` and is checked against the
fingerprint remembered for that email (:mod:`hygieia.client.contacts`). The record's
session key comes from the owner's envelope, which is *not* bound to the record's id
(protocol §3), so before a PKESK is written for anyone the record's content is
downloaded once, hashed into its CID (which must be the one sealed in the record's
bound metadata) and every segment decrypted and verified with that key. Only then are
the recipient's PKESK and sealed metadata (the same fields, signed by the owner) made.

Reading: a shared record's metadata and every segment must be signed by its owner's
key, as remembered here (pinned on first use), not merely by some valid key.

Rotation re-seals a record under a new session key as a new record (records are
immutable, ids bound to their content), re-grants it and deletes the old one, with a
journal (``$HYGIEIA_HOME/rotations.json``) so that a crash at any step is resumed by
running it again and the record is never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from hygieia import crypto
from hygieia.client import records as recs
from hygieia.client.account import LoggedIn
from hygieia.client.contacts import ContactKeyRefused, Contacts, Pinned
from hygieia.client.private_files import RememberedJson
from hygieia.client.sdk import ApiError, Grant, HygieiaClient, RecordItem, SharedRecord
from hygieia.encoding import to_b64
from hygieia.errors import NotFound

__all__ = [
    "RotationJournal",
    "ShareError",
    "SharedInfo",
    "check_recipient",
    "get_shared",
    "iter_shared",
    "open_shared_metadata",
    "owned_session_key",
    "revoke",
    "rotate",
    "share",
]

#: ``POST /grants`` takes at most this many grants per request.
GRANTS_PER_REQUEST = 100


class ShareError(Exception):
    """A sharing step the user can act on (nothing was shared, or nothing changed)."""


def _norm(email: str) -> str:
    return email.strip().lower()


# --- the owner's side --------------------------------------------------------------------
def check_recipient(
    api: HygieiaClient, contacts: Contacts, email: str, *, accept_new: bool = False
) -> tuple[str, Pinned]:
    """The recipient's armored key, looked up and checked against the pinned fingerprint."""
    email = _norm(email)
    found = api.user_key(email)
    if _norm(found.email) != email:
        raise ContactKeyRefused(f"the server answered for another email than {email}")
    pinned = contacts.check(
        api.server,
        email,
        found.public_key,
        claimed_fingerprint=found.fingerprint,
        accept_new=accept_new,
    )
    return found.public_key, pinned


def owned_session_key(
    api: HygieiaClient, key: crypto.UnlockedKey, record_id: str
) -> tuple[RecordItem, dict[str, Any], bytes]:
    """One of my records, its verified metadata and its session key, proven to be this
    record's: the content has the sealed CID and every segment opens and verifies
    under the key (the envelope alone is not bound to the id, protocol §3)."""
    item = api.get_record(record_id)
    meta = recs.open_metadata(item, key, record_id=record_id)
    try:
        session_key = crypto.open_session_key_envelope(
            item.envelope, key=key, signer_public_key=key.public_key
        )
    except crypto.DecryptionError as exc:
        raise recs.RecordVerificationError(
            f"record {record_id}: its session-key envelope failed verification"
        ) from exc
    importer, finish = recs.content_cid()
    with api.record_content(record_id) as chunks:
        reader = recs._StreamReader(chunks, importer, lambda _n: None)
        try:
            for _chunk in crypto.open_segments(
                cast(BinaryIO, reader),
                signer_public_key=recs.content_signer(meta, key.public_key),
                session_key=session_key,
            ):
                pass
        except crypto.DecryptionError as exc:
            raise recs.RecordVerificationError(
                f"record {record_id}: its session key does not open its content "
                "(the server may have sent another record's envelope)"
            ) from exc
        reader.drain()
    if not recs.same_cid(finish(), str(meta["cid"])):
        raise recs.RecordVerificationError(f"record {record_id}: content does not match its CID")
    return item, meta, session_key


def _grant_body(
    record_id: str,
    meta: Mapping[str, Any],
    session_key: bytes,
    *,
    email: str,
    recipient_key: str,
    signer: crypto.UnlockedKey,
) -> dict[str, str]:
    fields = {k: v for k, v in meta.items() if k not in ("v", "id")}
    sealed = crypto.seal_record_metadata(
        fields, record_id=record_id, recipients=[recipient_key], signer=signer
    )
    return {
        "record_id": record_id,
        "email": email,
        "pkesk": to_b64(crypto.make_pkesk(session_key, recipient_key)),
        "sealed_metadata": to_b64(sealed),
    }


def _send(api: HygieiaClient, bodies: Sequence[Mapping[str, Any]]) -> list[Grant]:
    made: list[Grant] = []
    for start in range(0, len(bodies), GRANTS_PER_REQUEST):
        made.extend(api.create_grants(list(bodies[start : start + GRANTS_PER_REQUEST])).items)
    return made


def share(
    api: HygieiaClient,
    session: LoggedIn,
    record_ids: Iterable[str],
    emails: Iterable[str],
    *,
    contacts: Contacts,
    accept_new: bool = False,
) -> tuple[list[Grant], list[Pinned]]:
    """Grant every record to every email; returns the grants and the recipients' keys
    (``first_use`` set for a key seen here for the first time)."""
    key = session.unlock()
    wanted = list(dict.fromkeys(_norm(e) for e in emails))
    if _norm(session.account.email) in wanted:
        raise ShareError("you can't share a record with yourself")
    recipients = [
        (email, *check_recipient(api, contacts, email, accept_new=accept_new)) for email in wanted
    ]
    bodies = []
    for record_id in dict.fromkeys(record_ids):
        _item, meta, session_key = owned_session_key(api, key, record_id)
        for email, public_key, _pinned in recipients:
            bodies.append(
                _grant_body(
                    record_id, meta, session_key, email=email, recipient_key=public_key, signer=key
                )
            )
    return _send(api, bodies), [pinned for _, _, pinned in recipients]


def revoke(api: HygieiaClient, record_id: str, email: str) -> Grant:
    """Delete the grant of ``record_id`` to ``email``."""
    email = _norm(email)
    for grant in api.record_grants(record_id).items:
        if _norm(grant.email) == email:
            api.revoke_grant(grant.id)
            return grant
    raise ShareError(f"record {record_id} is not shared with {email}")


# --- rotation ------------------------------------------------------------------------------
class RotationJournal(RememberedJson):
    """Rotations under way, per (server, old record id): the new id and the recipients.

    A JSON file (0600, replaced atomically) or memory (``path=None``).
    """

    error = ShareError

    def get(self, server: str, record_id: str) -> dict[str, Any] | None:
        entry = self._entry(server, record_id)
        return entry if isinstance(entry, dict) else None

    def put(self, server: str, record_id: str, entry: dict[str, Any]) -> None:
        self._store(server, record_id, entry)

    def done(self, server: str, record_id: str) -> None:
        self._store(server, record_id, None)


@dataclass(frozen=True)
class Rotated:
    new_id: str
    new_cid: str
    old_cid: str | None
    recipients: tuple[str, ...]


def rotate(
    api: HygieiaClient,
    session: LoggedIn,
    record_id: str,
    *,
    contacts: Contacts,
    journal: RotationJournal,
    without: Iterable[str] = (),
    accept_new: bool = False,
    workdir: Path | None = None,
) -> Rotated:
    """Re-seal ``record_id`` under a new session key as a new record, grant it to the
    old one's recipients (but ``without``), then delete the old one. Resumable: run it
    again after any failure and it carries on from the journal."""
    key = session.unlock()
    server = api.server
    entry = journal.get(server, record_id)
    if entry is None:
        grants = api.record_grants(record_id).items  # 404 unless it is mine
        left_out = {_norm(e) for e in without}
        entry = {
            "new_id": crypto.new_record_id(),
            "recipients": [
                {"email": g.email, "fingerprint": g.fingerprint}
                for g in grants
                if _norm(g.email) not in left_out
            ],
        }
        journal.put(server, record_id, entry)
    new_id = str(entry["new_id"])
    old_cid: str | None = None
    # 1. The new record, sealed from the old one's verified plaintext.
    if not recs.record_exists(api, new_id):
        old_cid = api.get_record(record_id).cid
        recs.reseal_as(
            api, record_id, reader=session, writer=session, new_id=new_id, workdir=workdir
        )
    # 2. Its grants, to the keys remembered for the recipients (replaced if present).
    item, meta, session_key = owned_session_key(api, key, new_id)
    bodies = []
    for recipient in entry["recipients"]:
        email = str(recipient["email"])
        public_key, pinned = check_recipient(api, contacts, email, accept_new=accept_new)
        if pinned.fingerprint != recipient["fingerprint"] and not accept_new:
            raise ContactKeyRefused(
                f"the key for {email} is not the one the old record was shared with; "
                "repeat with --accept-new-key to use it"
            )
        bodies.append(
            _grant_body(
                new_id, meta, session_key, email=email, recipient_key=public_key, signer=key
            )
        )
    if bodies:
        _send(api, bodies)
    # 3. Only now the old record goes (already gone if an earlier run got this far).
    try:
        old_item = api.get_record(record_id)
        old_cid = old_item.cid
        api.delete_record(record_id)
    except ApiError as exc:
        if exc.code != NotFound.code:
            raise
    journal.done(server, record_id)
    return Rotated(
        new_id=new_id,
        new_cid=item.cid,
        old_cid=old_cid,
        recipients=tuple(str(r["email"]) for r in entry["recipients"]),
    )


# --- the recipient's side ------------------------------------------------------------------
@dataclass(frozen=True)
class SharedInfo:
    """A record shared with me, its metadata opened and verified against its owner."""

    item: SharedRecord
    meta: dict[str, Any]
    owner: Pinned

    def as_json(self) -> dict[str, Any]:
        m = self.meta
        return {
            "id": self.item.id,
            "owner": self.item.owner.email,
            "owner_fingerprint": self.owner.fingerprint,
            "granted_at": self.item.granted_at,
            "cid": self.item.cid,
            "title": m.get("title"),
            "type": m.get("type"),
            "date": m.get("date"),
            "provider": m.get("provider"),
            "tags": m.get("tags", []),
            "filename": m.get("filename"),
            "media_type": m.get("media_type"),
            "size": m.get("size"),
            "sha256": m.get("sha256"),
            "ciphertext_size": self.item.size,
        }


def open_shared_metadata(
    api: HygieiaClient,
    item: SharedRecord,
    key: crypto.UnlockedKey,
    *,
    contacts: Contacts,
    record_id: str | None = None,
    accept_new: bool = False,
) -> tuple[dict[str, Any], Pinned]:
    """The verified metadata of a shared record and its owner's pinned key.

    The owner's key must be the one remembered for the owner's email (pinned on first
    use), and the metadata signed by it and bound to the record's id and CID.
    """
    expected = item.id if record_id is None else record_id
    if item.id != expected:
        raise recs.RecordMismatchError(f"the server answered for record {expected} with another")
    owner = contacts.check(
        api.server,
        item.owner.email,
        item.owner.public_key,
        claimed_fingerprint=item.owner.fingerprint,
        accept_new=accept_new,
    )
    try:
        meta = crypto.open_record_metadata(
            item.sealed_metadata,
            record_id=expected,
            key=key,
            signer_public_key=item.owner.public_key,
        )
    except crypto.RecordMismatch as exc:
        raise recs.RecordMismatchError(str(exc)) from exc
    except crypto.DecryptionError as exc:
        raise recs.RecordVerificationError(
            f"shared record {expected}: metadata not signed by its owner {item.owner.email} "
            "or not readable"
        ) from exc
    if not crypto.metadata_is_bound(meta):
        # Grants are written as version 2 only: an unbound one is not a grant's.
        raise recs.RecordVerificationError(f"shared record {expected}: metadata names no record")
    if not recs.same_cid(item.cid, str(meta.get("cid", ""))):
        raise recs.RecordMismatchError("the server's CID differs from the sealed one")
    return meta, owner


def _sealed_to_another_key(item: SharedRecord, key: crypto.UnlockedKey) -> bool:
    """A grant whose PKESK names none of ``key``'s subkeys: made for a key of mine that a
    key rotation retired (protocol §12); only its owner can share it again."""
    try:
        named = crypto.pkesk_key_id(item.pkesk)
    except crypto.InvalidFraming:
        return False
    return named != crypto.public_key_info(key.public_key).encryption_key_id


def iter_shared(
    api: HygieiaClient,
    key: crypto.UnlockedKey,
    *,
    contacts: Contacts,
    accept_new: bool = False,
    stale: list[SharedRecord] | None = None,
) -> Iterator[SharedInfo]:
    """Records shared with me, verified. With ``stale`` (a list), grants sealed to a key
    of mine that a rotation retired are put there instead of failing the listing."""
    cursor: str | None = None
    while True:
        page = api.list_shared(limit=200, cursor=cursor)
        for item in page.items:
            if stale is not None and _sealed_to_another_key(item, key):
                stale.append(item)
                continue
            meta, owner = open_shared_metadata(
                api, item, key, contacts=contacts, accept_new=accept_new
            )
            yield SharedInfo(item=item, meta=meta, owner=owner)
        cursor = page.next_cursor
        if not cursor:
            return


def get_shared(
    api: HygieiaClient,
    session: LoggedIn,
    record_id: str,
    target: Path,
    *,
    contacts: Contacts,
    accept_new: bool = False,
    progress: recs.Progress = lambda _n: None,
) -> SharedInfo:
    """Download, verify (every signature by the owner's pinned key) and decrypt a record
    shared with me into ``target``, atomically."""
    key = session.unlock()
    item = api.get_shared(record_id)
    meta, owner = open_shared_metadata(
        api, item, key, contacts=contacts, record_id=record_id, accept_new=accept_new
    )
    with api.shared_content(record_id) as chunks:
        recs.decrypt_into(
            chunks,
            item=item,
            meta=meta,
            key=key,
            target=target,
            progress=progress,
            signer_public_key=item.owner.public_key,
        )
    return SharedInfo(item=item, meta=meta, owner=owner)
