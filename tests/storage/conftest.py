"""Storage fixtures: one store per backend, and the real js-ipfs server (session-wide)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hygieia.storage import BlobStore, KuboBlobStore, LocalBlobStore, MemoryBlobStore

BACKENDS = ["memory", "local", pytest.param("kubo", marks=pytest.mark.ipfs)]


def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if kind == "memory":
        return MemoryBlobStore()
    if kind == "local":
        return LocalBlobStore(tmp_path / "blocks")
    api = request.getfixturevalue("ipfs_api")
    # js-ipfs looks for a missing block until the lookup deadline even offline.
    return KuboBlobStore(api, timeout=60, lookup_timeout=0.5)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    s = open_store(request.param, request, tmp_path)
    yield s
    s.close()
