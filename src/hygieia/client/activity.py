"""The activity trail and the sessions, for people: what each audit event kind means
(``audit_kinds.json``, the one table the CLI and the web app both read) and the
``--since`` forms the CLI takes."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

_RELATIVE = re.compile(r"(\d{1,5})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@cache
def _table() -> dict[str, Any]:
    text = resources.files("hygieia.client").joinpath("audit_kinds.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def kinds() -> dict[str, str]:
    """Every known event kind and its description."""
    return dict(_table()["kinds"])


def families() -> dict[str, str]:
    """Every family of kinds (the part before the dot) and its name."""
    return dict(_table()["families"])


def describe(kind: str) -> str:
    """What an event means, in words; a kind this client doesn't know yet is shown as
    it is (a newer server may record more kinds)."""
    return kinds().get(kind, kind)


def parse_since(value: str, *, now: datetime | None = None) -> str:
    """``7d``/``12h``/``30m``/``2w`` before now, or a date (``2026-11-01``, midnight UTC)
    or a time with an offset, as the ISO 8601 instant ``GET /audit?since=`` takes.
    Raises ``ValueError`` for anything else."""
    value = value.strip()
    m = _RELATIVE.fullmatch(value)
    if m:
        at = (now or datetime.now(UTC)) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        return at.isoformat()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError("a time needs an offset (e.g. 2026-11-01T09:00+01:00)")
    return at.isoformat()
