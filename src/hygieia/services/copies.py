"""Each record on several stores: the copies' bookkeeping, the replicator, scrub and repair.

Every record has one ``record_copies`` row per configured store (``StoreSet.ids``):
``ok`` (pinned there and, when last checked, whole), ``pending`` (the replicator makes
it, retrying with backoff) or ``bad`` (a scrub found it damaged; a repair re-makes it).
An upload writes the rows with the record (``ok`` where it was pinned before the 201);
everything else lives in the database too, so any server process can pick the work
up after a restart, one at a time (the callers hold the ``copies`` lease, see
``services.maintenance``).

* :func:`replicate` makes the pending copies: a member store gets the blob streamed
  from a store holding a good copy (its CID re-computed on the way, the target's own
  import giving the same CID) and pinned; a pinning service gets a pin request with
  ``origins`` (the holders' libp2p addresses), followed until ``pinned`` or ``failed``.
* :func:`scrub` re-reads every block of every copy and hashes it against its CID
  (pinning services: their pin status), least recently checked first, within a byte
  budget; with ``repair`` a bad copy is re-made from a good one, and a record left with
  no good copy is reported: in the log, the result, and the owner's audit trail.

A copy is pinned only under a ``PendingPin`` row, as an upload's is, so a copy made
for a record deleted meanwhile is released, now or by reconcile.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hygieia.db.models import PendingPin, Record, RecordCopy, UTCDateTime
from hygieia.errors import BlobNotFound, StorageUnavailable
from hygieia.ipfs import CID, RAW, decode_dag_pb, parse_cid
from hygieia.services.audit import record_event
from hygieia.services.common import Clock, utcnow
from hygieia.storage import BlobStore, StoreSet, SupportsBlocks

log = logging.getLogger(__name__)

OK, PENDING, BAD = "ok", "pending", "bad"

#: Retry delays: ``BACKOFF_BASE * 2**attempts``, at most ``BACKOFF_MAX``.
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_MAX = timedelta(hours=1)

_ERROR_MAX = 200


def backoff(attempts: int) -> timedelta:
    delay: timedelta = BACKOFF_BASE * (2 ** min(attempts, 20))
    return min(delay, BACKOFF_MAX)


# -- bookkeeping -------------------------------------------------------------------
def add_rows(
    db: Session, *, record_id: str, stores: StoreSet, pinned: Sequence[str], now: datetime
) -> None:
    """The rows of a new record: ``ok`` where it is pinned, ``pending`` (due now) elsewhere."""
    for store_id in stores.ids:
        ok = store_id in pinned
        db.add(
            RecordCopy(
                record_id=record_id,
                store=store_id,
                state=OK if ok else PENDING,
                attempts=0,
                next_attempt_at=None if ok else now,
                checked_at=now if ok else None,
            )
        )


def ok_counts(
    conn: Connection | Session, record_ids: Sequence[str], stores: Sequence[str]
) -> dict[str, int]:
    """Good copies per record, among the configured stores."""
    if not record_ids:
        return {}
    rows = conn.execute(
        select(RecordCopy.record_id, func.count())
        .where(
            RecordCopy.record_id.in_(record_ids),
            RecordCopy.state == OK,
            RecordCopy.store.in_(stores),
        )
        .group_by(RecordCopy.record_id)
    ).all()
    return {str(r): int(n) for r, n in rows}


def with_copies(listing: str, ok: int, total: int) -> str:
    """A record's stored rendering (``records.render_public``) with its ``copies``."""
    return f'{listing[:-1]},"copies":{{"ok":{int(ok)},"total":{int(total)}}}}}'


def ensure_rows(db: Session, stores: StoreSet, *, now: datetime) -> int:
    """Rows for records that have none for a configured store (records from before a
    store was added, or before copies were tracked): ``pending``. How many were added."""
    added = 0
    for store_id in stores.ids:
        missing = select(
            Record.id,
            literal(store_id),
            literal(PENDING),
            literal(0),
            literal(now, UTCDateTime()),
        ).where(~exists().where(RecordCopy.record_id == Record.id, RecordCopy.store == store_id))
        try:
            result = db.execute(
                insert(RecordCopy).from_select(
                    ["record_id", "store", "state", "attempts", "next_attempt_at"], missing
                )
            )
            db.commit()
        except IntegrityError:  # a record indexed meanwhile came with its rows
            db.rollback()
            continue
        added += max(0, int(getattr(result, "rowcount", 0) or 0))
    return added


