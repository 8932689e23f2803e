"""Shared fixtures: both databases, a real app served over HTTP, the IPFS test server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import database

DB_KINDS = ["sqlite", "postgres"]


@pytest.fixture(params=DB_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend (PostgreSQL: a new database)."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    with database(request.param, tmp_path) as url:
        yield url
