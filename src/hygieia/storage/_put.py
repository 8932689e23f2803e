"""One put, any number of stores: the UnixFS DAG is built once, its blocks go to each.

:class:`DagWriter` is the ``BlobWriter`` of every backend. It runs the importer
(:class:`~hygieia.ipfs.FileImporter`) once over the bytes written, in the caller's
thread, and hands each block as it completes (children before parents, the root last)
to every store's :class:`~hygieia.storage.base.BlockSink`: a Kubo node's sink streams
them as a CAR into ``dag/import``, the embedded stores' sinks write them to disk. The
same ``bytes`` objects go to every sink (no copy per store), and each sink holds at
most a couple of blocks, so memory does not grow with the blob or with the stores.

The CID is computed here, once; each sink then checks that its store holds the root
(:meth:`BlockSink.finish`). A sink that fails is dropped (and the blocks it added
removed) while at least ``need`` remain; below that the put fails, and ``abort``
removes what every remaining sink added. :attr:`DagWriter.holders` names the stores
that hold the finished blob.
"""

from __future__ import annotations

import logging

from hygieia.errors import StorageUnavailable
from hygieia.ipfs import CID, FileImporter
from hygieia.storage.base import BlobWriter, BlockSink

__all__ = ["DagWriter"]

log = logging.getLogger(__name__)


class DagWriter(BlobWriter):
    """A put whose blocks are built once and fanned out to ``sinks`` (by store id)."""

    def __init__(self, sinks: dict[str, BlockSink], *, need: int = 1) -> None:
        if not sinks or need > len(sinks):
            raise ValueError("a put needs at least `need` sinks")
        self._sinks = dict(sinks)
        self._need = need
        # One store: its own error is the put's (no "fewer than 1 store" wording).
        self._alone = len(sinks) == 1
        self._importer = FileImporter(self._emit)
        self.holders: list[str] = []

    def _emit(self, cid: CID, block: bytes) -> None:
        for name, sink in list(self._sinks.items()):
            try:
                sink.put(cid, block)
            except StorageUnavailable as exc:
                self._drop(name, exc)

    def _drop(self, name: str, exc: StorageUnavailable) -> None:
        if not self._alone:
            log.warning("store %s: put failed (%s)", name, type(exc).__name__)
        self._sinks.pop(name).abort()
        if len(self._sinks) < self._need:
            if self._alone:
                raise exc
            raise StorageUnavailable(f"fewer than {self._need} store(s) reachable") from exc

    def write(self, data: bytes) -> None:
        self._importer.write(data)

    def finish(self) -> str:
        root = self._importer.finish()
        # Every sink is told first, then waited for: the stores complete side by side.
        for name, sink in list(self._sinks.items()):
            try:
                sink.end(root)
            except StorageUnavailable as exc:
                self._drop(name, exc)
        for name, sink in list(self._sinks.items()):
            try:
                sink.finish(root)
            except StorageUnavailable as exc:
                self._drop(name, exc)
        self.holders = list(self._sinks)
        return str(root)

    def abort(self) -> None:
        sinks, self._sinks = self._sinks, {}
        self.holders = []
        for sink in sinks.values():
            sink.abort()
