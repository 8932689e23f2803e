"""``MemoryBlobStore``: the in-process fake, for tests. Same CIDs as every backend."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from hygieia.ipfs import CID
from hygieia.storage._blocks import BlockBlobStore

__all__ = ["MemoryBlobStore"]


class MemoryBlobStore(BlockBlobStore):
    """Blocks and pins in dicts; safe to share between threads."""

    def __init__(self) -> None:
        self._blocks: dict[CID, bytes] = {}
        self._pins: set[CID] = set()
        self._lock = threading.Lock()
        self._pin_lock = threading.Lock()

    def _read_block(self, cid: CID) -> bytes | None:
        return self._blocks.get(cid)

    def _write_block(self, cid: CID, block: bytes) -> bool:
        with self._lock:
            return self._blocks.setdefault(cid, block) is block

    def _delete_block(self, cid: CID) -> None:
        with self._lock:
            self._blocks.pop(cid, None)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._pin_lock:
            yield

    def _has_block(self, cid: CID) -> bool:
        return cid in self._blocks

    def _add_pin(self, cid: CID) -> None:
        with self._lock:
            self._pins.add(cid)

    def _remove_pin(self, cid: CID) -> None:
        with self._lock:
            self._pins.discard(cid)

    def pins(self) -> Iterator[str]:
        with self._lock:
            pinned = [str(c) for c in self._pins]
        return iter(pinned)
