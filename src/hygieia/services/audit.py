"""Audit trail: authentication, authorisation and record-access events (never secrets or
metadata).

Every event carries when, from which address and from which client (kind and a
sanitised user-agent summary). The trail is append-only: this module only inserts and
reads; nothing in the application updates or deletes an event (a test enumerates the
routes to hold the API to that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select
from sqlalchemy.orm import Session

from hygieia.db.models import AuditEvent
from hygieia.services.common import Clock, utcnow

#: Client kinds a request can claim with ``X-Hygieia-Client``; anything else is "other".
CLIENT_KINDS = ("cli", "web", "other")
#: Longest user-agent summary kept (sessions and audit events).
MAX_USER_AGENT = 200
MAX_PAGE = 500

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ClientInfo:
    """Which client made a request: what it says it is (``X-Hygieia-Client``) and its
    ``User-Agent``, cleaned. Both are claims of the client, shown to help the owner
    recognise their own devices, never trusted for a decision."""

    kind: str = "other"
    user_agent: str | None = None

    @classmethod
    def from_headers(cls, client: str | None, user_agent: str | None) -> ClientInfo:
        return cls(kind=client_kind(client), user_agent=clean_user_agent(user_agent))


#: For service calls that come from no request (maintenance, tests that don't care).
UNKNOWN_CLIENT = ClientInfo()


def client_kind(header: str | None) -> str:
    """``"cli"``/``"web"`` from the header's first token (``"cli/1.2"`` → ``"cli"``), else
    ``"other"``."""
    token = (header or "").strip().lower().partition("/")[0].strip()
    return token if token in ("cli", "web") else "other"


def clean_user_agent(value: str | None) -> str | None:
    """Printable ASCII only, runs of whitespace and control characters folded to one
    space, at most :data:`MAX_USER_AGENT` characters; ``None`` when nothing is left."""
    if not value:
        return None
    text = _SPACES.sub(" ", _UNPRINTABLE.sub(" ", value[: MAX_USER_AGENT * 4])).strip()
    return text[:MAX_USER_AGENT].rstrip() or None


def _row(
    *,
    event: str,
    user_id: str | None,
    address: str | None,
    client: ClientInfo | None,
    detail: dict[str, Any] | None,
    at: datetime,
) -> dict[str, Any]:
    # No client (maintenance, or another account's doing kept out of the owner's trail):
    # NULL, not "other", which says some unrecognised client asked.
    return {
        "user_id": user_id,
        "event": event,
        "at": at,
        "address": (address or "")[:64] or None,
        "client": client.kind if client else None,
        "user_agent": client.user_agent if client else None,
        "detail": detail or {},
    }


def record_event(
    db: Session,
    *,
    event: str,
    user_id: str | None = None,
    address: str | None = None,
    client: ClientInfo | None = None,
    detail: dict[str, Any] | None = None,
    now: Clock = utcnow,
) -> None:
    """Add an event to the session's transaction (committed with the action it records)."""
    row = _row(
        event=event, user_id=user_id, address=address, client=client, detail=detail, at=now()
    )
    db.add(AuditEvent(**row))


def record_event_now(
    conn: Connection,
    *,
    event: str,
    user_id: str,
    address: str | None,
    client: ClientInfo | None,
    detail: dict[str, Any] | None = None,
    now: Clock = utcnow,
) -> None:
    """:func:`record_event` for the Core-connection hot paths (an autocommit connection:
    the insert is durable when this returns)."""
    row = _row(
        event=event, user_id=user_id, address=address, client=client, detail=detail, at=now()
    )
    conn.execute(insert(AuditEvent).values(**row))


def kind_filter(kind: str) -> Any:
    """``kind`` as an exact event (``record.read``) or a family, a dot-separated prefix:
    ``record`` matches ``record.*`` (not ``records.listed``), ``auth`` matches ``auth.*``."""
    return or_(AuditEvent.event == kind, AuditEvent.event.startswith(kind + ".", autoescape=True))


def events_page(
    db: Session,
    *,
    user_id: str,
    limit: int = 100,
    before: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: list[str] | None = None,
) -> tuple[list[AuditEvent], int | None]:
    """The account's own trail, newest first, one page; and the cursor for the next page
    (the id of the last event shown; ``None`` on the last page).

    Events are ordered by id, which grows with insertion, so a page boundary is stable
    even while new events arrive. ``since`` is inclusive and ``until`` exclusive;
    ``kinds`` are exact events or families (see :func:`kind_filter`), any of which match.
    """
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(AuditEvent).where(AuditEvent.user_id == user_id)
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    if kinds:
        stmt = stmt.where(or_(*(kind_filter(k) for k in kinds)))
    rows = list(db.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def events_for(db: Session, *, user_id: str, limit: int = 100) -> list[AuditEvent]:
    """The account's own audit trail, newest first (the first page of :func:`events_page`)."""
    return events_page(db, user_id=user_id, limit=limit)[0]
