"""Storage fixtures: one store per backend (the js-ipfs server is session-wide)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hygieia.storage import BlobStore
from tests.support.stores import BACKENDS, open_store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    s = open_store(request.param, request, tmp_path)
    yield s
    s.close()
