"""``LocalBlobStore``: the embedded content-addressed store on disk (the default).

Layout under ``root``::

    blocks/<xy>/<cid>   one file per block, named by its canonical CIDv1; <xy> is the
                        two characters before the CID's last, as Kubo's flatfs shards
    pins/<cid>          one empty file per recursive pin
    tmp/                files being written

Every file is written to ``tmp/``, fsynced, moved into place with ``os.replace`` and
its directory fsynced, so a crash leaves either the whole block (or pin) or nothing.
The importer writes children before parents and the root last, so a root block on
disk means the whole blob is there. Reads verify each block against its CID.
``collect_garbage`` deletes the blocks no pin reaches any more (a deleted record's
ciphertext); reconciliation runs it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hygieia.errors import StorageUnavailable
from hygieia.ipfs import CID, RAW, decode_dag_pb, parse_cid
from hygieia.storage._blocks import BlockBlobStore

__all__ = ["LocalBlobStore"]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore(BlockBlobStore):
    """Blocks and pins as files under ``root`` (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._tmp = self.root / "tmp"
        try:
            for d in (self._blocks, self._pins, self._tmp):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable("cannot create the local blob store") from exc

    def _block_path(self, cid: CID) -> Path:
        name = str(cid)
        return self._blocks / name[-3:-1] / name

    def _write_atomic(self, path: Path, data: bytes) -> None:
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                new_dir = not path.parent.exists()
                path.parent.mkdir(exist_ok=True)
                if new_dir:
                    _fsync_dir(path.parent.parent)
                os.replace(tmp_name, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
                raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise StorageUnavailable("cannot write to the local blob store") from exc

    def _read_block(self, cid: CID) -> bytes | None:
        try:
            return self._block_path(cid).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable("cannot read the local blob store") from exc

    def _write_block(self, cid: CID, block: bytes) -> None:
        path = self._block_path(cid)
        if not path.exists():
            self._write_atomic(path, block)

    def _has_block(self, cid: CID) -> bool:
        return self._block_path(cid).is_file()

    def _add_pin(self, cid: CID) -> None:
        path = self._pins / str(cid)
        if not path.exists():
            self._write_atomic(path, b"")

    def _remove_pin(self, cid: CID) -> None:
        try:
            (self._pins / str(cid)).unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable("cannot write to the local blob store") from exc
        _fsync_dir(self._pins)

    def pins(self) -> Iterator[str]:
        try:
            names = os.listdir(self._pins)
        except OSError as exc:
            raise StorageUnavailable("cannot read the local blob store") from exc
        for name in names:
            try:
                yield str(parse_cid(name))
            except ValueError:
                continue  # a stray file is not a pin

    # -- garbage collection ----------------------------------------------------------
    def _reachable(self) -> set[str]:
        """Every block a pin reaches. Reads only the (small) dag-pb nodes, not leaves."""
        seen: set[str] = set()
        stack = [parse_cid(cid) for cid in self.pins()]
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

    def collect_garbage(self, *, older_than: float) -> int:
        """Delete blocks no pin reaches and leftovers in ``tmp/``, if older than
        ``older_than`` seconds (younger ones may belong to a put still in progress,
        whose pin is not taken yet). Returns how many files were deleted."""
        keep = self._reachable()
        cutoff = time.time() - older_than
        removed = 0
        try:
            candidates = [p for p in self._blocks.glob("*/*") if p.name not in keep]
            candidates += list(self._tmp.iterdir())
            for path in candidates:
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime <= cutoff:
                        path.unlink()
                        removed += 1
        except OSError as exc:
            raise StorageUnavailable("cannot clean the local blob store") from exc
        return removed
