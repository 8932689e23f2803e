"""Failed-attempt rate limiting kept in the database, so every replica sees the same counts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hygieia.db.models import LoginFailure
from hygieia.errors import RateLimited
from hygieia.services.common import Clock, ident_hash, utcnow


def check(
    db: Session,
    *,
    account: str,
    address: str,
    max_failures: int,
    window_seconds: int,
    now: Clock = utcnow,
) -> None:
    """Raise ``RateLimited`` when the account or the client address failed too often."""
    since = now() - timedelta(seconds=window_seconds)
    for scope, key in (("account", ident_hash(account)), ("address", ident_hash(address))):
        count = db.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.scope == scope, LoginFailure.key == key, LoginFailure.at >= since)
        )
        if (count or 0) >= max_failures:
            raise RateLimited(retry_after=window_seconds)


def record_failure(db: Session, *, account: str, address: str, now: Clock = utcnow) -> None:
    at = now()
    db.add(LoginFailure(scope="account", key=ident_hash(account), at=at))
    db.add(LoginFailure(scope="address", key=ident_hash(address), at=at))


def clear_account(db: Session, *, account: str) -> None:
    db.execute(
        delete(LoginFailure).where(
            LoginFailure.scope == "account", LoginFailure.key == ident_hash(account)
        )
    )


def prune(db: Session, *, window_seconds: int, now: Clock = utcnow) -> None:
    db.execute(
        delete(LoginFailure).where(LoginFailure.at < now() - timedelta(seconds=window_seconds))
    )