def _set(db: Session, record_id: str, store_id: str, **values: Any) -> None:
    if "error" in values and values["error"] is not None:
        values["error"] = str(values["error"])[:_ERROR_MAX]
    db.execute(
        update(RecordCopy)
        .where(RecordCopy.record_id == record_id, RecordCopy.store == store_id)
        .values(**values)
    )


def _set_made(db: Session, record_id: str, store_id: str, *, at: datetime) -> None:
    """The copy on ``store_id`` was just made and checked: good, retries forgotten."""
    _set(
        db,
        record_id,
        store_id,
        state=OK,
        attempts=0,
        next_attempt_at=None,
        checked_at=at,
        error=None,
    )


def _holders(db: Session, record_id: str, stores: StoreSet, *, exclude: str) -> list[str]:
    """Member stores holding a good copy of the record (by the last check), in
    configured order."""
    good = set(
        db.scalars(
            select(RecordCopy.store).where(
                RecordCopy.record_id == record_id, RecordCopy.state == OK
            )
        )
    )
    return [s for s in stores.members if s in good and s != exclude]


def _failure(exc: BaseException) -> str:
    """An error for the copies table and the log: the exception's message, which never
    carries credentials (storage messages are fixed sentences)."""
    return f"{type(exc).__name__}: {exc}"


# -- making a copy -------------------------------------------------------------------
def copy_blob(stores: StoreSet, *, cid: str, target: str, holders: Sequence[str]) -> None:
    """Make ``target`` hold and pin ``cid``, from the first holder that answers.

    A target that still holds every block (a pin removed behind Hygieia's back) is
    only pinned again. Otherwise the blob streams from a holder (whose reads verify
    blocks or the CID) into the target's put, whose importer gives the same CID: a
    copy that comes out different is removed and refused.
    """
    store = stores.members[target]
    with contextlib.suppress(BlobNotFound):
        store.pin(cid)
        return
    last: BaseException | None = None
    for holder in holders:
        try:
            stream = stores.members[holder].get(cid)
        except (BlobNotFound, StorageUnavailable) as exc:
            last = exc
            continue
        writer = store.writer()
        try:
            for chunk in stream:
                writer.write(chunk)
            got = writer.finish()
            if got != str(parse_cid(cid)):
                raise StorageUnavailable("the copy came out with another CID")
            store.pin(cid)
        except (BlobNotFound, StorageUnavailable) as exc:
            writer.abort()
            last = exc
            continue
        except BaseException:
            writer.abort()
            raise
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return
    raise StorageUnavailable("no reachable store holds a good copy") from last


# -- the replicator ------------------------------------------------------------------
@dataclass
class ReplicationReport:
    added_rows: int = 0
    copied: list[tuple[str, str]] = field(default_factory=list)
    requested: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    waiting: int = 0


def replicate(
    db: Session, stores: StoreSet, *, now: Clock = utcnow, limit: int = 100
) -> ReplicationReport:
    """One turn: the due pending copies (at most ``limit``) made or followed."""
    report = ReplicationReport(added_rows=ensure_rows(db, stores, now=now()))
    started = now()
    due = db.execute(
        select(
            RecordCopy.record_id,
            RecordCopy.store,
            RecordCopy.attempts,
            RecordCopy.request_id,
            Record.cid,
        )
        .join(Record, Record.id == RecordCopy.record_id)
        .where(
            RecordCopy.state == PENDING,
            RecordCopy.store.in_(stores.ids),
            or_(RecordCopy.next_attempt_at.is_(None), RecordCopy.next_attempt_at <= started),
        )
        .order_by(RecordCopy.next_attempt_at, RecordCopy.record_id)
        .limit(limit)
    ).all()
    db.commit()
    for record_id, store_id, attempts, request_id, cid in due:
        if store_id in stores.members:
            _replicate_member(db, stores, record_id, store_id, attempts, cid, now, report)
        else:
            _follow_service(db, stores, record_id, store_id, attempts, request_id, cid, now, report)
    return report


