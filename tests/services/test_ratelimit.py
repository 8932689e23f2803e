"""Rate-limit bookkeeping on both databases: windows, scopes and pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from hygieia.db.engine import make_engine, migrate, session_factory
from hygieia.db.models import LoginFailure
from hygieia.errors import RateLimited
from hygieia.services import ratelimit


def test_window_scopes_and_prune(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with session_factory(engine)() as db:
        for i in range(3):
            ratelimit.record_failure(
                db, account="a@x.org", address="10.0.0.1", now=lambda i=i: t0 + timedelta(seconds=i)
            )
        db.commit()
        later = t0 + timedelta(seconds=10)
        with pytest.raises(RateLimited):
            ratelimit.check(
                db,
                account="a@x.org",
                address="10.0.0.9",
                max_failures=3,
                window_seconds=60,
                now=lambda: later,
            )
        with pytest.raises(RateLimited):  # same address, other account
            ratelimit.check(
                db,
                account="b@x.org",
                address="10.0.0.1",
                max_failures=3,
                window_seconds=60,
                now=lambda: later,
            )
        ratelimit.check(
            db,
            account="b@x.org",
            address="10.0.0.2",
            max_failures=3,
            window_seconds=60,
            now=lambda: later,
        )
        # Outside the window the failures no longer count, and pruning removes them.
        much_later = t0 + timedelta(seconds=120)
        ratelimit.check(
            db,
            account="a@x.org",
            address="10.0.0.1",
            max_failures=3,
            window_seconds=60,
            now=lambda: much_later,
        )
        ratelimit.prune(db, window_seconds=60, now=lambda: much_later)
        db.commit()
        assert db.scalar(select(func.count()).select_from(LoginFailure)) == 0
        # Identifiers are stored hashed, never in clear.
        ratelimit.record_failure(db, account="c@x.org", address="10.0.0.3", now=lambda: much_later)
        db.commit()
        keys = set(db.scalars(select(LoginFailure.key)))
        assert not any("c@x.org" in k or "10.0.0.3" in k for k in keys)
    engine.dispose()
