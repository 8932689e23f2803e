"""SMART Health Links: the server as a blind store that enforces a link's policy
(protocol §9; HL7 SMART Health Cards and Links IG STU1, "SMART Health Links").

The owner's client decrypts records itself, encrypts each file as a compact JWE under
a fresh link key and uploads the JWEs with the link's policy. The key lives only in the
link's ``#`` fragment: this module never sees it, nor any plaintext. It stores the JWEs
(pinned in the blob store), answers the spec's manifest and file requests, and ends the
link when it is revoked, expires, runs out of opens (``max_opens``: successful manifest
requests, a Hygieia extension) or of passcode attempts. An ended link's files are
unpinned: at once, or, for a link that ran out of opens, once the ``location`` URLs
its last manifest handed out have expired.

Passcode guesses are serialised by a claim: one conditional ``UPDATE … SET
attempts_left = attempts_left - 1 WHERE attempts_left > 0`` (committed) before the
Argon2id check, refunded when the passcode was right. However many guesses arrive in
parallel, at most ``attempts_left`` of them are ever checked, on SQLite and PostgreSQL
alike and across replicas; a guess that finds no attempt left gets the 404 of a
disabled link. The 401's ``remainingAttempts`` is the count its claim left.

Every access (manifest, direct file, location file, refusal of a known link) goes to
the owner's audit trail with the recipient string the requester gave and its address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.db.models import PendingPin, ShareLink, ShareLinkFile, User
from hygieia.errors import (
    BlobNotFound,
    ContentMissing,
    InvalidLinkFile,
    InvalidRecord,
    LinkPasscodeWrong,
    LinkTooLarge,
    NotFound,
    PkeskMismatch,
    ValidationFailed,
)
from hygieia.services import accounts, records
from hygieia.services.audit import ClientInfo, record_event
from hygieia.services.common import Clock, rowcount, token_hash, utcnow
from hygieia.services.hashing import HashLimiter
from hygieia.storage import BlobStore, BlobWriter

log = logging.getLogger(__name__)

#: The public routes, under the API prefix (the manifest URL is ``…/shl/{token}``).
MANIFEST_PATH = "/api/v1/shl/"
LOCATION_PATH = "/api/v1/shl-files/"
TOKEN_BYTES = 32  # 256 bits, as the spec asks of the manifest URL
MAX_FILES = 20
#: A file is embedded in a manifest only if the requester allows its size and it is
#: at most this big (it is read into memory to be embedded); otherwise a location.
EMBED_MAX = 256 * 1024
#: The content types a link file may have (SHL spec, ``files.contentType``).
CONTENT_TYPES = frozenset(
    {"application/fhir+json", "application/smart-health-card", "application/smart-api-access"}
)
FLAGS = frozenset({"", "P", "U"})
MAX_RECIPIENT = 256
#: How long after its last open an exhausted link keeps its files (location URLs live
#: at most an hour: HYGIEIA_LINK_LOCATION_SECONDS ≤ 3600).
EXHAUSTED_GRACE = timedelta(hours=1)
MAX_PAGE = 200


class LinkFileIn(Protocol):
    @property
    def content_type(self) -> str: ...
    @property
    def size(self) -> int: ...


class LinkIn(Protocol):
    """A link as the API parsed and bounded it (``api.schemas.LinkCreate``)."""

    @property
    def flag(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def max_opens(self) -> int | None: ...
    @property
    def passcode(self) -> str | None: ...
    @property
    def sealed_label(self) -> bytes | None: ...
    @property
    def record_ids(self) -> Sequence[str]: ...
    @property
    def files(self) -> Sequence[LinkFileIn]: ...


@dataclass(frozen=True)
class LinkPolicy:
    """The server's bounds on links (from Settings)."""

    max_link_bytes: int
    max_days: int
    passcode_attempts: int
    location_seconds: int


def new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).decode().rstrip("=")


# --- the JWE as it streams in ------------------------------------------------------------
_B64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_MAX_HEADER = 1024


