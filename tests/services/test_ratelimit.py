"""Throttle buckets on both databases: growing delays, windows, atomic claims, pruning."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from hygieia.db.engine import make_engine, migrate, session_factory
from hygieia.db.models import Throttle
from hygieia.errors import RateLimited, ServerBusy
from hygieia.services import ratelimit
from hygieia.services.hashing import HashLimiter
from hygieia.services.ratelimit import Policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = Policy(free=3, delay_seconds=10, window_seconds=300)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


def at(seconds: float) -> Callable[[], datetime]:
    return lambda: T0 + timedelta(seconds=seconds)


def retry_after(db: Session, b: ratelimit.Bucket, seconds: float) -> int:
    with pytest.raises(RateLimited) as exc:
        ratelimit.claim(db, [b], now=at(seconds))
    assert exc.value.retry_after is not None
    return exc.value.retry_after


def test_free_attempts_then_doubling_delays(engine: Engine) -> None:
    b = ratelimit.bucket("login", POLICY, "a@x.org", "10.0.0.1")
    with session_factory(engine)() as db:
        for i in range(3):
            ratelimit.claim(db, [b], now=at(i))
        assert retry_after(db, b, 2) == 10  # the 4th must wait 10 s after the 3rd
        ratelimit.claim(db, [b], now=at(12))
        assert retry_after(db, b, 12) == 20  # then 20 s
        ratelimit.claim(db, [b], now=at(32))
        assert retry_after(db, b, 33) == 39  # then 40 s (one already gone)
        # Never longer than the window; and a bucket left alone that long starts over.
        for _ in range(10):
            db.execute(update(Throttle).values(count=Throttle.count + 1))
        db.commit()
        assert retry_after(db, b, 33) == 299
        ratelimit.claim(db, [b], now=at(32 + 300))
        row = db.scalar(select(Throttle))
        assert row is not None and row.count == 1


def test_buckets_are_apart_and_forgiven(engine: Engine) -> None:
    pair = ratelimit.bucket("login", POLICY, "a@x.org", "10.0.0.1")
    other_address = ratelimit.bucket("login", POLICY, "a@x.org", "10.0.0.2")
    recovery = ratelimit.bucket("recover", POLICY, "a@x.org", "10.0.0.1")
    with session_factory(engine)() as db:
        for i in range(3):
            ratelimit.claim(db, [pair], now=at(i))
        with pytest.raises(RateLimited):
            ratelimit.check(db, [pair], now=at(3))
        ratelimit.check(db, [other_address, recovery], now=at(3))
        ratelimit.forgive(db, pair)
        db.commit()
        ratelimit.claim(db, [pair], now=at(3))


def test_refund_takes_back_one_attempt(engine: Engine) -> None:
    shared = ratelimit.bucket("login-address", POLICY, "10.0.0.1")
    with session_factory(engine)() as db:
        for i in range(3):
            ratelimit.claim(db, [shared], now=at(i))
        ratelimit.refund(db, shared)  # the third was a success
        db.commit()
        ratelimit.claim(db, [shared], now=at(3))
        with pytest.raises(RateLimited):
            ratelimit.claim(db, [shared], now=at(4))


def test_a_refused_claim_counts_in_no_bucket(engine: Engine) -> None:
    pair = ratelimit.bucket("login", POLICY, "b@x.org", "10.0.0.1")
    full = ratelimit.bucket("login-address", POLICY, "10.0.0.1")
    with session_factory(engine)() as db:
        for i in range(3):
            ratelimit.claim(db, [full], now=at(i))
        with pytest.raises(RateLimited):
            ratelimit.claim(db, [pair, full], now=at(3))
        assert db.scalar(select(func.count()).select_from(Throttle)) == 1  # no pair row


def test_parallel_claims_never_pass_the_limit(engine: Engine) -> None:
    """30 claims in 30 threads with their own connections: exactly ``free`` pass.

    The count-then-insert it replaces let every one of them through.
    """
    policy = Policy(free=10, delay_seconds=60, window_seconds=900)
    b = ratelimit.bucket("login", policy, "c@x.org", "10.0.0.1")
    make = session_factory(engine)
    barrier = threading.Barrier(30)
    results: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        with make() as db:
            barrier.wait()
            try:
                ratelimit.claim(db, [b], now=at(0))
                outcome = "claimed"
            except RateLimited:
                outcome = "refused"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["claimed"] * 10 + ["refused"] * 20


def test_keys_are_hashed_and_stale_buckets_pruned(engine: Engine) -> None:
    with session_factory(engine)() as db:
        ratelimit.claim(db, [ratelimit.bucket("login", POLICY, "c@x.org", "10.0.0.3")], now=at(0))
        keys = set(db.scalars(select(Throttle.key)))
        assert not any("c@x.org" in k or "10.0.0.3" in k for k in keys)
        ratelimit.prune(db, older_than_seconds=300, now=at(301))
        db.commit()
        assert db.scalar(select(func.count()).select_from(Throttle)) == 0


def test_client_key_groups_ipv6_by_64() -> None:
    assert ratelimit.client_key("2001:db8:1:2:aaaa::1") == ratelimit.client_key("2001:db8:1:2::9")
    assert ratelimit.client_key("2001:db8:1:3::1") != ratelimit.client_key("2001:db8:1:2::1")
    assert ratelimit.client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert ratelimit.client_key("192.0.2.1") == "192.0.2.1"


@pytest.fixture
def held() -> Iterator[tuple[HashLimiter, threading.Event]]:
    """A limiter of one slot and one waiting place, its slot held by another thread."""
    limiter = HashLimiter(slots=1, queue=1, wait_seconds=0.3)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with limiter.slot():
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    yield limiter, release
    release.set()
    holder.join()


def test_hash_limiter_waiter_times_out(held: tuple[HashLimiter, threading.Event]) -> None:
    limiter, release = held
    with pytest.raises(ServerBusy) as exc, limiter.slot():
        pass
    assert exc.value.retry_after is not None and exc.value.retry_after >= 1
    release.set()
    with limiter.slot():  # waits for the holder to finish, then runs
        pass


def test_hash_limiter_refuses_past_the_queue(held: tuple[HashLimiter, threading.Event]) -> None:
    limiter, release = held
    limiter._wait_seconds = 10
    waiting = threading.Thread(target=lambda: limiter.slot().__enter__())
    waiting.start()
    for _ in range(500):  # until the second request is in the queue
        if limiter._admitted == 2:
            break
        threading.Event().wait(0.01)
    t0 = datetime.now(UTC)
    with pytest.raises(ServerBusy), limiter.slot():
        pass
    assert datetime.now(UTC) - t0 < timedelta(seconds=2)  # at once, not after a wait
    release.set()
    waiting.join()


@pytest.mark.parametrize(
    "name", ["login_delay_seconds", "login_window_seconds", "session_ttl_seconds"]
)
def test_time_settings_refuse_values_that_overflow_dates(name: str) -> None:
    # A delay or window of 10**12 s would overflow datetime arithmetic at the first
    # throttled request (a 500); the settings refuse it when the server starts.
    from pydantic import ValidationError

    from hygieia.config import Settings

    with pytest.raises(ValidationError):
        Settings(**{name: 10**12})  # type: ignore[arg-type]
