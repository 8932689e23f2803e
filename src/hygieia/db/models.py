"""SQLAlchemy models. The server stores ciphertext, public keys and hashes only.

No column holds a password, an unlocked key, a vault key or plaintext record metadata.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _uuid() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Password-derived login material (DESIGN §3): KDF parameters, salt, hash of auth_key.
    kdf: Mapped[dict[str, Any]] = mapped_column(JSON)
    salt: Mapped[bytes] = mapped_column(LargeBinary(64))
    auth_hash: Mapped[str] = mapped_column(String(255))
    recovery_salt: Mapped[bytes] = mapped_column(LargeBinary(64))
    recovery_hash: Mapped[str] = mapped_column(String(255))
    # OpenPGP identity: public key and the vault-key-locked secret key.
    public_key: Mapped[str] = mapped_column(Text)
    locked_secret_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(40), unique=True)
    encryption_key_id: Mapped[str] = mapped_column(String(16))
    wrapped_vault_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    recovery_wrapped_vault_key: Mapped[bytes] = mapped_column(LargeBinary(128))

    sessions: Mapped[list[AuthSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class AuthSession(Base):
    """A login session or a one-time recovery grant; only the token's SHA-256 is kept."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "session" | "recovery" | "factor" | …
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Kind "factor" (a pending login): second-factor attempts made with it so far.
    attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: A WebAuthn challenge bound to this row (pending logins, passkey ceremonies).
    challenge: Mapped[bytes | None] = mapped_column(LargeBinary(64), nullable=True)
    # What the owner sees in their list of sessions (protocol §11): the client's own claims
    # (kind from X-Hygieia-Client, a cleaned User-Agent), the address it logged in from and
    # when the token was last used (updated at most once a minute).
    client: Mapped[str | None] = mapped_column(String(16), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    user: Mapped[User] = relationship(back_populates="sessions")


class UserFactor(Base):
    """A second factor of an account (protocol §10): a TOTP secret or a passkey.

    ``confirmed_at`` is None while an enrolment waits for its first code; only confirmed
    factors count at login. ``totp_secret`` is sealed at rest with a server secret
    (``services.factors``); ``last_totp_step`` makes every TOTP code single-use.
    """

    __tablename__ = "user_factors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "totp" | "passkey"
    label: Mapped[str] = mapped_column(String(64))
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary(256), nullable=True)
    credential_id: Mapped[bytes | None] = mapped_column(
        LargeBinary(1024), nullable=True, unique=True
    )
    credential_public_key: Mapped[bytes | None] = mapped_column(LargeBinary(4096), nullable=True)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_totp_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class BackupCode(Base):
    """A single-use backup code: only a salted HMAC-SHA-256 of the normalised code."""

    __tablename__ = "backup_codes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Throttle(Base):
    """Attempt counters for rate limiting across replicas (``services.ratelimit``).

    One row per bucket (e.g. failed logins of one account from one client address);
    ``version`` makes each claim a compare-and-swap.
    """

    __tablename__ = "throttle"
    __table_args__ = (Index("ix_throttle_last_at", "last_at"),)

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the parties
    count: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    """Security-relevant events, append-only. ``detail`` never holds secrets or record
    metadata; ``client``/``user_agent`` are the requesting client's claims."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_user_at", "user_id", "at"),
        Index("ix_audit_events_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    event: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client: Mapped[str | None] = mapped_column(String(16), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ServerSecret(Base):
    """Server-wide random secrets shared by all replicas (e.g. the prelogin HMAC key)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary(64))


