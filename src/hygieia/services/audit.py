"""Audit trail: authentication and authorisation events (never secrets or metadata)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygieia.db.models import AuditEvent
from hygieia.services.common import Clock, utcnow


def record_event(
    db: Session,
    *,
    event: str,
    user_id: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
    now: Clock = utcnow,
) -> None:
    db.add(
        AuditEvent(
            user_id=user_id,
            event=event,
            at=now(),
            address=(address or "")[:64] or None,
            detail=detail or {},
        )
    )


def events_for(db: Session, *, user_id: str, limit: int = 100) -> list[AuditEvent]:
    """The account's own audit trail, newest first."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.user_id == user_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    return list(db.scalars(stmt))