class JweFramingChecker:
    """Checks, without a key, that bytes streaming past are one compact JWE as Hygieia
    writes them: protected header exactly ``{"alg":"dir","enc":"A256GCM","cty":T}``
    (no ``zip``), empty encrypted key, 96-bit IV, ciphertext, 128-bit tag, base64url."""

    def __init__(self, content_type: str) -> None:
        self._content_type = content_type
        self._part = 0
        self._lengths = [0, 0, 0, 0, 0]
        self._header = bytearray()

    def feed(self, chunk: bytes) -> None:
        start = 0
        while start < len(chunk):
            dot = chunk.find(b".", start)
            piece = chunk[start:] if dot < 0 else chunk[start:dot]
            if not _B64URL.issuperset(piece):
                raise InvalidLinkFile()
            self._lengths[self._part] += len(piece)
            if self._part == 0:
                self._header += piece
                if len(self._header) > _MAX_HEADER:
                    raise InvalidLinkFile()
            if dot < 0:
                return
            self._part += 1
            if self._part > 4:
                raise InvalidLinkFile()
            start = dot + 1

    def finish(self) -> None:
        header_len, key_len, iv_len, _ct_len, tag_len = self._lengths
        if self._part != 4 or key_len != 0 or iv_len != 16 or tag_len != 22:
            raise InvalidLinkFile()
        try:
            raw = base64.urlsafe_b64decode(bytes(self._header) + b"=" * (-header_len % 4))
            header = json.loads(raw)
        except (ValueError, binascii.Error):
            raise InvalidLinkFile() from None
        if header != {"alg": "dir", "enc": "A256GCM", "cty": self._content_type}:
            raise InvalidLinkFile()


class LinkUpload:
    """A link on its way in: each file's JWE streamed into the store (:meth:`start_file`,
    :meth:`write`, :meth:`end_file`), then :meth:`commit`, or :meth:`abort`.

    Nothing is stored as a link before ``commit``; ``abort`` removes the blocks of
    every file put so far that no pin reaches.
    """

    def __init__(
        self,
        store: BlobStore,
        *,
        owner: User,
        link: LinkIn,
        passcode_hash: str | None,
        policy: LinkPolicy,
    ) -> None:
        self._store = store
        self._owner = owner
        self._link = link
        self._passcode_hash = passcode_hash
        self._policy = policy
        self._writers: list[BlobWriter] = []
        self._cids: list[str] = []
        self._checker: JweFramingChecker | None = None
        self._seen = 0
        self._total = 0

    @property
    def files_done(self) -> int:
        return len(self._cids)

    def start_file(self) -> None:
        index = len(self._writers)
        if index >= len(self._link.files) or self._checker is not None:
            raise ValidationFailed("more files than the link announced")
        self._checker = JweFramingChecker(self._link.files[index].content_type)
        self._seen = 0
        self._writers.append(self._store.writer())

    def write(self, chunk: bytes) -> None:
        if self._checker is None:
            raise ValidationFailed("file data outside a file")
        self._seen += len(chunk)
        self._total += len(chunk)
        if self._total > self._policy.max_link_bytes:
            raise LinkTooLarge()
        if self._seen > self._link.files[len(self._writers) - 1].size:
            raise ValidationFailed("a file is larger than announced")
        self._checker.feed(chunk)
        self._writers[-1].write(chunk)

    def end_file(self) -> None:
        if self._checker is None:
            raise ValidationFailed("file end outside a file")
        if self._seen != self._link.files[len(self._writers) - 1].size:
            raise ValidationFailed("a file's size differs from the announced one")
        self._checker.finish()
        self._checker = None
        self._cids.append(self._writers[-1].finish())

    def commit(
        self,
        db: Session,
        *,
        address: str | None = None,
        client: ClientInfo | None = None,
        now: Clock = utcnow,
    ) -> tuple[ShareLink, str]:
        """Every file arrived and checked out: pin them, then store the link. Returns the
        link and its manifest token (shown once; the server keeps its SHA-256)."""
        link = self._link
        if self._checker is not None or len(self._cids) != len(link.files):
            raise ValidationFailed("fewer files than the link announced")
        at = now()
        pending = [PendingPin(cid=cid, created_at=at) for cid in self._cids]
        db.add_all(pending)
        db.commit()  # the intent is durable before the pins exist
        pinned: list[PendingPin] = []
        try:
            for p in pending:
                self._store.pin(p.cid)
                pinned.append(p)
            token = new_token()
            row = ShareLink(
                id=str(uuid.uuid4()),
                owner_id=self._owner.id,
                token_hash=token_hash(token),
                flag=link.flag,
                sealed_label=link.sealed_label,
                record_ids=list(link.record_ids),
                passcode_hash=self._passcode_hash,
                attempts_left=self._policy.passcode_attempts,
                max_opens=link.max_opens,
                opens=0,
                created_at=at,
                expires_at=link.expires_at,
                ended_at=None,
                end_reason=None,
                released=False,
            )
            db.add(row)
            for i, (cid, f) in enumerate(zip(self._cids, link.files, strict=True)):
                file_row = ShareLinkFile(link_id=row.id, position=i, cid=cid, size=f.size)
                file_row.content_type = f.content_type
                db.add(file_row)
            for p in pending:
                db.delete(p)
            _event(db, "link.created", link=row, address=address, client=client, now=now)
            db.commit()
        except BaseException:
            db.rollback()
            for p in pinned:
                try:
                    records._release(db, self._store, p)
                except Exception:
                    log.warning("link upload: pin of a refused link left for reconcile")
            raise
        return row, token

    def abort(self) -> None:
        """Give the upload up (never raises)."""
        for writer in self._writers:
            writer.abort()