@contextlib.contextmanager
def _guarded_pin(db: Session, cid: str, now: Clock) -> Iterator[PendingPin]:
    """A ``PendingPin`` around a pin made for a record: durable before the pin, gone after."""
    pending = PendingPin(cid=cid, created_at=now())
    db.add(pending)
    db.commit()
    pending_id = pending.id
    try:
        yield pending
    finally:
        db.execute(delete(PendingPin).where(PendingPin.id == pending_id))
        db.commit()


def _still_indexed(db: Session, stores: StoreSet, record_id: str, cid: str) -> bool:
    """Whether the record survived the copy; if not, the pin just made is released."""
    if db.get(Record, record_id) is not None:
        return True
    if db.scalar(select(Record.id).where(Record.cid == cid).limit(1)) is None:
        with contextlib.suppress(StorageUnavailable):
            stores.unpin(cid)  # else the PendingPin left behind tells reconcile
    return False


def _replicate_member(
    db: Session,
    stores: StoreSet,
    record_id: str,
    store_id: str,
    attempts: int,
    cid: str,
    now: Clock,
    report: ReplicationReport,
) -> None:
    holders = _holders(db, record_id, stores, exclude=store_id)
    db.commit()
    try:
        with _guarded_pin(db, cid, now):
            copy_blob(stores, cid=cid, target=store_id, holders=holders)
            if not _still_indexed(db, stores, record_id, cid):
                return
            _set_made(db, record_id, store_id, at=now())
            db.commit()
    except (StorageUnavailable, BlobNotFound) as exc:
        db.rollback()
        _retry_later(db, record_id, store_id, attempts, exc, now)
        report.failed.append((record_id, store_id))
        return
    report.copied.append((record_id, store_id))


def _retry_later(
    db: Session, record_id: str, store_id: str, attempts: int, exc: BaseException | str, now: Clock
) -> None:
    error = exc if isinstance(exc, str) else _failure(exc)
    log.warning("copy of record %s to %s failed: %s", record_id, store_id, error)
    _set(
        db,
        record_id,
        store_id,
        attempts=attempts + 1,
        next_attempt_at=now() + backoff(attempts),
        error=error,
    )
    db.commit()


def _origins(stores: StoreSet, holders: Sequence[str]) -> list[str]:
    """libp2p addresses of the holders that have some (Kubo nodes that listen)."""
    found: list[str] = []
    for holder in holders:
        origins = getattr(stores.members[holder], "origins", None)
        if origins is not None:
            with contextlib.suppress(StorageUnavailable):
                found += [a for a in origins() if a not in found]
    return found


def _follow_service(
    db: Session,
    stores: StoreSet,
    record_id: str,
    store_id: str,
    attempts: int,
    request_id: str | None,
    cid: str,
    now: Clock,
    report: ReplicationReport,
) -> None:
    service = stores.services[store_id]
    try:
        if request_id is None:
            holders = _holders(db, record_id, stores, exclude=store_id)
            db.commit()
            with _guarded_pin(db, cid, now):
                status = service.add(cid, origins=_origins(stores, holders))
                if not _still_indexed(db, stores, record_id, cid):
                    return
                _set(
                    db,
                    record_id,
                    store_id,
                    request_id=status.requestid,
                    next_attempt_at=now() + BACKOFF_BASE,
                    error=None,
                )
                db.commit()
            report.requested.append((record_id, store_id))
            if status.status != "pinned":
                return
        else:
            followed = service.status(request_id)
            if followed is None:  # the service forgot it: ask again
                _set(db, record_id, store_id, request_id=None, next_attempt_at=now())
                db.commit()
                report.waiting += 1
                return
            status = followed
        if status.status == "pinned":
            _set_made(db, record_id, store_id, at=now())
            db.commit()
            report.copied.append((record_id, store_id))
        elif status.status == "failed":
            with contextlib.suppress(StorageUnavailable):
                service.remove(status.requestid)
            _set(db, record_id, store_id, request_id=None)
            _retry_later(
                db, record_id, store_id, attempts, "the pinning service failed to pin it", now
            )
            report.failed.append((record_id, store_id))
        else:  # queued or pinning: look again later, less often as it drags on
            _set(
                db,
                record_id,
                store_id,
                attempts=attempts + 1,
                next_attempt_at=now() + backoff(attempts),
            )
            db.commit()
            report.waiting += 1
    except StorageUnavailable as exc:
        db.rollback()
        _retry_later(db, record_id, store_id, attempts, exc, now)
        report.failed.append((record_id, store_id))


