"""``DagWriter``: one importer, its blocks fanned out to several stores' sinks.

The real-node side (js-ipfs nodes killed mid-put, a node that keeps nothing) is in
tests/services/test_copies.py; here the embedded stores, and a store that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hygieia.errors import StorageUnavailable
from hygieia.ipfs import CID
from hygieia.storage import BlobStore, BlobWriter, LocalBlobStore, MemoryBlobStore, StoreSet
from hygieia.storage._put import DagWriter

MiB = 1 << 20
DATA = os.urandom(5 * MiB + 333)


class _FailsAfter(MemoryBlobStore):
    """An embedded store whose disk fills up after ``blocks`` blocks."""

    def __init__(self, blocks: int) -> None:
        super().__init__()
        self._left = blocks

    def _write_block(self, cid: CID, block: bytes) -> bool:
        if self._left == 0:
            raise StorageUnavailable("disk full")
        self._left -= 1
        return super()._write_block(cid, block)


class _WriterOnly(BlobStore):
    """A store known only by its ``writer()`` (no block sink of its own)."""

    def __init__(self) -> None:
        self.inner = MemoryBlobStore()

    def writer(self) -> BlobWriter:
        return self.inner.writer()

    def get(self, cid: str) -> Iterator[bytes]:
        return self.inner.get(cid)

    def has(self, cid: str) -> bool:
        return self.inner.has(cid)

    def pin(self, cid: str) -> None:
        self.inner.pin(cid)

    def unpin(self, cid: str) -> None:
        self.inner.unpin(cid)

    def pins(self) -> Iterator[str]:
        return self.inner.pins()


def _write(writer: BlobWriter, data: bytes = DATA) -> str:
    for i in range(0, len(data), 200_000):
        writer.write(data[i : i + 200_000])
    return writer.finish()


def test_every_store_gets_the_same_blocks(tmp_path: Path) -> None:
    local, memory, other = LocalBlobStore(tmp_path / "b"), MemoryBlobStore(), _WriterOnly()
    expected = LocalBlobStore(tmp_path / "ref").put([DATA])
    writer = StoreSet([("local", local), ("memory", memory), ("other", other)]).writer()
    assert _write(writer) == expected
    assert getattr(writer, "holders", None) == ["local", "memory", "other"]
    for store in (local, memory, other):
        assert b"".join(store.get(expected)) == DATA


def test_a_store_failing_mid_put_is_dropped_and_cleaned(tmp_path: Path) -> None:
    local, failing = LocalBlobStore(tmp_path / "b"), _FailsAfter(3)
    writer = DagWriter({"local": local.block_sink(), "failing": failing.block_sink()}, need=1)
    cid = _write(writer)
    assert writer.holders == ["local"]
    assert local.has(cid) and not failing.has(cid)
    assert failing._blocks == {}  # the three blocks it took are gone again


def test_below_need_the_put_fails_and_leaves_nothing(tmp_path: Path) -> None:
    local, failing = LocalBlobStore(tmp_path / "b"), _FailsAfter(3)
    stores = StoreSet([("local", local), ("failing", failing)], min_copies=2)
    with pytest.raises(StorageUnavailable, match="fewer than 2"):
        stores.put([DATA])
    assert not any((tmp_path / "b" / "blocks").glob("*/*"))
    assert failing._blocks == {}


def test_one_store_fails_with_its_own_error() -> None:
    with pytest.raises(StorageUnavailable, match="disk full"):
        _FailsAfter(1).put([DATA])


def test_abort_after_finish_removes_every_copy(tmp_path: Path) -> None:
    local, memory = LocalBlobStore(tmp_path / "b"), MemoryBlobStore()
    writer = StoreSet([("local", local), ("memory", memory)], min_copies=2).writer()
    cid = _write(writer)
    writer.abort()  # the caller refused the blob (a CID other than announced)
    assert not local.has(cid) and not memory.has(cid)
    assert not any((tmp_path / "b" / "blocks").glob("*/*"))
