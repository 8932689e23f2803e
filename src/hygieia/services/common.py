"""Small helpers shared by the services: time, tokens, hashing of identifiers."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Result

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
