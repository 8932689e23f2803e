"""Attempt throttling kept in the database, so every replica sees the same counts.

A *bucket* counts attempts of one kind by one party: failed logins for an (account,
client address) pair, sign-ups from an address, key lookups by a session. A bucket
gives ``policy.free`` attempts; after that each further attempt must wait a delay that
starts at ``policy.delay_seconds`` and doubles with every attempt, up to
``policy.window_seconds``. A bucket left alone for ``window_seconds`` starts over.
Growing delays rather than a hard lock: nobody can lock another person out, only slow
down their own guessing, and a bucket never covers a whole account (a victim logging in
from another address has a bucket of their own).

An attempt is *claimed* before the work it guards (checking a password, hashing a new
one) and counted as a failure until the caller forgives it. The claim is one
compare-and-swap ``UPDATE … WHERE version = :seen`` per bucket, committed at once, so
thirty parallel guesses against a limit of ten let exactly ten through, on SQLite and
PostgreSQL alike and across any number of server processes.

Bucket keys are SHA-256 digests of the scope and the parties: no email or address is
stored in clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Insert, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hygieia.db.models import Throttle
from hygieia.errors import RateLimited
from hygieia.services.common import Clock, rowcount, utcnow

THROTTLE: Table = Throttle.__table__  # type: ignore[assignment]
#: The window of the hourly throttles (sign-ups, key lookups).
HOUR = 3600
#: A claim that keeps losing its compare-and-swap this often is refused (fail closed).
MAX_CLAIM_ROUNDS = 64


@dataclass(frozen=True)
class Policy:
    """How many attempts a bucket allows before delays start, and how they grow."""

    free: int
    delay_seconds: int
    window_seconds: int

    def delay_after(self, count: int) -> float:
        """Seconds the next attempt must wait after ``count`` attempts (0: none)."""
        if count < self.free:
            return 0.0
        # 2 ** 40 seconds is far past any window; the cap keeps the power bounded.
        doublings = min(count - self.free, 40)
        return float(min(self.delay_seconds * 2**doublings, self.window_seconds))


@dataclass(frozen=True)
class Bucket:
    scope: str
    key: str
    policy: Policy


def client_key(address: str) -> str:
    """The part of a client address a bucket is keyed on.

    IPv6 clients usually hold a whole /64, so counting per address would give each of
    them 2**64 buckets: they share one per /64. IPv4-mapped addresses count as IPv4.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def bucket(scope: str, policy: Policy, *parties: str) -> Bucket:
    """The bucket of ``scope`` for ``parties`` (e.g. an email and a client address)."""
    digest = hashlib.sha256("\x00".join((scope, *parties)).encode("utf-8")).hexdigest()
    return Bucket(scope=scope, key=digest, policy=policy)


@dataclass(frozen=True)
class _Row:
    count: int
    last_at: datetime
    version: int


def _blocked_for(row: _Row | None, policy: Policy, at: datetime) -> float:
    """Seconds until ``row`` allows another attempt at ``at`` (0: allowed now)."""
    if row is None or _stale(row, policy, at):
        return 0.0
    wait = (row.last_at - at).total_seconds() + policy.delay_after(row.count)
    return max(wait, 0.0)


def _stale(row: _Row, policy: Policy, at: datetime) -> bool:
    return at - row.last_at >= timedelta(seconds=policy.window_seconds)


def _refuse(wait: float) -> RateLimited:
    return RateLimited(retry_after=max(1, math.ceil(wait)))


def _load(db: Session, b: Bucket) -> _Row | None:
    row = db.execute(
        select(Throttle.count, Throttle.last_at, Throttle.version).where(
            Throttle.scope == b.scope, Throttle.key == b.key
        )
    ).first()
    return None if row is None else _Row(*row)


def _insert_new(db: Session, b: Bucket, at: datetime) -> bool:
    """Create ``b`` with one attempt; False if a concurrent claim created it first.

    ``ON CONFLICT DO NOTHING`` (both databases) rather than a savepoint: pysqlite
    commits an outermost SAVEPOINT on release, which would make this row survive a
    rollback of the rest of the claim.
    """
    dialect = db.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    # The Core table, not the mapped class: an ORM-enabled INSERT reports no rowcount.
    stmt: Insert = module.insert(THROTTLE).on_conflict_do_nothing()
    # RETURNING tells whether a row went in (psycopg reports no rowcount for this).
    inserted = db.execute(
        stmt.values(scope=b.scope, key=b.key, count=1, last_at=at, version=1).returning(
            THROTTLE.c.version
        )
    ).first()
    return inserted is not None


def check(db: Session, buckets: Sequence[Bucket], *, now: Clock = utcnow) -> None:
    """Raise ``RateLimited`` if any bucket would refuse an attempt now (reads only).

    A cheap early answer for clients that are already throttled, so they don't queue
    for scarce work; :func:`claim` is what actually enforces the limit.
    """
    at = now()
    for b in buckets:
        wait = _blocked_for(_load(db, b), b.policy, at)
        if wait > 0:
            raise _refuse(wait)


def _claim_one(db: Session, b: Bucket, at: datetime) -> bool:
    """Count one attempt in ``b``, or raise ``RateLimited``. False: lost a race, retry."""
    row = _load(db, b)
    if row is None:
        return _insert_new(db, b, at)
    wait = _blocked_for(row, b.policy, at)
    if wait > 0:
        raise _refuse(wait)
    count = 1 if _stale(row, b.policy, at) else row.count + 1
    result = db.execute(
        update(Throttle)
        .where(Throttle.scope == b.scope, Throttle.key == b.key, Throttle.version == row.version)
        .values(count=count, last_at=at, version=row.version + 1)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def claim(db: Session, buckets: Sequence[Bucket], *, now: Clock = utcnow) -> None:
    """Atomically count one attempt in every bucket, or in none and raise ``RateLimited``.

    Commits: the attempt is visible to every other request before the caller does the
    work it guards. Call it with no other changes pending in ``db``.
    """
    at = now()
    for _ in range(MAX_CLAIM_ROUNDS):
        try:
            if all(_claim_one(db, b, at) for b in buckets):
                db.commit()
                return
        except RateLimited:
            db.rollback()
            raise
        # Another request changed a bucket between our read and our write: start over
        # from fresh rows (the buckets already counted in this round are rolled back).
        db.rollback()
    raise RateLimited(retry_after=1)


def forgive(db: Session, b: Bucket) -> None:
    """End ``b``'s streak (the attempt succeeded). Part of the caller's transaction."""
    db.execute(delete(Throttle).where(Throttle.scope == b.scope, Throttle.key == b.key))


def refund(db: Session, b: Bucket) -> None:
    """Take back one claimed attempt from ``b``, keeping the rest of its count.

    For buckets shared by many accounts (a client address): a success there must not
    wipe out the failures others made from the same address. Part of the caller's
    transaction; a relative update, so it needs no compare-and-swap.
    """
    db.execute(
        update(Throttle)
        .where(Throttle.scope == b.scope, Throttle.key == b.key, Throttle.count > 0)
        .values(count=Throttle.count - 1, version=Throttle.version + 1)
        .execution_options(synchronize_session=False)
    )


def prune(db: Session, *, older_than_seconds: int, now: Clock = utcnow) -> None:
    """Delete buckets untouched for longer than any window: they count for nothing."""
    db.execute(
        delete(Throttle).where(Throttle.last_at < now() - timedelta(seconds=older_than_seconds))
    )
