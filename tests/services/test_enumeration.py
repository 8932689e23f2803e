"""Unknown emails cost the server the same database work as known ones (both databases).

The answers for an unknown email are stand-ins in the same shape (tests/api/
test_abuse.py); here the *work* is compared, statement by statement, since a route
that skips a query for one kind of email answers measurably faster for it, and
prelogin is not throttled at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from hygieia.db.engine import make_engine, migrate, session_factory
from hygieia.db.models import AuthSession, User
from hygieia.services import accounts
from hygieia.services.accounts import Limits
from hygieia.services.hashing import HashLimiter
from hygieia.services.ratelimit import Policy

KNOWN, UNKNOWN = "known@example.org", "unknown@example.org"
POLICY = Policy(free=100, delay_seconds=30, window_seconds=3600)
LIMITS = Limits(
    session_ttl_seconds=3600,
    login=POLICY,
    login_address=POLICY,
    signup=POLICY,
    key_lookup=POLICY,
    hashing=HashLimiter(slots=1, queue=4),
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    with session_factory(engine)() as db:
        db.add(
            User(
                email=KNOWN,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                kdf={"alg": "argon2id", "v": 19, "m": 47104, "t": 8, "p": 1},
                salt=b"s" * 16,
                auth_hash="$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$c29tZWhhc2g",
                recovery_salt=b"r" * 16,
                recovery_hash="$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$c29tZWhhc2g",
                public_key="(not parsed here)",
                locked_secret_key="(not parsed here)",
                fingerprint="F" * 40,
                encryption_key_id="E" * 16,
                wrapped_vault_key=b"w" * 60,
                recovery_wrapped_vault_key=b"w" * 60,
            )
        )
        db.commit()
    yield engine
    engine.dispose()


def statements(engine: Engine, call: Callable[[Session], Any]) -> list[str]:
    """The SQL ``call`` runs in a fresh session, in order."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        with session_factory(engine)() as db:
            call(db)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_prelogin_does_the_same_work_for_unknown_emails(engine: Engine) -> None:
    """Fails before the fix: a known email skipped the server-secret read (one
    statement instead of two; 0.1-0.2 ms faster, measurable on an unthrottled route)."""
    for email in (KNOWN, UNKNOWN):  # the server secret is made by the first one
        accounts.prelogin(session_factory(engine)(), email=email)
    known = statements(engine, lambda db: accounts.prelogin(db, email=KNOWN))
    unknown = statements(engine, lambda db: accounts.prelogin(db, email=UNKNOWN))
    assert known == unknown


def test_key_lookup_does_the_same_work_for_unknown_emails(engine: Engine) -> None:
    with session_factory(engine)() as db:
        user = db.query(User).one()
        db.add(
            AuthSession(
                user_id=user.id,
                token_hash="t" * 64,
                kind="session",
                created_at=user.created_at,
                expires_at=datetime(2100, 1, 1, tzinfo=UTC),
            )
        )
        db.commit()
        session_id = db.query(AuthSession).one().id

    def lookup(email: str) -> Callable[[Session], Any]:
        return lambda db: accounts.public_key_of(
            db, email=email, session_id=session_id, address="192.0.2.1", limits=LIMITS
        )

    for email in (KNOWN, UNKNOWN):  # first lookups store the decoys' creation times
        statements(engine, lookup(email))
    assert statements(engine, lookup(KNOWN)) == statements(engine, lookup(UNKNOWN))
