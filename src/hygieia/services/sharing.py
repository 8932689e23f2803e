"""Sharing: grants of a record to another account, and the owner's access trail.

A grant (protocol §7) holds the recipient's PKESK of the record's session key and the
record's sealed metadata for them, both made by the owner's client; the ciphertext is
the record's own and never changes. The server checks what it can without a key: the
caller owns the record, the recipient is not the owner, the PKESK and the sealed
metadata are for the encryption subkey that the recipient's key lookup answers, and
sizes. That subkey is the email's decoy when the email has no account: such a grant
is accepted like any other and can never be opened (docs/security.md, "Grants").

Anything that is not the caller's (a record, a grant, a record shared with someone
else) answers like a missing one: :class:`~hygieia.errors.NotFound`.

Reads by a recipient are written into the *owner's* audit trail, without the
recipient's address.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.db.models import Record, RecordGrant, User
from hygieia.errors import (
    Conflict,
    InvalidRecord,
    NotFound,
    PkeskMismatch,
    ShareToSelf,
    TooManyGrants,
    ValidationFailed,
)
from hygieia.services import accounts, records
from hygieia.services.audit import ClientInfo, record_event
from hygieia.services.common import Clock, rowcount, utcnow
from hygieia.storage import BlobStore

MAX_GRANTS_PER_RECORD = 1000
MAX_PAGE = 200
#: A listing hands out every grant's metadata: at most one event per grant this often.
METADATA_READ_EVERY = timedelta(hours=1)


class GrantIn(Protocol):
    """One grant as the API parsed and bounded it (``api.schemas.GrantCreate``)."""

    @property
    def record_id(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def pkesk(self) -> bytes: ...
    @property
    def sealed_metadata(self) -> bytes: ...


def _not_found() -> NotFound:
    return NotFound("record not found")


def _parse_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _not_found() from None


def _check_packets(grant: GrantIn, key_id: str) -> None:
    """The PKESK and every PKESK of the sealed metadata name ``key_id``."""
    try:
        pkesk_for = crypto.pkesk_key_id(grant.pkesk)
    except crypto.InvalidFraming as exc:
        raise InvalidRecord("pkesk is not an OpenPGP PKESK packet") from exc
    try:
        metadata_for = crypto.message_recipients(grant.sealed_metadata)
    except crypto.InvalidFraming as exc:
        raise InvalidRecord("sealed_metadata is not a sealed OpenPGP message") from exc
    if pkesk_for != key_id or any(k != key_id for k in metadata_for):
        raise PkeskMismatch("the grant is not sealed for the recipient's encryption key")


def create_grants(
    db: Session,
    *,
    owner: User,
    grants: Sequence[GrantIn],
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> list[RecordGrant]:
    """Store ``grants`` (all or none); a grant for a (record, email) that has one
    replaces it. Returns the grants in the order given."""
    emails = {g.email for g in grants}
    for grant in grants:
        records.get(db, owner=owner, record_id=grant.record_id)  # 404 if not the owner's
    if owner.email in emails:
        raise ShareToSelf()
    # May commit (a decoy's creation time): before any grant is added.
    keys = {email: accounts.resolve_key(db, email=email, now=now) for email in sorted(emails)}
    for grant in grants:
        _check_packets(grant, keys[grant.email].encryption_key_id)
    at = now()
    rows: list[RecordGrant] = []
    for grant in grants:
        key = keys[grant.email]
        row = db.scalar(
            select(RecordGrant).where(
                RecordGrant.record_id == grant.record_id, RecordGrant.email == grant.email
            )
        )
        if row is None:
            row = RecordGrant(
                id=str(uuid.uuid4()),
                record_id=grant.record_id,
                owner_id=owner.id,
                email=grant.email,
            )
            db.add(row)
        row.recipient_id = key.user.id if key.user is not None else None
        row.fingerprint = key.info.fingerprint
        row.pkesk = grant.pkesk
        row.sealed_metadata = grant.sealed_metadata
        row.created_at = at
        row.metadata_read_at = None
        rows.append(row)
        _event(
            db,
            "share.granted",
            owner_id=owner.id,
            grant=row,
            address=address,
            client=client,
            now=now,
        )
    try:
        db.flush()
        for record_id in {g.record_id for g in grants}:
            count = db.scalar(
                select(func.count())
                .select_from(RecordGrant)
                .where(RecordGrant.record_id == record_id)
            )
            if (count or 0) > MAX_GRANTS_PER_RECORD:
                raise TooManyGrants()
        db.commit()
    except IntegrityError:
        # A concurrent request made the same (record, email) grant, or deleted the record.
        db.rollback()
        raise Conflict("the record's grants changed meanwhile; try again") from None
    except BaseException:
        db.rollback()
        raise
    return rows


def _event(
    db: Session,
    event: str,
    *,
    owner_id: str,
    grant: RecordGrant,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock,
) -> None:
    detail = {"record_id": grant.record_id, "grant_id": grant.id, "recipient": grant.email}
    record_event(
        db, event=event, user_id=owner_id, address=address, client=client, detail=detail, now=now
    )


def grants_of_record(db: Session, *, owner: User, record_id: str) -> list[RecordGrant]:
    """One of the owner's records' grants, oldest first."""
    record = records.get(db, owner=owner, record_id=record_id)
    stmt = (
        select(RecordGrant)
        .where(RecordGrant.record_id == record.id)
        .order_by(RecordGrant.created_at, RecordGrant.id)
    )
    return list(db.scalars(stmt))


def _cursor(at: datetime, row_id: str) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        text, row_id = raw.split("|", 1)
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError("cursor time without an offset")
        return at.astimezone(UTC), str(uuid.UUID(row_id))
    except (ValueError, OverflowError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValidationFailed("cursor is invalid") from exc


def grants_page(
    db: Session, *, owner: User, limit: int, cursor: str | None
) -> tuple[list[RecordGrant], str | None]:
    """The grants of all the owner's records, newest first (keyset pagination)."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(RecordGrant).where(RecordGrant.owner_id == owner.id)
    if cursor:
        at, after = _decode_cursor(cursor)
        stmt = stmt.where(tuple_(RecordGrant.created_at, RecordGrant.id) < tuple_(at, after))
    stmt = stmt.order_by(RecordGrant.created_at.desc(), RecordGrant.id.desc()).limit(limit + 1)
    rows = list(db.scalars(stmt))
    if len(rows) <= limit:
        return rows, None
    del rows[limit:]
    return rows, _cursor(rows[-1].created_at, rows[-1].id)