def start_link(
    db: Session,
    store: BlobStore,
    *,
    owner: User,
    link: LinkIn,
    policy: LinkPolicy,
    hashing: HashLimiter,
    now: Clock = utcnow,
) -> LinkUpload:
    """Check the link's policy before a byte of its files is stored, and open the put."""
    at = now()
    if not link.files or len(link.files) > MAX_FILES:
        raise ValidationFailed(f"a link has 1 to {MAX_FILES} files")
    if sum(f.size for f in link.files) > policy.max_link_bytes:
        raise LinkTooLarge()
    if any(f.content_type not in CONTENT_TYPES for f in link.files):
        raise ValidationFailed("unsupported link file content type")
    if link.flag not in FLAGS:
        raise ValidationFailed("flag must be '', 'P' or 'U'")
    if (link.flag == "P") != (link.passcode is not None):
        raise ValidationFailed("a passcode goes with flag 'P', and only with it")
    if link.flag == "U" and len(link.files) != 1:
        raise ValidationFailed("flag 'U' is for a link to one file")
    if not at < link.expires_at <= at + timedelta(days=policy.max_days):
        raise ValidationFailed(f"expires_at must be ahead, at most {policy.max_days} days")
    for record_id in link.record_ids:
        records.get(db, owner=owner, record_id=record_id)  # 404 unless the owner's
    if link.sealed_label is not None:
        try:
            sealed_for = crypto.message_recipients(link.sealed_label)
        except crypto.InvalidFraming as exc:
            raise InvalidRecord("sealed_label is not a sealed OpenPGP message") from exc
        if sealed_for != [owner.encryption_key_id]:
            raise PkeskMismatch("the label is not sealed for the owner's encryption key")
    passcode_hash = None
    if link.passcode is not None:
        with hashing.slot():
            passcode_hash = crypto.hash_secret(link.passcode.encode("utf-8"))
    db.commit()  # no connection held while the files stream in
    return LinkUpload(store, owner=owner, link=link, passcode_hash=passcode_hash, policy=policy)


# --- the owner's view ----------------------------------------------------------------------
def state_of(link: ShareLink, now: datetime) -> str:
    """active, or why the link ended: revoked, expired, exhausted, locked."""
    if link.ended_at is not None:
        return link.end_reason or "revoked"
    if link.expires_at <= now:
        return "expired"
    return "active"


def _parse_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound("link not found") from None


def get(db: Session, *, owner: User, link_id: str) -> ShareLink:
    row = db.get(ShareLink, _parse_id(link_id))
    if row is None or row.owner_id != owner.id:
        raise NotFound("link not found")
    return row


