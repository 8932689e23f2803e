"""Key and recovery-code rotation (protocol "Key rotation"): the server's side.

The client makes everything: a new OpenPGP identity locked with a new vault key, that
vault key wrapped under the same password- and recovery-derived keys as the current
one, and, record by record, a new PKESK, sealed metadata and envelope for the new key.
The server keeps the new identity as *pending* (:class:`KeyRotation`), swaps each
record's key packets with an optimistic check on the fingerprint the record is sealed
to, and makes the pending identity the account's only when no record, emergency
contact or link label is left on the old key. At every moment each record's packets
are sealed to a key the owner holds: the current one, or the pending one whose vault
key the same password (and recovery code) unwraps.

Upload during a rotation may seal to either key; the index step checks it again under
the account's row lock, so an upload sealed to the old key can't land after a commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.db.models import (
    AuthSession,
    EmergencyContact,
    KeyRotation,
    Record,
    ShareLink,
    User,
)
from hygieia.errors import (
    EmailTaken,
    InvalidKey,
    InvalidRecord,
    KeyConflict,
    KeyMismatch,
    NoRotation,
    PkeskMismatch,
    RotationIncomplete,
    RotationPending,
    UnlockedSecretKey,
    ValidationFailed,
)
from hygieia.services import accounts, factors, records
from hygieia.services.audit import UNKNOWN_CLIENT, ClientInfo, record_event
from hygieia.services.common import Clock, utcnow

#: ``GET /auth/keys/rotation`` names at most this many records still on the old key.
MAX_REMAINING_IDS = 500

_KEY_ERRORS: dict[str, type[InvalidKey]] = {
    cls.code: cls for cls in (InvalidKey, UnlockedSecretKey, KeyMismatch)
}


@dataclass(frozen=True)
class RotationState:
    pending: KeyRotation | None
    remaining: int
    record_ids: list[str]
    emergency_contact_ids: list[str]
    link_ids: list[str]


def pending_of(db: Session, user_id: str) -> KeyRotation | None:
    """The account's pending rotation, read from the database (never a stale copy)."""
    stmt = (
        select(KeyRotation)
        .where(KeyRotation.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    return db.execute(stmt).scalar_one_or_none()


def accepted_key_ids(db: Session, user: User) -> dict[str, str]:
    """Encryption key id → fingerprint of the keys an owner's PKESK may name now."""
    keys = {user.encryption_key_id: user.fingerprint}
    pending = pending_of(db, user.id)
    if pending is not None:
        keys[pending.encryption_key_id] = pending.fingerprint
    return keys


def start(
    db: Session,
    *,
    user: User,
    session: AuthSession | None,
    auth_key: bytes,
    proof: factors.FactorProof | None,
    public_key: str,
    locked_secret_key: str,
    wrapped_vault_key: bytes,
    recovery_wrapped_vault_key: bytes,
    address: str,
    limits: accounts.Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> KeyRotation:
    """Store the client's new identity as the account's pending one (after the proof)."""
    accounts.prove_sensitive(
        db,
        user=user,
        auth_key=auth_key,
        proof=proof,
        session=session,
        address=address,
        limits=limits,
        failed_event="auth.key_rotation_failed",
        client=client,
        # Real time, as every other factor check and user of this throttle bucket: a
        # TOTP code is for the present step whatever clock the app's tests move.
    )
    db.commit()  # the proof succeeded (a TOTP step or backup code is spent), come what may
    if pending_of(db, user.id) is not None:
        raise RotationPending()
    try:
        info = crypto.inspect_keys(public_key, locked_secret_key)
    except crypto.InvalidKeyMaterial as exc:
        raise _KEY_ERRORS.get(exc.reason, InvalidKey)() from exc
    taken = db.scalar(
        select(func.count()).select_from(User).where(User.fingerprint == info.fingerprint)
    )
    if taken:
        raise EmailTaken()
    row = KeyRotation(
        user_id=user.id,
        public_key=public_key,
        locked_secret_key=locked_secret_key,
        fingerprint=info.fingerprint,
        encryption_key_id=info.encryption_key_id,
        wrapped_vault_key=wrapped_vault_key,
        recovery_wrapped_vault_key=recovery_wrapped_vault_key,
        started_at=now(),
    )
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        if pending_of(db, user.id) is not None:
            raise RotationPending() from exc
        raise EmailTaken() from exc
    record_event(
        db,
        event="auth.key_rotation_started",
        user_id=user.id,
        address=address,
        client=client,
        now=now,
    )
    db.commit()
    return row


def _stale_records(user_id: str, fingerprint: str) -> Any:
    return Record.owner_id == user_id, or_(
        Record.key_fingerprint.is_(None), Record.key_fingerprint != fingerprint
    )


def state(db: Session, *, user: User) -> RotationState:
    """The pending identity (or None) and what is still sealed to the old key."""
    pending = pending_of(db, user.id)
    if pending is None:
        return RotationState(None, 0, [], [], [])
    where = _stale_records(user.id, pending.fingerprint)
    remaining = db.scalar(select(func.count()).select_from(Record).where(*where)) or 0
    ids = list(
        db.scalars(
            select(Record.id)
            .where(*where)
            .order_by(Record.created_at, Record.id)
            .limit(MAX_REMAINING_IDS)
        )
    )
    contacts = list(
        db.scalars(
            select(EmergencyContact.id)
            .where(EmergencyContact.owner_id == user.id)
            .order_by(EmergencyContact.created_at, EmergencyContact.id)
        )
    )
    links = list(
        db.scalars(
            select(ShareLink.id)
            .where(*_labelled_live_links(user.id))
            .order_by(ShareLink.created_at, ShareLink.id)
        )
    )
    return RotationState(pending, remaining, ids, contacts, links)


def _labelled_live_links(user_id: str) -> Any:
    """Links whose label the commit must re-seal: labelled ones that have not ended (an
    ended link's label is dropped at the commit instead)."""
    return (
        ShareLink.owner_id == user_id,
        ShareLink.sealed_label.is_not(None),
        ShareLink.ended_at.is_(None),
    )


def _sealed_to(message: bytes, key_id: str, what: str) -> None:
    try:
        recipients = crypto.message_recipients(message)
    except crypto.InvalidFraming as exc:
        raise InvalidRecord(f"{what} is not a sealed OpenPGP message") from exc
    if recipients != [key_id]:
        raise PkeskMismatch(f"{what} is not sealed to the new key only")


def swap_record_keys(
    db: Session,
    *,
    owner: User,
    record_id: str,
    expected_fingerprint: str,
    pkesk: bytes,
    sealed_metadata: bytes,
    envelope: bytes,
    now: Clock = utcnow,
) -> Record:
    """Replace a record's key packets with ones for the pending key.

    Atomic and optimistic: the row changes only if it is still sealed to
    ``expected_fingerprint`` (409 ``key_conflict`` otherwise); the content and its CID
    never change.
    """
    record = records.get(db, owner=owner, record_id=record_id)  # 404 unless the owner's
    pending = pending_of(db, owner.id)
    if pending is None:
        raise NoRotation()
    try:
        key_id = crypto.pkesk_key_id(pkesk)
    except crypto.InvalidFraming as exc:
        raise InvalidRecord("pkesk is not an OpenPGP PKESK packet") from exc
    if key_id != pending.encryption_key_id:
        raise PkeskMismatch("the PKESK is not for the new encryption key")
    _sealed_to(sealed_metadata, pending.encryption_key_id, "sealed_metadata")
    _sealed_to(envelope, pending.encryption_key_id, "envelope")
    current = record.key_fingerprint or owner.fingerprint
    row = records.RecordRow(
        id=record.id,
        cid=record.cid,
        size=record.size,
        segments=record.segments,
        created_at=record.created_at,
        owner_pkesk=pkesk,
        sealed_metadata=sealed_metadata,
        session_key_envelope=envelope,
    )
    stmt = (
        update(Record)
        .where(Record.id == record.id, Record.owner_id == owner.id)
        .values(
            owner_pkesk=pkesk,
            sealed_metadata=sealed_metadata,
            session_key_envelope=envelope,
            key_fingerprint=pending.fingerprint,
            listing=records.render_public(row),
        )
        .execution_options(synchronize_session=False)
    )
    if current != expected_fingerprint:
        raise KeyConflict()
    if record.key_fingerprint is None:
        stmt = stmt.where(Record.key_fingerprint.is_(None))
    else:
        stmt = stmt.where(Record.key_fingerprint == expected_fingerprint)
    if db.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
        db.rollback()
        raise KeyConflict()
    db.commit()
    db.refresh(record)
    return record


def commit(
    db: Session,
    *,
    user: User,
    session_id: str,
    emergency_keys: Mapping[str, bytes],
    link_labels: Mapping[str, bytes],
    address: str | None = None,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> User:
    """Make the pending identity the account's; refused while anything is on the old key.

    ``emergency_keys`` (contact id → the new vault key sealed to that contact) must
    cover every emergency contact, and ``link_labels`` (link id → the label sealed to
    the new key) every labelled link that has not ended (ended links lose their
    label): the old vault key and the old key must not be what they hold after the
    commit. All of it in one transaction, under the
    account's row lock (uploads sealed to the old key are refused from then on).
    """
    db.execute(select(User.id).where(User.id == user.id).with_for_update())
    pending = pending_of(db, user.id)
    if pending is None:
        db.rollback()
        raise NoRotation()
    remaining = db.scalar(
        select(func.count())
        .select_from(Record)
        .where(*_stale_records(user.id, pending.fingerprint))
    )
    if remaining:
        db.rollback()
        raise RotationIncomplete(f"{remaining} record(s) are still sealed to the old key")
    contacts = list(
        db.scalars(select(EmergencyContact).where(EmergencyContact.owner_id == user.id))
    )
    if {c.id for c in contacts} != set(emergency_keys):
        db.rollback()
        raise RotationIncomplete("every emergency contact needs the new vault key sealed to it")
    for contact in contacts:
        key = accounts.resolve_key(db, email=contact.email)
        try:
            recipients = crypto.message_recipients(emergency_keys[contact.id])
        except crypto.InvalidFraming as exc:
            db.rollback()
            raise InvalidRecord("sealed_vault_key is not a sealed OpenPGP message") from exc
        if not recipients or any(k != key.encryption_key_id for k in recipients):
            db.rollback()
            raise PkeskMismatch("a vault key is not sealed to its contact's encryption key only")
    links = list(db.scalars(select(ShareLink).where(*_labelled_live_links(user.id))))
    if {link.id for link in links} != set(link_labels):
        db.rollback()
        raise RotationIncomplete("every link label needs to be sealed to the new key")
    for link in links:
        try:
            _sealed_to(link_labels[link.id], pending.encryption_key_id, "sealed_label")
        except (InvalidRecord, PkeskMismatch):
            db.rollback()
            raise
    for contact in contacts:
        contact.sealed_vault_key = emergency_keys[contact.id]
    for link in links:
        link.sealed_label = link_labels[link.id]
    # Ended links keep no label sealed to the old key.
    db.execute(
        update(ShareLink)
        .where(
            ShareLink.owner_id == user.id,
            ShareLink.sealed_label.is_not(None),
            ShareLink.ended_at.is_not(None),
        )
        .values(sealed_label=None)
        .execution_options(synchronize_session=False)
    )
    user.public_key = pending.public_key
    user.locked_secret_key = pending.locked_secret_key
    user.fingerprint = pending.fingerprint
    user.encryption_key_id = pending.encryption_key_id
    user.wrapped_vault_key = pending.wrapped_vault_key
    user.recovery_wrapped_vault_key = pending.recovery_wrapped_vault_key
    db.delete(pending)
    db.flush()  # the pending row (and its unique fingerprint) before the user's
    accounts.revoke_others_uncommitted(db, user_id=user.id, except_id=session_id, now=now)
    record_event(
        db, event="auth.key_rotated", user_id=user.id, address=address, client=client, now=now
    )
    db.commit()
    return user


def rotate_recovery(
    db: Session,
    *,
    user: User,
    session: AuthSession | None,
    auth_key: bytes,
    proof: factors.FactorProof | None,
    recovery_salt: bytes,
    recovery_verifier: bytes,
    recovery_wrapped_vault_key: bytes,
    address: str,
    limits: accounts.Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> None:
    """Install a new recovery code (its salt, verifier and wrapped vault key); the old
    code stops working at once. Refused while a key rotation is pending (the pending
    vault key is wrapped under the old code's key: finish the rotation first)."""
    accounts.prove_sensitive(
        db,
        user=user,
        auth_key=auth_key,
        proof=proof,
        session=session,
        address=address,
        limits=limits,
        failed_event="auth.recovery_rotation_failed",
        client=client,
        # Real time, as every other factor check and user of this throttle bucket: a
        # TOTP code is for the present step whatever clock the app's tests move.
    )
    db.commit()  # the proof succeeded (a TOTP step or backup code is spent), come what may
    if pending_of(db, user.id) is not None:
        raise RotationPending()
    if recovery_salt == user.salt:
        raise ValidationFailed("recovery_salt must differ from salt")
    with limits.hashing.slot():
        recovery_hash = crypto.hash_secret(recovery_verifier)
    user.recovery_salt = recovery_salt
    user.recovery_hash = recovery_hash
    user.recovery_wrapped_vault_key = recovery_wrapped_vault_key
    record_event(
        db, event="auth.recovery_rotated", user_id=user.id, address=address, client=client, now=now
    )
    db.commit()
