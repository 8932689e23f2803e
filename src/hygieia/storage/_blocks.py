"""What the embedded stores share: put through the importer, get and CAR export by
walking the DAG block by block. A subclass only says how blocks and pins are kept."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import BinaryIO

from hygieia.errors import StorageUnavailable
from hygieia.ipfs import (
    CID,
    RAW,
    FileImporter,
    car_block_prefix,
    car_header,
    decode_dag_pb,
    parse_cid,
)
from hygieia.storage.base import BlobNotFound, BlobSource, BlobStore, iter_source


class BlockBlobStore(BlobStore):
    """A ``BlobStore`` over a key-value block store, with ``export_car``."""

    # -- what a subclass provides --------------------------------------------------
    @abc.abstractmethod
    def _read_block(self, cid: CID) -> bytes | None:
        """The block's bytes, or None if absent."""

    @abc.abstractmethod
    def _write_block(self, cid: CID, block: bytes) -> None:
        """Store a block durably (a no-op if it is already there)."""

    @abc.abstractmethod
    def _has_block(self, cid: CID) -> bool: ...

    @abc.abstractmethod
    def _add_pin(self, cid: CID) -> None: ...

    @abc.abstractmethod
    def _remove_pin(self, cid: CID) -> None: ...

    # -- BlobStore -----------------------------------------------------------------
    def put(self, source: BlobSource) -> str:
        # Children are written before their parents and the root last, so a root
        # that is present means the whole DAG is.
        importer = FileImporter(self._write_block)
        for piece in iter_source(source):
            importer.write(piece)
        return str(importer.finish())

    def get(self, cid: str) -> Iterator[bytes]:
        root = parse_cid(cid)
        block = self._block(root)  # raises BlobNotFound now, not at the first next()
        return self._walk_data(root, block)

    def has(self, cid: str) -> bool:
        return self._has_block(parse_cid(cid))

    def pin(self, cid: str) -> None:
        parsed = parse_cid(cid)
        if not self._has_block(parsed):
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
