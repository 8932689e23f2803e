"""Records: ingest sealed ciphertext, index it, list/get/download/delete, reconcile.

The server never holds a key: it checks what it can without one (segment framing,
sizes, that the owner's PKESK names the owner's encryption key, that the uploaded
bytes have the CID the client announced), stores the ciphertext, pins it, and only then
commits the row (DESIGN §1.4). A crash between pin and commit leaves a ``PendingPin``
row, which :func:`reconcile` turns into an unpin. An upload that fails or is refused
removes the blocks it stored (:meth:`Upload.abort`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, String, bindparam, delete, func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.db.models import (
    KeyRotation,
    PendingPin,
    Record,
    RecordCopy,
    RecordGrant,
    User,
    UTCDateTime,
)
from hygieia.encoding import to_b64
from hygieia.errors import (
    BlobNotFound,
    CidMismatch,
    ContentMissing,
    InvalidRecord,
    NotFound,
    PkeskMismatch,
    QuotaExceeded,
    RecordExceedsQuota,
    RecordIdTaken,
    SizeMismatch,
    StorageUnavailable,
    TokenRevoked,
    ValidationFailed,
)
from hygieia.services import copies
from hygieia.services.audit import ClientInfo, record_event
from hygieia.services.common import Clock, utcnow
from hygieia.storage import BlobStore, StoreSet, SupportsGarbageCollection, as_store_set

log = logging.getLogger(__name__)

MAX_PAGE = 200


class RecordMeta(Protocol):
    """What the client announces about an upload, parsed and bounded by the API
    (``api.schemas.RecordMetaCreate``); the checks against the bytes are made here."""

    @property
    def cid(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def segments(self) -> int: ...
    @property
    def pkesk(self) -> bytes: ...
    @property
    def sealed_metadata(self) -> bytes: ...
    @property
    def envelope(self) -> bytes: ...
    # Chosen by the client, which seals it into the metadata (protocol §3, "Binding");
    # None only from clients older than that, whose records get a server-made id.
    @property
    def id(self) -> str | None: ...


def start_upload(
    db: Session, store: BlobStore, *, owner: User, meta: RecordMeta, quota_bytes: int = 0
) -> Upload:
    """Check what can be checked before a byte of content is stored, and open the put.

    ``quota_bytes`` (0: none) is checked here against the announced size, and again
    when the record is indexed (uploads may run side by side). So is the client's id:
    one that is taken (by this account or any other: the same answer) is refused here,
    and again by the primary key if two uploads race for it.
    """
    try:
        key_id = crypto.pkesk_key_id(meta.pkesk)
    except crypto.InvalidFraming as exc:
        raise InvalidRecord("pkesk is not an OpenPGP PKESK packet") from exc
    if key_id != owner.encryption_key_id and key_id not in _accepted_key_ids(db, owner):
        raise PkeskMismatch()
    if meta.id is not None and _id_taken(db, meta.id):
        raise RecordIdTaken()
    if quota_bytes:
        if meta.size > quota_bytes:
            raise RecordExceedsQuota()
        if _stored_bytes(db, owner.id) + meta.size > quota_bytes:
            raise QuotaExceeded()
    return Upload(as_store_set(store), owner=owner, meta=meta, quota_bytes=quota_bytes)


def _accepted_key_ids(db: Session, owner: User) -> dict[str, str]:
    """Encryption key id → fingerprint of the keys the owner's PKESK may name: the
    account's, and during a key rotation the pending one's (services.rotation)."""
    from hygieia.services import rotation  # it builds on this module

    return rotation.accepted_key_ids(db, owner)


def _id_taken(db: Session, record_id: str) -> bool:
    """Whether any account has a record with this id (one lookup, whoever owns it)."""
    return db.scalar(select(Record.id).where(Record.id == record_id)) is not None


def _stored_bytes(db: Session, owner_id: str) -> int:
    used = db.scalar(
        select(func.coalesce(func.sum(Record.size), 0)).where(Record.owner_id == owner_id)
    )
    return int(used or 0)


class Upload:
    """One record on its way in: ciphertext pushed with :meth:`write` as it arrives
    (framing and size checked as it passes), then :meth:`commit`, or :meth:`abort`.

    Nothing is indexed before ``commit``, and ``abort`` (after any failure, including
    one of ``commit``) removes the blocks the upload stored that no pin reaches.
    """

    def __init__(self, store: StoreSet, *, owner: User, meta: RecordMeta, quota_bytes: int) -> None:
        self._store = store
        self._owner = owner
        self._meta = meta
        self._quota_bytes = quota_bytes
        self._checker = crypto.SegmentFramingChecker(max_segments=meta.segments)
        self._seen = 0
        self._writer = store.writer()

    def write(self, chunk: bytes) -> None:
        self._seen += len(chunk)
        if self._seen > self._meta.size:
            raise SizeMismatch()
        try:
            self._checker.feed(chunk)
        except crypto.InvalidFraming as exc:
            raise InvalidRecord("ciphertext is not a sequence of record segments") from exc
        self._writer.write(chunk)

    def commit(
        self,
        db: Session,
        *,
        address: str | None = None,
        client: ClientInfo | None = None,
        now: Clock = utcnow,
    ) -> Record:
        """The content is complete: check it, pin it, then index the record."""
        meta = self._meta
        try:
            count = self._checker.finish()
        except crypto.InvalidFraming as exc:
            raise InvalidRecord("ciphertext ends inside a segment") from exc
        if self._seen != meta.size or count != meta.segments:
            raise SizeMismatch()
        cid = self._writer.finish()
        if cid != meta.cid:
            raise CidMismatch()  # abort() removes the bytes
        pending = PendingPin(cid=cid, created_at=now())
        db.add(pending)
        db.commit()  # the intent is durable before the pin exists
        try:
            # Pinned on every store that took the put; acknowledged from min_copies.
            pinned = self._store.pin_copies(cid, getattr(self._writer, "holders", None))
            if len(pinned) < self._store.min_copies:
                raise StorageUnavailable(f"fewer than {self._store.min_copies} store(s) pinned it")
            return self._index(db, cid, pending, pinned, address=address, client=client, now=now)
        except BaseException:
            db.rollback()
            try:
                _release(db, self._store, pending)  # the pin, unless a record uses it
            except Exception:
                log.warning("upload: pin of a refused record left for reconcile")
            raise

    def _index(
        self,
        db: Session,
        cid: str,
        pending: PendingPin,
        pinned: list[str],
        *,
        address: str | None,
        client: ClientInfo | None = None,
        now: Clock,
    ) -> Record:
        meta, owner = self._meta, self._owner
        owner_id = owner.id
        row = RecordRow(
            id=meta.id or str(uuid.uuid4()),
            cid=cid,
            size=meta.size,
            segments=meta.segments,
            created_at=now(),
            owner_pkesk=meta.pkesk,
            sealed_metadata=meta.sealed_metadata,
            session_key_envelope=meta.envelope,
        )
        record = Record(owner_id=owner.id, listing=render_public(row), **row._asdict())
        db.add(record)
        try:
            db.flush()  # the record's row before its copies' (their foreign key)
            # Checked again under the account's row lock (a key rotation's commit takes
            # it): a record sealed to a key its owner no longer has is never indexed.
            record.key_fingerprint = self._sealed_to(db)
            copies.add_rows(db, record_id=row.id, stores=self._store, pinned=pinned, now=now())
            if self._quota_bytes:
                # The row is written first: on SQLite that takes the database's write
                # lock, on PostgreSQL the owner's row is locked; either way concurrent
                # uploads of one account count each other's records here, in turn.
                db.flush()
                db.execute(
                    select(User.id).where(User.id == owner.id).with_for_update(key_share=True)
                )
                if _stored_bytes(db, owner.id) > self._quota_bytes:
                    raise QuotaExceeded()
            db.delete(pending)
            record_event(
                db,
                event="record.created",
                user_id=owner.id,
                address=address,
                client=client,
                detail={"record_id": row.id},
                now=now,
            )
            db.commit()
        except IntegrityError:
            # Another upload took the id since start_upload looked (commit() then
            # releases this one's pin).
            db.rollback()
            if _id_taken(db, row.id):
                raise RecordIdTaken() from None
            if db.get(User, owner_id) is None:
                # The account was deleted while this upload was on its way: its session
                # is gone with it (commit() then releases this upload's pin).
                raise TokenRevoked() from None
            raise
        return record

    def _sealed_to(self, db: Session) -> str:
        """The fingerprint of the owner key the PKESK names, read under the account's
        row lock (a key rotation's commit takes it): the account's key or, during a
        rotation, the pending one; a record sealed to a key its owner no longer has is
        never indexed."""
        row = db.execute(
            select(
                User.encryption_key_id,
                User.fingerprint,
                KeyRotation.encryption_key_id,
                KeyRotation.fingerprint,
            )
            .outerjoin(KeyRotation, KeyRotation.user_id == User.id)
            .where(User.id == self._owner.id)
            .with_for_update(key_share=True, of=User)
        ).one()
        keys = {row[0]: row[1]}
        if row[2] is not None:
            keys[row[2]] = row[3]
        key_id = crypto.pkesk_key_id(self._meta.pkesk)
        if key_id not in keys:
            raise PkeskMismatch("the account's key changed during the upload")
        return str(keys[key_id])

    def abort(self) -> None:
        """Give the upload up: its blocks go, unless a pin reaches them. Never raises."""
        self._writer.abort()


def create(
    db: Session,
    store: BlobStore,
    *,
    owner: User,
    meta: RecordMeta,
    content: Iterable[bytes],
    address: str | None = None,
    client: ClientInfo | None = None,
    quota_bytes: int = 0,
    now: Clock = utcnow,
) -> Record:
    """Store, pin, then index one record. Nothing is committed unless all of it worked,
    and nothing is left in the store if it didn't."""
    upload = start_upload(db, store, owner=owner, meta=meta, quota_bytes=quota_bytes)
    try:
        for chunk in content:
            upload.write(chunk)
        return upload.commit(db, address=address, client=client, now=now)
    except BaseException:
        upload.abort()
        raise


def _parse_id(record_id: str) -> str:
    try:
        return str(uuid.UUID(record_id))
    except ValueError:
        raise NotFound("record not found") from None


def get(db: Session, *, owner: User, record_id: str) -> Record:
    """The owner's record; anybody else's or a missing one is the same 404."""
    row = db.get(Record, _parse_id(record_id))
    if row is None or row.owner_id != owner.id:
        raise NotFound("record not found")
    return row


def viewed(
    db: Session,
    *,
    owner: User,
    record_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> Record:
    """:func:`get`, and a ``record.viewed`` event in the owner's trail (committed)."""
    record = get(db, owner=owner, record_id=record_id)
    record_event(
        db,
        event="record.viewed",
        user_id=owner.id,
        address=address,
        client=client,
        detail={"record_id": record.id},
        now=now,
    )
    db.commit()
    return record


def read(
    db: Session,
    store: BlobStore,
    *,
    owner: User,
    record_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> tuple[Record, Iterator[bytes]]:
    """The record and its ciphertext, and a ``record.read`` event in the owner's trail
    (committed once the content is found, before it is served)."""
    record = get(db, owner=owner, record_id=record_id)
    stream = open_content(store, record)
    record_event(
        db,
        event="record.read",
        user_id=owner.id,
        address=address,
        client=client,
        detail={"record_id": record.id},
        now=now,
    )
    db.commit()
    return record, stream


def _cursor(created_at: datetime, record_id: str) -> str:
    raw = f"{created_at.isoformat()}|{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor names; anything we could not have issued is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        text, record_id = raw.split("|", 1)
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:  # ours always carry an offset; a naive one can't be compared
            raise ValueError("cursor time without an offset")
        # Normalised here, where an offset that leaves the datetime range is caught.
        return at.astimezone(UTC), str(uuid.UUID(record_id))
    except (ValueError, OverflowError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValidationFailed("cursor is invalid") from exc


class RecordRow(NamedTuple):
    """A record as listed: plain values, no ORM identity (listing is the hot path)."""

    id: str
    cid: str
    size: int
    segments: int
    created_at: datetime
    owner_pkesk: bytes
    sealed_metadata: bytes
    session_key_envelope: bytes


_jstr = json.encoder.encode_basestring_ascii


def _iso(at: datetime) -> str:
    text = at.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def render_public(row: RecordRow) -> str:
    """The record as the API shows it (``RecordPublic`` JSON), rendered once at ingest.

    Listing is the server's hottest path. Rendering 50 records per request (base64 of
    ~1.5 KB each, pydantic models) cost most of its CPU, and on SQLite every fetched
    column hands the GIL to another thread; so each row stores its rendering in
    ``records.listing`` and a page is one column joined. A test checks this against
    pydantic's serialisation of the same values; a change of format needs a migration
    that renders the rows again (as 0002 did first).
    """
    return (
        f'{{"id":{_jstr(row.id)},"cid":{_jstr(row.cid)},"size":{int(row.size)},'
        f'"segments":{int(row.segments)},"created_at":"{_iso(row.created_at)}",'
        f'"pkesk":"{to_b64(row.owner_pkesk)}",'
        f'"sealed_metadata":"{to_b64(row.sealed_metadata)}",'
        f'"envelope":"{to_b64(row.session_key_envelope)}"}}'
    )


_GOOD_COPIES = (
    select(func.count())
    .where(
        RecordCopy.record_id == Record.id,
        RecordCopy.state == copies.OK,
        RecordCopy.store.in_(bindparam("stores", expanding=True)),
    )
    .scalar_subquery()
)
_PAGE = (
    select(Record.listing, _GOOD_COPIES)
    .where(Record.owner_id == bindparam("owner_id"))
    .order_by(Record.created_at.desc(), Record.id.desc())
    .limit(bindparam("limit"))
)
_PAGE_AFTER = _PAGE.where(
    tuple_(Record.created_at, Record.id)
    < tuple_(bindparam("at", type_=UTCDateTime()), bindparam("after_id", type_=String()))
)


def list_page(
    conn: Connection,
    *,
    owner_id: str,
    limit: int,
    cursor: str | None,
    stores: list[str] | None = None,
) -> tuple[list[str], str | None]:
    """A page of the owner's records as rendered JSON objects, and the next cursor.

    Newest first, keyset-paginated on (created_at, id), served by one index; the
    statements are built once and rows come back through Core: the stored rendering
    and the count of good copies among ``stores`` (the configured store ids).
    """
    limit = max(1, min(limit, MAX_PAGE))
    store_ids = stores if stores is not None else ["store"]
    params: dict[str, Any] = {"owner_id": owner_id, "limit": limit + 1, "stores": store_ids}
    stmt = _PAGE
    if cursor:
        params["at"], params["after_id"] = _decode_cursor(cursor)
        stmt = _PAGE_AFTER
    total = len(store_ids)
    rows = list(conn.execute(stmt, params).all())
    if len(rows) > limit:
        del rows[limit:]
        more = True
    else:
        more = False
    items = [copies.with_copies(listing, good, total) for listing, good in rows]
    if not more:
        return items, None
    last = json.loads(rows[-1][0])
    return items, _cursor(datetime.fromisoformat(last["created_at"]), last["id"])


def public_json(db: Session, record: Record, stores: list[str]) -> str:
    """The record as the API shows it: its stored rendering and its copies."""
    good = copies.ok_counts(db, [record.id], stores).get(record.id, 0)
    return copies.with_copies(record.listing, good, len(stores))


def open_content(store: BlobStore, record: Record) -> Iterator[bytes]:
    """The ciphertext stream; a missing blob is reported, never served as empty."""
    try:
        return store.get(record.cid)
    except BlobNotFound:
        log.error("record %s: content %s missing from the store", record.id, record.cid)
        raise ContentMissing() from None


def remove(
    db: Session,
    store: BlobStore,
    *,
    owner: User,
    record_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> None:
    record = get(db, owner=owner, record_id=record_id)
    cid = record.cid
    # Its grants go with it (the foreign key cascades too; this does not rely on it).
    db.execute(delete(RecordGrant).where(RecordGrant.record_id == record.id))
    db.delete(record)
    pending = PendingPin(cid=cid, created_at=now() - timedelta(days=3650))
    db.add(pending)  # if we crash before the unpin, reconcile finishes it
    record_event(
        db,
        event="record.deleted",
        user_id=owner.id,
        address=address,
        client=client,
        detail={"record_id": record.id},
        now=now,
    )
    db.commit()
    try:
        _release(db, store, pending)
    except StorageUnavailable:
        # The record is gone; a store that can't be reached now is unpinned by
        # reconcile (the pending row stays until every store has let the pin go).
        db.rollback()
        log.warning("delete: a store was unreachable; its unpin is left for reconcile")
    # Share links made from it end too (imported here: links builds on this module).
    from hygieia.services import links

    links.end_for_record(db, store, owner_id=owner.id, record_id=record_id, now=now)


def _release(db: Session, store: BlobStore, pending: PendingPin) -> bool:
    """Unpin ``pending``'s CID unless a record still uses it; True if it was unpinned.

    The pending row goes either way. It is deleted by id, not as an ORM object: another
    replica's reconcile may have removed it already, which is fine.
    """
    unused = db.scalar(select(Record.id).where(Record.cid == pending.cid).limit(1)) is None
    if unused:
        store.unpin(pending.cid)
    db.execute(delete(PendingPin).where(PendingPin.id == pending.id))
    db.commit()
    return unused


@dataclass
class ReconcileReport:
    unpinned: list[str]
    kept: int
    missing: list[str]
    repinned: list[str] = field(default_factory=list)
    collected: int = 0
    deferred: int = 0


def reconcile(
    db: Session,
    store: BlobStore,
    *,
    grace: timedelta,
    check_content: bool = False,
    now: Clock = utcnow,
) -> ReconcileReport:
    """Bring store and index back in step (start-up and ``hygieia admin reconcile``).

    1. Orphan pins (a crash between pin and commit, or during a delete) older than
       ``grace`` are released.
    2. Every indexed record must be pinned: a lost pin is taken again if the content
       is there, and a record whose content is gone is reported (never served empty).
       With ``check_content`` every record's content is checked, not only unpinned ones.
    3. The store drops blocks no pin reaches (a deleted record's ciphertext), if it
       collects garbage itself.
    """
    report = ReconcileReport(unpinned=[], kept=0, missing=[])
    cutoff = now() - grace
    for pending in list(db.scalars(select(PendingPin).where(PendingPin.created_at <= cutoff))):
        cid = pending.cid  # read while its row exists: _release deletes it
        try:
            released = _release(db, store, pending)
        except StorageUnavailable:
            # One of several stores is down: its row stays, for the next turn (the
            # others have let the pin go already; unpinning is idempotent).
            db.rollback()
            report.deferred += 1
            continue
        if released:
            report.unpinned.append(cid)
        else:
            report.kept += 1
    pinned = set(store.pins())
    for record_id, cid in db.execute(select(Record.id, Record.cid)).all():
        if cid in pinned and not check_content:
            continue
        if not store.has(cid):
            log.error("record %s: content %s missing from the store", record_id, cid)
            report.missing.append(record_id)
        elif cid not in pinned:
            store.pin(cid)
            pinned.add(cid)
            report.repinned.append(cid)
    if isinstance(store, SupportsGarbageCollection):
        # Deleted records' ciphertext leaves the disk here, not only the index.
        report.collected = store.collect_garbage(older_than=grace.total_seconds())
    return report