class DecoyKey(Base):
    """When the decoy public key shown for an unknown email was "created".

    The key itself is derived from a server secret and the email on every lookup
    (``services.accounts.public_key_of``); only its creation time, picked once at the
    first lookup, is kept so that repeated lookups give the same key.
    """

    __tablename__ = "decoy_keys"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # HMAC of the email
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Record(Base):
    """A sealed record: its ciphertext lives in the blob store under ``cid``."""

    __tablename__ = "records"
    __table_args__ = (Index("ix_records_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    cid: Mapped[str] = mapped_column(String(128), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    segments: Mapped[int] = mapped_column(Integer)
    owner_pkesk: Mapped[bytes] = mapped_column(LargeBinary(1024))
    session_key_envelope: Mapped[bytes] = mapped_column(LargeBinary(8192))
    sealed_metadata: Mapped[bytes] = mapped_column(LargeBinary(65536))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The fingerprint of the owner key its PKESK, metadata and envelope are sealed to
    # (the owner's, or during a key rotation the pending one's: services.rotation).
    key_fingerprint: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The record as the API lists it (JSON), rendered once from the columns above at
    # ingest: listing a page is then one column per row (services.records.render_public).
    listing: Mapped[str] = mapped_column(Text)


class KeyRotation(Base):
    """An account's key rotation under way (protocol "Key rotation"): the new identity,
    all of it made by the client. The new vault key is wrapped under the same password-
    and recovery-derived keys as the current one. Records move to it one by one
    (``records.key_fingerprint``); the commit makes it the account's and deletes the row.
    """

    __tablename__ = "key_rotations"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    public_key: Mapped[str] = mapped_column(Text)
    locked_secret_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(40), unique=True)
    encryption_key_id: Mapped[str] = mapped_column(String(16))
    wrapped_vault_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    recovery_wrapped_vault_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PendingPin(Base):
    """A pin taken before its record row is committed; reconcile removes stale ones."""

    __tablename__ = "pending_pins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    cid: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RecordGrant(Base):
    """A record shared with one recipient (protocol §7): the recipient's PKESK of the
    record's session key and the record's sealed metadata for them, both made by the
    owner's client. The ciphertext is the record's, untouched.

    ``recipient_id`` is None for a grant to an email without an account (made with the
    email's decoy key): it is kept and listed for the owner like any other, and can
    never be opened (docs/security.md, "Grants").
    """

    __tablename__ = "record_grants"
    __table_args__ = (
        UniqueConstraint("record_id", "email", name="uq_record_grants_record_email"),
        Index("ix_record_grants_owner_created", "owner_id", "created_at", "id"),
        Index("ix_record_grants_recipient_created", "recipient_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    recipient_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    email: Mapped[str] = mapped_column(String(254))
    fingerprint: Mapped[str] = mapped_column(String(40))
    pkesk: Mapped[bytes] = mapped_column(LargeBinary(1024))
    sealed_metadata: Mapped[bytes] = mapped_column(LargeBinary(65536))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When a share.metadata_read event was last written for it (one per hour at most).
    metadata_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RecordCopy(Base):
    """One record's copy on one store (``services.copies``): its state and last check.

    ``store`` is the store's configured id (``local``, ``kubo:host:port``,
    ``psa:host/path``: never a credential). ``state`` is ``ok`` (pinned and, when last
    checked, whole), ``pending`` (to be made by the replicator, at ``next_attempt_at``)
    or ``bad`` (a scrub found blocks missing or corrupt; a repair re-makes it).
    ``request_id`` is a pinning service's id of the pin request in flight.
    """

    __tablename__ = "record_copies"
    __table_args__ = (
        Index("ix_record_copies_due", "state", "next_attempt_at"),
        Index("ix_record_copies_checked", "checked_at"),
    )

    record_id: Mapped[str] = mapped_column(
        ForeignKey("records.id", ondelete="CASCADE"), primary_key=True
    )
    store: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class EmergencyContact(Base):
    """An owner's trusted contact for emergency access (protocol §8).

    ``sealed_vault_key`` is an OpenPGP message made by the owner's client: the owner's
    vault key, signed by the owner and encrypted to the contact's key only. The server
    can't open it; it hands it to the contact once access is released:
    ``requested_at`` is set when the contact asks, ``release_at`` is then
    ``requested_at`` + the waiting period (or the moment the owner approved early), and
    the contact reads the owner's vault only while ``release_at <= now``. A denial or an
    ended access clears both; removing the contact deletes the row.

    ``contact_id`` is None for an email without an account (sealed to its decoy key):
    listed for the owner like any other, it can never be requested.
    """

    __tablename__ = "emergency_contacts"
    __table_args__ = (
        UniqueConstraint("owner_id", "email", name="uq_emergency_contacts_owner_email"),
        Index("ix_emergency_contacts_contact", "contact_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    contact_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    email: Mapped[str] = mapped_column(String(254))
    fingerprint: Mapped[str] = mapped_column(String(40))
    wait_days: Mapped[int] = mapped_column(Integer)
    sealed_vault_key: Mapped[bytes] = mapped_column(LargeBinary(8192))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    release_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ShareLink(Base):
    """A SMART Health Link (protocol §9): the server's side of it.

    The link's key never reaches the server; it holds the files as JWEs (in the blob
    store, pinned while the link lives), the link's policy and its state. The manifest
    URL's random token is kept as its SHA-256 only, the passcode as an Argon2id hash,
    the label sealed to the owner (OpenPGP, like record metadata).

    A link is active while ``ended_at`` is None, ``expires_at`` is ahead, the passcode
    has attempts left and, with ``max_opens``, ``opens`` is below it. ``end_reason``
    says why it ended (revoked, expired, exhausted, locked); its files are released then.
    """

    __tablename__ = "share_links"
    __table_args__ = (Index("ix_share_links_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    flag: Mapped[str] = mapped_column(String(8))
    sealed_label: Mapped[bytes | None] = mapped_column(LargeBinary(16384), nullable=True)
    record_ids: Mapped[list[str]] = mapped_column(JSON)
    passcode_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attempts_left: Mapped[int] = mapped_column(Integer)
    max_opens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    opens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Whether the files were released (unpinned, rows gone): at the end, or for an
    # exhausted link once the last location URL it handed out has expired.
    released: Mapped[bool] = mapped_column(Boolean, default=False)


class ShareLinkFile(Base):
    """One encrypted file of a link: a compact JWE in the blob store under ``cid``."""

    __tablename__ = "share_link_files"
    __table_args__ = (UniqueConstraint("link_id", "position", name="uq_share_link_files_pos"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    link_id: Mapped[str] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    cid: Mapped[str] = mapped_column(String(128), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(64))
