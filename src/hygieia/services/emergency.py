"""Emergency access (protocol §8, Bitwarden's model): a trusted contact reads a vault
after a waiting period that its owner can cut short or refuse.

The owner's client seals the owner's vault key to the contact's key (an OpenPGP
message signed by the owner; the server can't open it) and the server keeps it with a
waiting period of 1 to 30 days. The contact may *request* access; from then the owner can
approve at once or deny, and once ``release_at`` (the request time + the wait, or the
moment of an early approval) has passed, the server hands the contact the sealed vault
key, the owner's locked secret key and a read-only view of the owner's records.

The one check that matters, "released?", is ``release_at <= now`` inside the very
statement that reads the row, so a denial, an ended access or a removal takes effect
for the contact's next request, whatever runs at the same time; a request is one
conditional ``UPDATE`` (``requested_at IS NULL``), so two at once make one. Time is the
caller's ``now`` (the app's injectable clock).

Anything that is not the caller's (another owner's contact, another contact's access,
one not released, removed or never made) answers like a missing one:
:class:`~hygieia.errors.NotFound`. Every step lands in the *owner's* audit trail;
events caused by the contact carry no address.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.db.models import EmergencyContact, Record, User
from hygieia.errors import (
    EmergencyToSelf,
    InvalidRecord,
    NoPendingRequest,
    NotFound,
    PkeskMismatch,
    TooManyContacts,
)
from hygieia.services import accounts, records
from hygieia.services.audit import ClientInfo, record_event
from hygieia.services.common import Clock, rowcount, utcnow
from hygieia.storage import BlobStore

MIN_WAIT_DAYS = 1
MAX_WAIT_DAYS = 30
MAX_CONTACTS = 20

IDLE, REQUESTED, GRANTED = "idle", "requested", "granted"


def _not_found() -> NotFound:
    return NotFound("emergency access not found")


def _parse_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _not_found() from None


def status(row: EmergencyContact, now: datetime) -> str:
    if row.release_at is None:
        return IDLE
    return GRANTED if row.release_at <= now else REQUESTED


def _event(
    db: Session,
    event: str,
    *,
    row: EmergencyContact,
    address: str | None = None,
    client: ClientInfo | None = None,
    record_id: str | None = None,
    now: Clock,
) -> None:
    detail = {"emergency_id": row.id, "contact": row.email}
    if record_id is not None:
        detail["record_id"] = record_id
    record_event(
        db,
        event=event,
        user_id=row.owner_id,
        address=address,
        client=client,
        detail=detail,
        now=now,
    )


# --- the owner's side --------------------------------------------------------------------
@dataclass(frozen=True)
class ContactView:
    """An owner's emergency contact (``EmergencyContactPublic``)."""

    id: str
    email: str
    fingerprint: str
    wait_days: int
    created_at: datetime
    status: str
    requested_at: datetime | None
    release_at: datetime | None


def contact_view(row: EmergencyContact, now: datetime) -> ContactView:
    return ContactView(
        id=row.id,
        email=row.email,
        fingerprint=row.fingerprint,
        wait_days=row.wait_days,
        created_at=row.created_at,
        status=status(row, now),
        requested_at=row.requested_at,
        release_at=row.release_at,
    )


