"""The ``BlobStore`` interface, its exceptions and its contract.

A blob is an immutable byte string (a record's ciphertext) named by its IPFS CID:
UnixFS, CIDv1, raw leaves, 1 MiB fixed chunks, balanced layout, 1024 links per node,
sha2-256, printed in base32 (``bafk…`` for one chunk, ``bafy…`` above). Every backend
computes the same CID for the same bytes, so a blob written to the embedded store can
be moved to any IPFS node (as a CAR) and keeps its name.

Contract (checked for every backend by ``tests/storage/test_contract.py``):

* ``put`` streams its input (a binary file object or an iterable of ``bytes``) into
  the store and returns the canonical CID string. It does **not** pin: callers pin
  once their own state is committed, and reconcile with :meth:`BlobStore.pins`.
  ``writer()`` is the same put in push form (``write`` pieces, ``finish`` for the
  CID), for callers that must not hold a thread while their input trickles in.
  ``block_sink()`` is the store's side of a put whose DAG is built by the caller
  (:class:`~hygieia.storage._put.DagWriter`): every backend's ``writer()`` is a
  ``DagWriter`` over its own sink, and a set of stores builds the DAG once for all.
* A put that fails, or whose blob the caller rejects (``BlobWriter.abort``), removes
  the blocks it added that no pin reaches: a refused upload leaves nothing behind.
* ``get`` returns an iterator of chunks; it raises :class:`BlobNotFound` at call
  time, before any byte is produced, when the store does not hold the blob.
* ``pin`` keeps a blob the store holds (``BlobNotFound`` otherwise); pinning twice is
  one pin. ``unpin`` of a blob that isn't pinned is a no-op.
* ``has`` answers from what the store holds now: it never searches a network.
* ``pins`` lists pinned CIDs (canonical strings), for reconciling orphan pins.
* Every method that takes a CID parses it first: a malformed CID raises
  ``ValueError`` before it is used in a path or a URL. Any CID spelling is accepted
  (base58 ``z…``, CIDv0 ``Qm…``); CIDs returned are always canonical.
* The store being unreachable or failing raises
  :class:`~hygieia.errors.StorageUnavailable`.
* Nothing reads a whole blob into memory: blobs can be gigabytes.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import BinaryIO, Protocol, Self, runtime_checkable

from hygieia.errors import BlobNotFound, StorageUnavailable
from hygieia.ipfs import CID, RAW

__all__ = [
    "BlobNotFound",
    "BlobSource",
    "BlobStore",
    "BlobWriter",
    "BlockSink",
    "StorageUnavailable",
    "SupportsBlocks",
    "SupportsCarExport",
    "SupportsGarbageCollection",
]

#: What ``put`` accepts: a binary file object, or an iterable of byte strings.
BlobSource = BinaryIO | Iterable[bytes]

#: How much ``put`` reads from a file object at a time.
READ_SIZE = 1024 * 1024


class BlobWriter(abc.ABC):
    """One put in push form: :meth:`write` the bytes, then :meth:`finish` for the CID.

    :meth:`abort` ends a put that failed, or one whose blob the caller rejects after
    ``finish`` (wrong CID, refused upload) and has not pinned: it removes the blocks
    this put added that no pin reaches. It never raises (it is called while another
    error is on its way); what it can't remove, garbage collection does later.
    """

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Add the next bytes of the blob."""

    @abc.abstractmethod
    def finish(self) -> str:
        """The blob is complete: store what is left and return its canonical CID."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Give the put up and remove the blocks it added that no pin reaches."""


class BlockSink(abc.ABC):
    """One store's side of a put whose UnixFS DAG is built elsewhere, once.

    :meth:`put` takes the blocks in the importer's order (children before parents,
    the root last); :meth:`end` says the root (a sink may start completing then, in
    the background); :meth:`finish` waits until the store holds the whole DAG under
    that root, or raises ``StorageUnavailable``. :meth:`abort` is ``BlobWriter.abort``:
    it removes the blocks this sink added that no pin reaches, and never raises.
    """

    @abc.abstractmethod
    def put(self, cid: CID, block: bytes) -> None:
        """Store the next block (``block`` is not modified afterwards: keep it)."""

    def end(self, root: CID) -> None:  # noqa: B027 - optional hook
        """Every block is given; ``root`` is the DAG's root."""

    @abc.abstractmethod
    def finish(self, root: CID) -> None:
        """Wait until the store holds the DAG under ``root``."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Give the put up and remove the blocks it added that no pin reaches."""