def list_links(db: Session, *, owner: User, limit: int = MAX_PAGE) -> list[ShareLink]:
    """The owner's links, newest first."""
    stmt = (
        select(ShareLink)
        .where(ShareLink.owner_id == owner.id)
        .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
        .limit(max(1, min(limit, MAX_PAGE)))
    )
    return list(db.scalars(stmt))


def files_of(db: Session, link: ShareLink) -> list[ShareLinkFile]:
    stmt = (
        select(ShareLinkFile)
        .where(ShareLinkFile.link_id == link.id)
        .order_by(ShareLinkFile.position)
    )
    return list(db.scalars(stmt))


def revoke(
    db: Session,
    store: BlobStore,
    *,
    owner: User,
    link_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> ShareLink:
    """End the link now (its files are unpinned); revoking an ended link is a no-op."""
    link = get(db, owner=owner, link_id=link_id)
    if link.ended_at is None:
        _end(db, link, "revoked", now=now)
        _event(db, "link.revoked", link=link, address=address, client=client, now=now)
        db.commit()
    release(db, store, link, now=now)
    return link


def end_for_record(
    db: Session, store: BlobStore, *, owner_id: str, record_id: str, now: Clock = utcnow
) -> None:
    """A record was deleted: every live link made from it ends (revoked)."""
    stmt = select(ShareLink).where(ShareLink.owner_id == owner_id, ShareLink.released.is_(False))
    for link in list(db.scalars(stmt)):
        if record_id in (link.record_ids or []):
            if link.ended_at is None:
                _end(db, link, "revoked", now=now)
                _event(db, "link.revoked", link=link, now=now)
                db.commit()
            release(db, store, link, now=now)


def _end(db: Session, link: ShareLink, reason: str, *, now: Clock) -> bool:
    """Mark the link ended (a compare-and-swap: of two requests, one ends it)."""
    changed = db.execute(
        update(ShareLink)
        .where(ShareLink.id == link.id, ShareLink.ended_at.is_(None))
        .values(ended_at=now(), end_reason=reason)
        .execution_options(synchronize_session=False)
    )
    db.flush()
    db.refresh(link)
    return rowcount(changed) == 1


def release(db: Session, store: BlobStore, link: ShareLink, *, now: Clock = utcnow) -> None:
    """Unpin an ended link's files and forget them (crash-safe: through PendingPin rows,
    which reconcile finishes)."""
    if link.released:
        return
    files = files_of(db, link)
    old = now() - timedelta(days=3650)
    pending = [PendingPin(cid=f.cid, created_at=old) for f in files]
    db.add_all(pending)
    for f in files:
        db.delete(f)
    link.released = True
    db.commit()
    for p in pending:
        try:
            records._release(db, store, p)
        except Exception:
            log.warning("link: unpin of an ended link's file left for reconcile")


def sweep(db: Session, store: BlobStore, *, now: Clock = utcnow) -> int:
    """Maintenance: end expired links and release ended ones whose files can go."""
    at = now()
    stmt = select(ShareLink).where(ShareLink.released.is_(False))
    done = 0
    for link in list(db.scalars(stmt)):
        if link.ended_at is None and link.expires_at <= at:
            _end(db, link, "expired", now=now)
            db.commit()
        if link.ended_at is None:
            continue
        if link.end_reason == "exhausted" and link.ended_at + EXHAUSTED_GRACE > at:
            continue
        release(db, store, link, now=now)
        done += 1
    return done


# --- the public side: manifest, direct file, location file -------------------------------
def _event(
    db: Session,
    event: str,
    *,
    link: ShareLink,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock,
    **detail: Any,
) -> None:
    record_event(
        db,
        event=event,
        user_id=link.owner_id,
        address=address,
        client=client,
        detail={"link_id": link.id, **detail},
        now=now,
    )


def _clean_recipient(recipient: str) -> str:
    text = "".join(ch for ch in recipient if ch.isprintable())[:MAX_RECIPIENT]
    return text.strip() or "(none given)"


def _by_token(db: Session, token: str) -> ShareLink:
    if not 16 <= len(token) <= 128:
        raise NotFound("link not found")
    link = db.scalar(select(ShareLink).where(ShareLink.token_hash == token_hash(token)))
    if link is None:
        raise NotFound("link not found")
    return link


def _refuse(
    db: Session,
    store: BlobStore,
    link: ShareLink,
    *,
    recipient: str,
    address: str,
    client: ClientInfo | None = None,
    now: Clock,
) -> NotFound:
    """A known link that is not active: ended now if it just expired, the refusal noted
    in the owner's trail, and the 404 the spec asks for."""
    at = now()
    if link.ended_at is None and link.expires_at <= at:
        _end(db, link, "expired", now=now)
        db.commit()
        release(db, store, link, now=now)
    _event(
        db, "link.refused", link=link, address=address, client=client, now=now, recipient=recipient
    )
    db.commit()
    return NotFound("link not found")


def _active(link: ShareLink, at: datetime) -> bool:
    return link.ended_at is None and link.expires_at > at


def _check_passcode(
    db: Session,
    store: BlobStore,
    link: ShareLink,
    passcode: str | None,
    *,
    recipient: str,
    address: str,
    client: ClientInfo | None = None,
    hashing: HashLimiter,
    now: Clock,
) -> None:
    if link.passcode_hash is None:
        return
    if passcode is None:  # not a guess: nothing is counted
        raise LinkPasscodeWrong(link.attempts_left)
    claimed = db.execute(
        update(ShareLink)
        .where(ShareLink.id == link.id, ShareLink.attempts_left > 0, ShareLink.ended_at.is_(None))
        .values(attempts_left=ShareLink.attempts_left - 1)
        .returning(ShareLink.attempts_left)
        .execution_options(synchronize_session=False)
    ).first()
    db.commit()
    if claimed is None:
        raise _refuse(db, store, link, recipient=recipient, address=address, client=client, now=now)
    remaining = int(claimed[0])
    with hashing.slot():
        ok = crypto.verify_secret(link.passcode_hash, passcode.encode("utf-8"))
    if ok:
        db.execute(
            update(ShareLink)
            .where(ShareLink.id == link.id)
            .values(attempts_left=ShareLink.attempts_left + 1)
            .execution_options(synchronize_session=False)
        )
        db.commit()
        return
    _event(
        db,
        "link.passcode_failed",
        link=link,
        address=address,
        client=client,
        now=now,
        recipient=recipient,
        remaining_attempts=remaining,
    )
    db.commit()
    if remaining == 0:
        _end(db, link, "locked", now=now)
        db.commit()
        release(db, store, link, now=now)
    raise LinkPasscodeWrong(remaining)


def _claim_open(db: Session, link: ShareLink, *, now: Clock) -> bool:
    """Count one open; False if the link has none left (or ended meanwhile)."""
    stmt = update(ShareLink).where(ShareLink.id == link.id, ShareLink.ended_at.is_(None))
    if link.max_opens is not None:
        stmt = stmt.where(ShareLink.opens < link.max_opens)
    claimed = db.execute(
        stmt.values(opens=ShareLink.opens + 1)
        .returning(ShareLink.opens)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        db.commit()
        return False
    if link.max_opens is not None and int(claimed[0]) >= link.max_opens:
        # The last open: the link ends, its files stay until its location URLs expire.
        db.execute(
            update(ShareLink)
            .where(ShareLink.id == link.id, ShareLink.ended_at.is_(None))
            .values(ended_at=now(), end_reason="exhausted")
            .execution_options(synchronize_session=False)
        )
    return True


@dataclass(frozen=True)
class ManifestRequest:
    recipient: str
    passcode: str | None
    embedded_length_max: int | None


def open_manifest(
    db: Session,
    store: BlobStore,
    *,
    token: str,
    request: ManifestRequest,
    base_url: str,
    address: str,
    client: ClientInfo | None = None,
    policy: LinkPolicy,
    hashing: HashLimiter,
    now: Clock = utcnow,
) -> dict[str, Any]:
    """The manifest for a manifest request (SHL spec), or 401/404 as the spec says."""
    link = _by_token(db, token)
    recipient = _clean_recipient(request.recipient)
    if not _active(link, now()):
        raise _refuse(db, store, link, recipient=recipient, address=address, client=client, now=now)
    _check_passcode(
        db,
        store,
        link,
        request.passcode,
        recipient=recipient,
        address=address,
        client=client,
        hashing=hashing,
        now=now,
    )
    if not _claim_open(db, link, now=now):
        raise _refuse(db, store, link, recipient=recipient, address=address, client=client, now=now)
    files = files_of(db, link)
    secret = accounts.server_secret(db, "shl-location")
    expires = int((now() + timedelta(seconds=policy.location_seconds)).timestamp())
    out = []
    for f in files:
        entry: dict[str, Any] = {
            "contentType": f.content_type,
            "lastUpdated": link.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if f.content_type == "application/fhir+json":
            entry["fhirVersion"] = "4.0.1"
        limit = request.embedded_length_max
        if limit is not None and f.size <= min(limit, EMBED_MAX):
            entry["embedded"] = b"".join(_content(store, f)).decode("ascii")
        else:
            entry["location"] = base_url.rstrip("/") + LOCATION_PATH + _ticket(secret, f, expires)
        out.append(entry)
    _event(
        db, "link.opened", link=link, address=address, client=client, now=now, recipient=recipient
    )
    db.commit()
    return {"status": "finalized", "files": out}


def _content(store: BlobStore, f: ShareLinkFile) -> Iterator[bytes]:
    try:
        return store.get(f.cid)
    except BlobNotFound:
        log.error("link file %s: content missing from the store", f.id)
        raise ContentMissing() from None


def open_direct(
    db: Session,
    store: BlobStore,
    *,
    token: str,
    recipient: str,
    address: str,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> tuple[ShareLinkFile, Iterator[bytes]]:
    """A ``U`` link's one file (``GET url?recipient=``); counts as an open."""
    link = _by_token(db, token)
    who = _clean_recipient(recipient)
    if link.flag != "U" or not _active(link, now()):
        raise _refuse(db, store, link, recipient=who, address=address, client=client, now=now)
    if not _claim_open(db, link, now=now):
        raise _refuse(db, store, link, recipient=who, address=address, client=client, now=now)
    (f,) = files_of(db, link)
    stream = _content(store, f)
    _event(db, "link.opened", link=link, address=address, client=client, now=now, recipient=who)
    db.commit()
    return f, stream


_TICKET = struct.Struct(">16sQ32s")


def _mac(secret: bytes, file_id: bytes, expires: int) -> bytes:
    msg = b"hygieia/shl-location\x00" + file_id + struct.pack(">Q", expires)
    return hmac.new(secret, msg, hashlib.sha256).digest()


def _ticket(secret: bytes, f: ShareLinkFile, expires: int) -> str:
    file_id = uuid.UUID(f.id).bytes
    raw = _TICKET.pack(file_id, expires, _mac(secret, file_id, expires))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def open_location(
    db: Session,
    store: BlobStore,
    *,
    ticket: str,
    address: str,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> tuple[ShareLinkFile, Iterator[bytes]]:
    """A file by a ``location`` URL a manifest handed out: valid until its expiry (≤ 1 h)
    while its link is not revoked, expired or locked (a link that ran out of opens keeps
    serving the URLs its last manifest gave)."""
    try:
        raw = base64.urlsafe_b64decode(ticket + "=" * (-len(ticket) % 4))
        file_id, expires, mac = _TICKET.unpack(raw)
    except (ValueError, binascii.Error, struct.error):
        raise NotFound("file not found") from None
    secret = accounts.server_secret(db, "shl-location")
    if not hmac.compare_digest(mac, _mac(secret, file_id, expires)):
        raise NotFound("file not found")
    at = now()
    if expires <= at.timestamp():
        raise NotFound("file not found")
    f = db.get(ShareLinkFile, str(uuid.UUID(bytes=file_id)))
    if f is None:
        raise NotFound("file not found")
    link = db.get(ShareLink, f.link_id)
    if link is None or link.expires_at <= at or link.end_reason not in (None, "exhausted"):
        raise NotFound("file not found")
    stream = _content(store, f)
    _event(db, "link.file_read", link=link, address=address, client=client, now=now)
    db.commit()
    return f, stream