def add_contact(
    db: Session,
    *,
    owner: User,
    email: str,
    wait_days: int,
    sealed_vault_key: bytes,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> ContactView:
    """Name (or re-name) ``email`` as a trusted contact with ``sealed_vault_key``.

    The sealed key must be encrypted to the encryption subkey the key lookup answers for
    ``email`` only (an account's, or its decoy's: accepted alike, docs/security.md
    "Grants"). Re-adding a contact replaces its sealed key and wait and clears any
    request (a new wait starts with the next request).
    """
    if not MIN_WAIT_DAYS <= wait_days <= MAX_WAIT_DAYS:
        raise ValueError("wait_days out of range")  # bounded by the schema before this
    if email == owner.email:
        raise EmergencyToSelf()
    # May commit (a decoy's creation time): before anything else is added. The real
    # time, not the app clock: it is the key lookup's business, not a waiting period.
    key = accounts.resolve_key(db, email=email)
    try:
        recipients = crypto.message_recipients(sealed_vault_key)
    except crypto.InvalidFraming as exc:
        raise InvalidRecord("sealed_vault_key is not a sealed OpenPGP message") from exc
    if not recipients or any(k != key.encryption_key_id for k in recipients):
        raise PkeskMismatch("the vault key is not sealed to the contact's encryption key only")
    at = now()
    row = db.scalar(
        select(EmergencyContact).where(
            EmergencyContact.owner_id == owner.id, EmergencyContact.email == email
        )
    )
    if row is None:
        count = db.scalar(
            select(func.count())
            .select_from(EmergencyContact)
            .where(EmergencyContact.owner_id == owner.id)
        )
        if (count or 0) >= MAX_CONTACTS:
            raise TooManyContacts()
        row = EmergencyContact(id=str(uuid.uuid4()), owner_id=owner.id, email=email)
        db.add(row)
    row.contact_id = key.user.id if key.user is not None else None
    row.fingerprint = key.info.fingerprint
    row.wait_days = wait_days
    row.sealed_vault_key = sealed_vault_key
    row.created_at = at
    row.requested_at = row.release_at = row.approved_at = None
    _event(db, "emergency.contact_added", row=row, address=address, client=client, now=now)
    db.commit()
    return contact_view(row, at)


def contacts_of(db: Session, *, owner: User, now: Clock = utcnow) -> list[ContactView]:
    """The owner's emergency contacts, oldest first, each with its request's state."""
    stmt = (
        select(EmergencyContact)
        .where(EmergencyContact.owner_id == owner.id)
        .order_by(EmergencyContact.created_at, EmergencyContact.id)
    )
    at = now()
    return [contact_view(row, at) for row in db.scalars(stmt)]


def _owned(db: Session, *, owner: User, contact_id: str) -> EmergencyContact:
    row = db.get(EmergencyContact, _parse_id(contact_id))
    if row is None or row.owner_id != owner.id:
        raise _not_found()
    return row


def remove_contact(
    db: Session,
    *,
    owner: User,
    contact_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> None:
    """Remove a contact: its sealed vault key is deleted; any access ends at once."""
    row = _owned(db, owner=owner, contact_id=contact_id)
    _event(db, "emergency.contact_removed", row=row, address=address, client=client, now=now)
    db.delete(row)
    db.commit()


def approve(
    db: Session,
    *,
    owner: User,
    contact_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> ContactView:
    """Release at once to a contact whose request is waiting."""
    row = _owned(db, owner=owner, contact_id=contact_id)
    at = now()
    changed = db.execute(
        update(EmergencyContact)
        .where(
            EmergencyContact.id == row.id,
            EmergencyContact.requested_at.is_not(None),
            EmergencyContact.release_at > at,
        )
        .values(release_at=at, approved_at=at)
        .execution_options(synchronize_session=False)
    )
    if not rowcount(changed):
        db.rollback()
        raise NoPendingRequest()
    _event(db, "emergency.approved", row=row, address=address, client=client, now=now)
    db.commit()
    db.refresh(row)
    return contact_view(row, at)


def deny(
    db: Session,
    *,
    owner: User,
    contact_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> ContactView:
    """Refuse a waiting request, or end a granted access: either way the contact reads
    nothing from now on, until a new request waits its full period again."""
    row = _owned(db, owner=owner, contact_id=contact_id)
    at = now()
    seen = row.release_at
    if seen is None:
        return contact_view(row, at)  # nothing asked, nothing to refuse
    changed = db.execute(
        update(EmergencyContact)
        .where(EmergencyContact.id == row.id, EmergencyContact.release_at == seen)
        .values(requested_at=None, release_at=None, approved_at=None)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed):
        event = "emergency.ended" if seen <= at else "emergency.denied"
        _event(db, event, row=row, address=address, client=client, now=now)
    db.commit()
    db.refresh(row)
    return contact_view(row, at)


# --- the contact's side ------------------------------------------------------------------
@dataclass(frozen=True)
class OwnerView:
    email: str
    fingerprint: str
    public_key: str


@dataclass(frozen=True)
class AccessView:
    """An emergency access the caller holds as a contact (``EmergencyAccessPublic``)."""

    id: str
    owner: OwnerView
    wait_days: int
    created_at: datetime
    status: str
    requested_at: datetime | None
    release_at: datetime | None


def _access_view(row: EmergencyContact, owner: User, now: datetime) -> AccessView:
    return AccessView(
        id=row.id,
        owner=OwnerView(
            email=owner.email, fingerprint=owner.fingerprint, public_key=owner.public_key
        ),
        wait_days=row.wait_days,
        created_at=row.created_at,
        status=status(row, now),
        requested_at=row.requested_at,
        release_at=row.release_at,
    )


_ACCESS = select(EmergencyContact, User).join(User, User.id == EmergencyContact.owner_id)


def accesses_of(db: Session, *, contact: User, now: Clock = utcnow) -> list[AccessView]:
    """The vaults the caller is an emergency contact for, oldest first."""
    stmt = _ACCESS.where(EmergencyContact.contact_id == contact.id).order_by(
        EmergencyContact.created_at, EmergencyContact.id
    )
    at = now()
    return [_access_view(row, owner, at) for row, owner in db.execute(stmt).all()]


def _mine(db: Session, *, contact: User, access_id: str) -> tuple[EmergencyContact, User]:
    stmt = _ACCESS.where(
        EmergencyContact.id == _parse_id(access_id), EmergencyContact.contact_id == contact.id
    )
    found = db.execute(stmt).first()
    if found is None:
        raise _not_found()
    row, owner = found
    return row, owner


def request(db: Session, *, contact: User, access_id: str, now: Clock = utcnow) -> AccessView:
    """Ask for access: released after the waiting period unless the owner denies.
    Asking again while a request waits (or access is granted) changes nothing."""
    row, owner = _mine(db, contact=contact, access_id=access_id)
    at = now()
    changed = db.execute(
        update(EmergencyContact)
        .where(EmergencyContact.id == row.id, EmergencyContact.requested_at.is_(None))
        .values(requested_at=at, release_at=at + timedelta(days=row.wait_days))
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed):
        _event(db, "emergency.requested", row=row, now=now)
    db.commit()
    db.refresh(row)
    return _access_view(row, owner, at)


def _released(
    db: Session, *, contact: User, access_id: str, now: Clock
) -> tuple[EmergencyContact, User]:
    """The access and its owner if released to ``contact`` at ``now``: one statement, so
    a denial, an end or a removal committed before it is always seen."""
    stmt = _ACCESS.where(
        EmergencyContact.id == _parse_id(access_id),
        EmergencyContact.contact_id == contact.id,
        EmergencyContact.release_at.is_not(None),
        EmergencyContact.release_at <= now(),
    )
    found = db.execute(stmt).first()
    if found is None:
        raise _not_found()
    row, owner = found
    return row, owner


@dataclass(frozen=True)
class VaultView:
    """What a released access hands the contact (``EmergencyVaultPublic``)."""

    id: str
    owner: OwnerView
    sealed_vault_key: bytes
    locked_secret_key: str


def vault(db: Session, *, contact: User, access_id: str, now: Clock = utcnow) -> VaultView:
    """The sealed vault key and the owner's locked secret key, once released."""
    row, owner = _released(db, contact=contact, access_id=access_id, now=now)
    view = VaultView(
        id=row.id,
        owner=OwnerView(
            email=owner.email, fingerprint=owner.fingerprint, public_key=owner.public_key
        ),
        sealed_vault_key=row.sealed_vault_key,
        locked_secret_key=owner.locked_secret_key,
    )
    _event(db, "emergency.vault_released", row=row, now=now)
    db.commit()
    return view


def records_page(
    db: Session,
    *,
    contact: User,
    access_id: str,
    limit: int,
    cursor: str | None,
    stores: list[str] | None = None,
    now: Clock = utcnow,
) -> tuple[list[str], str | None]:
    """A page of the owner's records (their renderings with copies), once released."""
    _row, owner = _released(db, contact=contact, access_id=access_id, now=now)
    return records.list_page(
        db.connection(), owner_id=owner.id, limit=limit, cursor=cursor, stores=stores
    )


def record(
    db: Session, *, contact: User, access_id: str, record_id: str, now: Clock = utcnow
) -> Record:
    """One of the owner's records, once released."""
    _row, owner = _released(db, contact=contact, access_id=access_id, now=now)
    return records.get(db, owner=owner, record_id=record_id)


def open_content(
    db: Session,
    store: BlobStore,
    *,
    contact: User,
    access_id: str,
    record_id: str,
    now: Clock = utcnow,
) -> tuple[Record, Iterator[bytes]]:
    """One of the owner's records' ciphertext, once released (an
    ``emergency.content_read`` event for the owner)."""
    row, owner = _released(db, contact=contact, access_id=access_id, now=now)
    item = records.get(db, owner=owner, record_id=record_id)
    stream = records.open_content(store, item)
    _event(db, "emergency.content_read", row=row, record_id=item.id, now=now)
    db.commit()
    return item, stream
