"""Upkeep that one server process at a time does: pruning, reconciliation, and the
copies' replicator and scrub (``services.copies``).

At start-up and then every ``HYGIEIA_RECONCILE_INTERVAL_SECONDS``, a server prunes
stale throttle rows and reconciles store and index (``records.reconcile``: orphan
pins released, lost pins taken again, blocks no pin reaches deleted). Several
processes may share one database; the work needs doing once, so it runs under a
lease: a PostgreSQL session advisory lock (released by the server even if the holder
dies, with its connection), or on SQLite a ``flock`` on a file beside the database
(every process sharing a SQLite file shares its directory). A process that doesn't
get the lease skips its turn. Replication and scrub share a second lease (``copies``),
so a long copy never holds up reconciliation, and a repair never races a copy.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from hygieia.datadir import sqlite_path
from hygieia.errors import StorageUnavailable
from hygieia.services import copies, links, ratelimit, records
from hygieia.storage import BlobStore, as_store_set

log = logging.getLogger(__name__)

#: PostgreSQL advisory lock key of the maintenance lease (any fixed 64-bit number;
#: this is the first 8 bytes of SHA-256("hygieia maintenance"), as a signed int).
LEASE_KEY = -0x366C_2281_1D87_5741
#: The lease of replication and scrub: the first 8 bytes of SHA-256("hygieia copies").
COPIES_LEASE_KEY = 0x5E0B_6C3A_91D2_4F17

_LEASE_FILES = {LEASE_KEY: ".maintenance-lock", COPIES_LEASE_KEY: ".copies-lock"}


@contextmanager
def lease(engine: Engine, key: int = LEASE_KEY) -> Iterator[bool]:
    """Whether this process holds the lease ``key``, for the ``with`` block."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    db = sqlite_path(str(engine.url))
    if db is None:  # an in-memory database belongs to this process alone
        yield True
        return
    fd = os.open(_lock_file(db, _LEASE_FILES[key]), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _lock_file(db: Path, suffix: str = ".maintenance-lock") -> Path:
    return db.with_name(db.name + suffix)


@dataclass
class Outcome:
    """What a turn did; ``report`` is None when the turn was skipped."""

    ran: bool
    report: records.ReconcileReport | copies.ReplicationReport | copies.ScrubReport | None = None


def run(
    engine: Engine,
    sessions: sessionmaker[Session],
    store: BlobStore,
    *,
    grace: timedelta,
    prune_older_than_seconds: int,
) -> Outcome:
    """One turn of upkeep, if this process gets the lease (blocking: run it in a thread)."""
    with lease(engine) as got:
        if not got:
            log.debug("maintenance: another process holds the lease")
            return Outcome(ran=False)
        with sessions() as db:
            ratelimit.prune(db, older_than_seconds=prune_older_than_seconds)
            db.commit()
            try:
                links.sweep(db, store)  # ended links' files are unpinned before reconcile
                report = records.reconcile(db, store, grace=grace)
            except StorageUnavailable:
                log.warning("reconcile skipped: blob store unavailable")
                return Outcome(ran=True)
    if report.unpinned or report.repinned or report.collected:
        log.info(
            "reconcile: released %d orphan pin(s), re-pinned %d, deleted %d block file(s)",
            len(report.unpinned),
            len(report.repinned),
            report.collected,
        )
    if report.missing:
        log.error("reconcile: %d record(s) have no content in the store", len(report.missing))
    return Outcome(ran=True, report=report)


def replicate(
    engine: Engine, sessions: sessionmaker[Session], store: BlobStore, *, limit: int = 100
) -> Outcome:
    """One turn of the replicator, if this process gets the ``copies`` lease."""
    with lease(engine, COPIES_LEASE_KEY) as got:
        if not got:
            log.debug("replication: another process holds the lease")
            return Outcome(ran=False)
        with sessions() as db:
            report = copies.replicate(db, as_store_set(store), limit=limit)
    if report.copied or report.failed:
        log.info(
            "replication: %d copie(s) made, %d failed (retried later)",
            len(report.copied),
            len(report.failed),
        )
    return Outcome(ran=True, report=report)


def scrub(
    engine: Engine,
    sessions: sessionmaker[Session],
    store: BlobStore,
    *,
    repair: bool,
    budget_bytes: int = 0,
) -> Outcome:
    """One scrub, if this process gets the ``copies`` lease."""
    with lease(engine, COPIES_LEASE_KEY) as got:
        if not got:
            log.debug("scrub: another process holds the lease")
            return Outcome(ran=False)
        with sessions() as db:
            report = copies.scrub(db, as_store_set(store), repair=repair, budget_bytes=budget_bytes)
    log.info(
        "scrub: %d copie(s) checked (%d bytes), %d damaged, %d repaired, %d record(s) lost",
        report.checked,
        report.bytes_read,
        len(report.damaged),
        len(report.repaired),
        len(report.lost),
    )
    return Outcome(ran=True, report=report)