def revoke(
    db: Session,
    *,
    owner: User,
    grant_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> None:
    """The owner deletes a grant: the recipient's next request is a 404."""
    row = db.get(RecordGrant, _parse_id(grant_id))
    if row is None or row.owner_id != owner.id:
        raise NotFound("grant not found")
    _event(
        db, "share.revoked", owner_id=owner.id, grant=row, address=address, client=client, now=now
    )
    db.delete(row)
    db.commit()


@dataclass(frozen=True)
class SharedOwner:
    email: str
    fingerprint: str
    public_key: str


@dataclass(frozen=True)
class SharedRecord:
    """A record as its recipient sees it (``SharedRecordPublic``)."""

    id: str
    grant_id: str
    cid: str
    size: int
    segments: int
    created_at: datetime
    granted_at: datetime
    owner: SharedOwner
    pkesk: bytes
    sealed_metadata: bytes


_SHARED = (
    select(RecordGrant, Record, User)
    .join(Record, Record.id == RecordGrant.record_id)
    .join(User, User.id == RecordGrant.owner_id)
)


def _shared(grant: RecordGrant, record: Record, owner: User) -> SharedRecord:
    return SharedRecord(
        id=record.id,
        grant_id=grant.id,
        cid=record.cid,
        size=record.size,
        segments=record.segments,
        created_at=record.created_at,
        granted_at=grant.created_at,
        owner=SharedOwner(
            email=owner.email, fingerprint=owner.fingerprint, public_key=owner.public_key
        ),
        pkesk=grant.pkesk,
        sealed_metadata=grant.sealed_metadata,
    )


def _metadata_read(db: Session, grants: Sequence[RecordGrant], *, now: Clock) -> None:
    """``share.metadata_read`` for each grant not so logged within the last hour."""
    at = now()
    for grant in grants:
        # A compare-and-swap: of two replicas listing at once, one writes the event.
        changed = db.execute(
            update(RecordGrant)
            .where(
                RecordGrant.id == grant.id,
                (RecordGrant.metadata_read_at.is_(None))
                | (RecordGrant.metadata_read_at <= at - METADATA_READ_EVERY),
            )
            .values(metadata_read_at=at)
            .execution_options(synchronize_session=False)
        )
        if rowcount(changed):
            _event(db, "share.metadata_read", owner_id=grant.owner_id, grant=grant, now=now)
    db.commit()


def shared_page(
    db: Session, *, recipient: User, limit: int, cursor: str | None, now: Clock = utcnow
) -> tuple[list[SharedRecord], str | None]:
    """The records shared with ``recipient``, newest grant first."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = _SHARED.where(RecordGrant.recipient_id == recipient.id)
    if cursor:
        at, after = _decode_cursor(cursor)
        stmt = stmt.where(tuple_(RecordGrant.created_at, RecordGrant.id) < tuple_(at, after))
    stmt = stmt.order_by(RecordGrant.created_at.desc(), RecordGrant.id.desc()).limit(limit + 1)
    rows = [(g, r, o) for g, r, o in db.execute(stmt).all()]
    next_cursor = None
    if len(rows) > limit:
        del rows[limit:]
        next_cursor = _cursor(rows[-1][0].created_at, rows[-1][0].id)
    items = [_shared(g, r, o) for g, r, o in rows]
    _metadata_read(db, [g for g, _, _ in rows], now=now)
    return items, next_cursor


def _grant_for(db: Session, *, recipient: User, record_id: str) -> tuple[RecordGrant, Record, User]:
    stmt = _SHARED.where(
        RecordGrant.recipient_id == recipient.id, RecordGrant.record_id == _parse_id(record_id)
    )
    row = db.execute(stmt).first()
    if row is None:
        raise _not_found()
    grant, record, owner = row
    return grant, record, owner


def get_shared(
    db: Session, *, recipient: User, record_id: str, now: Clock = utcnow
) -> SharedRecord:
    """One record shared with ``recipient``; anything else is a 404."""
    grant, record, owner = _grant_for(db, recipient=recipient, record_id=record_id)
    item = _shared(grant, record, owner)
    _metadata_read(db, [grant], now=now)
    return item


def open_shared_content(
    db: Session, store: BlobStore, *, recipient: User, record_id: str, now: Clock = utcnow
) -> tuple[Record, Iterator[bytes]]:
    """The ciphertext of a record shared with ``recipient`` (a ``share.content_read``
    event for its owner); anything else is a 404."""
    grant, record, _owner = _grant_for(db, recipient=recipient, record_id=record_id)
    stream = records.open_content(store, record)
    _event(db, "share.content_read", owner_id=grant.owner_id, grant=grant, now=now)
    db.commit()
    return record, stream


def remove_shared(db: Session, *, recipient: User, record_id: str, now: Clock = utcnow) -> None:
    """The recipient drops a record from their list (the record stays its owner's)."""
    grant, _record, _owner = _grant_for(db, recipient=recipient, record_id=record_id)
    _event(db, "share.removed", owner_id=grant.owner_id, grant=grant, now=now)
    db.execute(delete(RecordGrant).where(RecordGrant.id == grant.id))
    db.commit()