# -- scrub and repair ----------------------------------------------------------------
@dataclass
class Health:
    """What a check of one copy found."""

    missing: list[CID] = field(default_factory=list)
    corrupt: list[CID] = field(default_factory=list)
    pinned: bool = True
    bytes_read: int = 0

    @property
    def whole(self) -> bool:
        return not self.missing and not self.corrupt

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} block(s) missing")
        if self.corrupt:
            parts.append(f"{len(self.corrupt)} block(s) corrupt")
        if not self.pinned:
            parts.append("not pinned")
        return ", ".join(parts) or "whole"


def check_copy(store: BlobStore, cid: str) -> Health:
    """Read every block of the blob's DAG and hash it against its CID (one block in
    memory at a time). A store without block access is read through ``get``, which
    verifies as it streams."""
    root = parse_cid(cid)
    health = Health()
    if not isinstance(store, SupportsBlocks):
        try:
            for chunk in store.get(cid):
                health.bytes_read += len(chunk)
        except BlobNotFound:
            health.missing.append(root)
        except StorageUnavailable as exc:
            if "corrupt" not in str(exc) and "match" not in str(exc):
                raise
            health.corrupt.append(root)
        return health
    health.pinned = store.is_pinned(cid)
    stack = [root]
    while stack:
        block_cid = stack.pop()
        block = store.read_block(block_cid)
        if block is None:
            health.missing.append(block_cid)
            continue
        health.bytes_read += len(block)
        if not block_cid.verify(block):
            health.corrupt.append(block_cid)
            continue
        if block_cid.codec != RAW:
            try:
                stack.extend(reversed(decode_dag_pb(block).links))
            except ValueError:
                health.corrupt.append(block_cid)
    return health


@dataclass
class ScrubReport:
    checked: int = 0
    bytes_read: int = 0
    damaged: list[tuple[str, str, str]] = field(default_factory=list)
    repaired: list[tuple[str, str]] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unfinished: bool = False


_SCRUB_PAGE = 200


def scrub(
    db: Session,
    stores: StoreSet,
    *,
    repair: bool,
    budget_bytes: int = 0,
    now: Clock = utcnow,
) -> ScrubReport:
    """Check every copy not checked since this run began, least recently checked first,
    until ``budget_bytes`` (0: no limit) have been read; see the module docstring."""
    report = ScrubReport()
    ensure_rows(db, stores, now=now())
    started = now()
    touched: dict[str, tuple[str, bool]] = {}  # record -> (owner, found newly damaged)
    unreachable: set[str] = set()
    while not report.unfinished:
        page = db.execute(
            select(
                RecordCopy.record_id,
                RecordCopy.store,
                RecordCopy.state,
                Record.cid,
                Record.owner_id,
            )
            .join(Record, Record.id == RecordCopy.record_id)
            .where(
                RecordCopy.store.in_(stores.ids),
                RecordCopy.store.not_in(unreachable) if unreachable else literal(True),
                or_(RecordCopy.checked_at.is_(None), RecordCopy.checked_at < started),
            )
            .order_by(
                RecordCopy.checked_at.is_(None).desc(), RecordCopy.checked_at, RecordCopy.record_id
            )
            .limit(_SCRUB_PAGE)
        ).all()
        db.commit()
        if not page:
            break
        for record_id, store_id, state, cid, owner_id in page:
            if budget_bytes and report.bytes_read >= budget_bytes:
                report.unfinished = True
                break
            if store_id in unreachable:
                continue
            try:
                damaged = _scrub_copy(
                    db, stores, record_id, store_id, state, cid, repair, now, report
                )
            except StorageUnavailable as exc:
                db.rollback()
                log.warning("scrub: store %s unreachable (%s)", store_id, type(exc).__name__)
                unreachable.add(store_id)
                report.unreachable.append(store_id)
                continue
            report.checked += 1
            seen = touched.get(record_id)
            touched[record_id] = (owner_id, bool(seen and seen[1]) or (damaged and state != BAD))
    _report_lost(db, stores, touched, report, now)
    return report


