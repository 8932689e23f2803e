"""What the embedded stores share: put (each block from :class:`DagWriter` written as it
comes), get and CAR export by walking the DAG block by block, pins that need the whole
DAG, and the removal of a failed put's blocks. A subclass only says how blocks and
pins are kept and locked."""

from __future__ import annotations

import abc
import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from hygieia.errors import StorageUnavailable
from hygieia.ipfs import (
    CID,
    RAW,
    car_block_prefix,
    car_header,
    decode_dag_pb,
    parse_cid,
)
from hygieia.storage._put import DagWriter
from hygieia.storage.base import BlobNotFound, BlobStore, BlobWriter, BlockSink

#: Pins taken this long before a put began are still looked at when its blocks are
#: removed (clock granularity of file times; see ``_pins_since``).
_PIN_SLACK = 5.0


class _BlockSink(BlockSink):
    """A put into a block store; remembers the blocks it added, for ``abort``."""

    def __init__(self, store: BlockBlobStore) -> None:
        self._store = store
        self._started = time.time()
        self._added: list[CID] = []

    def put(self, cid: CID, block: bytes) -> None:
        if self._store._write_block(cid, block):
            self._added.append(cid)
        self._note(cid)

    def _note(self, cid: CID) -> None:
        """A block of this put is in the store (a hook for the local store's journal)."""

    def finish(self, root: CID) -> None:
        # Children are written before their parents and the root last, so a root
        # that is present means the whole DAG is.
        if not self._store._has_block(root):
            raise StorageUnavailable("the store lost the root block of a put")

    def abort(self) -> None:
        added, self._added = self._added, []
        if added:
            with contextlib.suppress(StorageUnavailable):
                self._store._discard(added, since=self._started)


class BlockBlobStore(BlobStore):
    """A ``BlobStore`` over a key-value block store, with ``export_car``.

    Pinning and removing blocks exclude each other (``_exclusive``), and a pin needs
    every block of its DAG: a put that fails and removes its blocks can't take a
    block from under a concurrent put of the same bytes, which then fails to pin
    instead of pinning a hole.
    """

    # -- what a subclass provides --------------------------------------------------
    @abc.abstractmethod
    def _read_block(self, cid: CID) -> bytes | None:
        """The block's bytes, or None if absent."""

    @abc.abstractmethod
    def _write_block(self, cid: CID, block: bytes) -> bool:
        """Store a block durably; False (and nothing written) if it was already there."""

    @abc.abstractmethod
    def _delete_block(self, cid: CID) -> None:
        """Remove a block (a no-op if absent)."""

    @abc.abstractmethod
    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Hold off other pins and block removals (of every process on the store)."""

    @abc.abstractmethod
    def _has_block(self, cid: CID) -> bool: ...

    @abc.abstractmethod
    def _add_pin(self, cid: CID) -> None: ...

    @abc.abstractmethod
    def _remove_pin(self, cid: CID) -> None: ...

    def _pins_since(self, since: float) -> Iterable[str]:
        """Pins that may have been taken after ``since`` (a superset is fine: all pins)."""
        return self.pins()

    # -- BlobStore -----------------------------------------------------------------
    def writer(self) -> BlobWriter:
        return DagWriter({"": self.block_sink()})

    def block_sink(self) -> BlockSink:
        return _BlockSink(self)

    def get(self, cid: str) -> Iterator[bytes]:
        root = parse_cid(cid)
        block = self._block(root)  # raises BlobNotFound now, not at the first next()
        return self._walk_data(root, block)

    def has(self, cid: str) -> bool:
        return self._has_block(parse_cid(cid))

    def pin(self, cid: str) -> None:
        parsed = parse_cid(cid)
        with self._exclusive():
            if not self._whole(parsed):
                raise BlobNotFound()
            self._add_pin(parsed)

    def unpin(self, cid: str) -> None:
        self._remove_pin(parse_cid(cid))

    def export_car(self, cid: str, out: BinaryIO) -> None:
        """Write the blob's DAG as CARv1: header naming the root, then blocks in DFS
        pre-order, each block once (as ``ipfs dag export`` does)."""
        root = parse_cid(cid)
        first = self._block(root)
        out.write(car_header(root))
        seen: set[CID] = set()
        for block_cid, block in self._walk_blocks(root, first):
            if block_cid in seen:
                continue
            seen.add(block_cid)
            out.write(car_block_prefix(block_cid, block))
            out.write(block)

    # -- block access, for scrub and repair (SupportsBlocks) ------------------------
    def read_block(self, cid: CID) -> bytes | None:
        return self._read_block(cid)

    def drop_blocks(self, root: str, cids: Sequence[CID]) -> None:
        with self._exclusive():
            for cid in cids:
                self._delete_block(cid)

    def is_pinned(self, cid: str) -> bool:
        return str(parse_cid(cid)) in set(self.pins())

    # -- removing a failed put's blocks ------------------------------------------------
    def _discard(self, added: list[CID], *, since: float) -> None:
        """Delete blocks a put added, unless a pin reaches them.

        They did not exist when the put began, so only a pin taken since then can
        reach them: only those pins are walked, not the whole store.
        """
        with self._exclusive():
            keep = self._reachable(self._pins_since(since - _PIN_SLACK))
            for cid in added:
                if str(cid) not in keep:
                    self._delete_block(cid)

    def _reachable(self, roots: Iterable[str]) -> set[str]:
        """Every block the given pins reach. Reads only the (small) dag-pb nodes."""
        seen: set[str] = set()
        stack = [parse_cid(cid) for cid in roots]
        while stack:
            cid = stack.pop()
            name = str(cid)
            if name in seen:
                continue
            seen.add(name)
            if cid.codec == RAW:
                continue
            block = self._read_block(cid)
            if block is not None:
                stack.extend(decode_dag_pb(block).links)
        return seen

    def _whole(self, root: CID) -> bool:
        """Whether every block of the DAG is here (leaves are checked, not read)."""
        stack = [root]
        while stack:
            cid = stack.pop()
            if cid.codec == RAW:
                if not self._has_block(cid):
                    return False
                continue
            block = self._read_block(cid)
            if block is None:
                return False
            stack.extend(decode_dag_pb(block).links)
        return True

    # -- walking -------------------------------------------------------------------
    def _block(self, cid: CID) -> bytes:
        block = self._read_block(cid)
        if block is None:
            raise BlobNotFound()
        if not cid.verify(block):
            raise StorageUnavailable("a stored block is corrupt")
        return block

    def _walk_blocks(self, cid: CID, block: bytes) -> Iterator[tuple[CID, bytes]]:
        """Blocks of the DAG in DFS pre-order; memory is one block per tree level."""
        yield cid, block
        if cid.codec == RAW:
            return
        for child in decode_dag_pb(block).links:
            yield from self._walk_blocks(child, self._block(child))

    def _walk_data(self, cid: CID, block: bytes) -> Iterator[bytes]:
        for block_cid, node in self._walk_blocks(cid, block):
            if block_cid.codec == RAW:
                if node:
                    yield node
            else:
                data = decode_dag_pb(node).data
                if data:
                    yield data