class _WriterSink(BlockSink):
    """A store known only by its ``writer()``: the raw leaves are the blob's bytes in
    order, so they are written as data and the store's own CID is checked."""

    def __init__(self, writer: BlobWriter) -> None:
        self._writer = writer

    def put(self, cid: CID, block: bytes) -> None:
        if cid.codec == RAW:
            self._writer.write(block)

    def finish(self, root: CID) -> None:
        if self._writer.finish() != str(root):
            raise StorageUnavailable("the store computed another CID")

    def abort(self) -> None:
        self._writer.abort()


class BlobStore(abc.ABC):
    """Content-addressed blob storage. See the module docstring for the contract."""

    @abc.abstractmethod
    def writer(self) -> BlobWriter:
        """Start a put in push form (see :class:`BlobWriter`)."""

    def put(self, source: BlobSource) -> str:
        """Store the bytes of ``source`` (streamed) and return their CID."""
        writer = self.writer()
        try:
            for piece in iter_source(source):
                writer.write(piece)
            return writer.finish()
        except BaseException:
            writer.abort()
            raise

    def block_sink(self) -> BlockSink:
        """Take part in a put whose DAG is built by the caller (see :class:`BlockSink`)."""
        return _WriterSink(self.writer())

    @abc.abstractmethod
    def get(self, cid: str) -> Iterator[bytes]:
        """Stream the blob's bytes; ``BlobNotFound`` (at call time) if it is absent."""

    @abc.abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the store holds the blob now."""

    @abc.abstractmethod
    def pin(self, cid: str) -> None:
        """Keep the blob (idempotent); ``BlobNotFound`` if the store doesn't hold it."""

    @abc.abstractmethod
    def unpin(self, cid: str) -> None:
        """Drop the pin, if any (idempotent)."""

    @abc.abstractmethod
    def pins(self) -> Iterator[str]:
        """The CIDs pinned (recursively), canonical, in no particular order."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections or handles."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class SupportsCarExport(Protocol):
    """A store that can write a blob's DAG as a CARv1 archive (root first, DFS order)."""

    def export_car(self, cid: str, out: BinaryIO) -> None: ...


@runtime_checkable
class SupportsGarbageCollection(Protocol):
    """A store that deletes, itself, the blocks no pin reaches any more.

    (Kubo does this with its own ``repo gc``; the embedded store needs to be told.)
    """

    def collect_garbage(self, *, older_than: float) -> int: ...


@runtime_checkable
class SupportsBlocks(Protocol):
    """A store whose blocks can be read and checked one by one (scrub and repair).

    ``read_block`` answers the raw bytes as stored (not verified: the caller hashes
    them) or None when the block is absent; ``drop_blocks`` removes blocks found
    corrupt, even under a pin (the pin of ``root`` may be dropped on the way: the
    repair takes it again); ``is_pinned`` says whether ``cid`` is pinned recursively.
    """

    def read_block(self, cid: CID) -> bytes | None: ...

    def drop_blocks(self, root: str, cids: Sequence[CID]) -> None: ...

    def is_pinned(self, cid: str) -> bool: ...


def iter_source(source: BlobSource) -> Iterator[bytes]:
    """Pieces of a ``put`` source, read ``READ_SIZE`` at a time from file objects."""
    read = getattr(source, "read", None)
    if callable(read):
        while True:
            piece = read(READ_SIZE)
            if not piece:
                return
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise TypeError("put() needs a binary stream")
            yield bytes(piece)
    else:
        for piece in source:
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise TypeError("put() needs an iterable of bytes")
            yield bytes(piece)
