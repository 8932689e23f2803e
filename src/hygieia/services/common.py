"""Small helpers shared by the services: time, tokens, hashing of identifiers."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hygieia.db.models import ServerSecret

Clock = Callable[[], datetime]

TOKEN_PREFIX = "hyg_"  # noqa: S105 - a prefix, not a secret


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are high-entropy, so a plain SHA-256 is the right storage hash."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def ident_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT/UPDATE changed (``Session.execute`` is typed as any ``Result``)."""
    return int(cast(CursorResult[Any], result).rowcount)


def server_secret(db: Session, name: str) -> bytes:
    """Return (creating once, race-safely) a random server-wide secret kept in the DB.

    Commits: call it before anything else of the transaction is added.
    """
    row = db.get(ServerSecret, name)
    if row is not None:
        return row.value
    try:
        with db.begin_nested():
            db.add(ServerSecret(name=name, value=secrets.token_bytes(32)))
    except IntegrityError:
        pass
    db.commit()
    row = db.get(ServerSecret, name)
    assert row is not None
    return row.value