def _scrub_copy(
    db: Session,
    stores: StoreSet,
    record_id: str,
    store_id: str,
    state: str,
    cid: str,
    repair: bool,
    now: Clock,
    report: ScrubReport,
) -> bool:
    """Check (and maybe repair) one copy; whether it was found damaged."""
    if store_id in stores.services:
        if state == PENDING:  # the replicator is on it
            _set(db, record_id, store_id, checked_at=now())
            db.commit()
            return False
        pins = stores.services[store_id].find(cid)
        if any(p.status == "pinned" for p in pins):
            _set(db, record_id, store_id, state=OK, checked_at=now(), error=None)
            db.commit()
            return False
        report.damaged.append((record_id, store_id, "not pinned by the service"))
        # The replicator asks again (a remote service repairs by being asked).
        _set(
            db,
            record_id,
            store_id,
            state=PENDING,
            request_id=None,
            attempts=0,
            next_attempt_at=now(),
            checked_at=now(),
            error="not pinned by the service",
        )
        db.commit()
        return True
    store = stores.members[store_id]
    health = check_copy(store, cid)
    report.bytes_read += health.bytes_read
    if health.whole and health.pinned:
        _set(db, record_id, store_id, state=OK, checked_at=now(), error=None)
        db.commit()
        return False
    if state == PENDING:
        # A copy the replicator has yet to make (or finish): not damage.
        _set(db, record_id, store_id, checked_at=now())
        db.commit()
        return False
    what = health.describe()
    report.damaged.append((record_id, store_id, what))
    log.error("scrub: record %s on %s: %s", record_id, store_id, what)
    if not repair:
        _set(db, record_id, store_id, state=BAD, checked_at=now(), error=what)
        db.commit()
        return True
    try:
        if health.corrupt and isinstance(store, SupportsBlocks):
            store.drop_blocks(cid, health.corrupt)
        holders = _holders(db, record_id, stores, exclude=store_id)
        db.commit()
        with _guarded_pin(db, cid, now):
            copy_blob(stores, cid=cid, target=store_id, holders=holders)
            if not _still_indexed(db, stores, record_id, cid):
                return True
            _set_made(db, record_id, store_id, at=now())
            db.commit()
    except (StorageUnavailable, BlobNotFound) as exc:
        db.rollback()
        log.error("scrub: record %s on %s: repair failed (%s)", record_id, store_id, _failure(exc))
        _set(db, record_id, store_id, state=BAD, checked_at=now(), error=f"{what}; repair failed")
        db.commit()
        return True
    report.repaired.append((record_id, store_id))
    return True


def _report_lost(
    db: Session,
    stores: StoreSet,
    touched: dict[str, tuple[str, bool]],
    report: ScrubReport,
    now: Clock,
) -> None:
    """Records checked this run with no good copy left anywhere: logged, listed, and
    (when this run found the damage) put in the owner's audit trail."""
    if not touched:
        return
    ids = list(touched)
    good: dict[str, int] = {}
    for i in range(0, len(ids), 500):
        good.update(ok_counts(db, ids[i : i + 500], stores.ids))
    for record_id in ids:
        if good.get(record_id, 0):
            continue
        owner_id, newly = touched[record_id]
        report.lost.append(record_id)
        log.error("scrub: record %s has no good copy on any store", record_id)
        if newly:
            record_event(
                db,
                event="record.copies_lost",
                user_id=owner_id,
                detail={"record_id": record_id},
                now=now,
            )
    db.commit()
