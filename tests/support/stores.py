"""Blob stores for the storage tests: one per backend, the real js-ipfs one included."""

from __future__ import annotations

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
