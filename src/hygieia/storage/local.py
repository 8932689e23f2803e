"""``LocalBlobStore``: the embedded content-addressed store on disk (the default).

Layout under ``root``::

    blocks/<xy>/<cid>   one file per block, named by its canonical CIDv1; <xy> is the
                        two characters before the CID's last, as Kubo's flatfs shards
    pins/<cid>          one empty file per recursive pin
    tmp/                files being written, and one journal per put in progress
    lock                held (flock) while pinning or deleting blocks

Every file is written to ``tmp/``, fsynced, moved into place with ``os.replace`` and
its directory fsynced, so a crash leaves either the whole block (or pin) or nothing.
The importer writes children before parents and the root last, so a root block on
disk means the whole blob is there. Reads verify each block against its CID.
``collect_garbage`` deletes the blocks no pin reaches any more (a deleted record's
ciphertext); reconciliation runs it, at start-up and periodically. A put may last
longer than collection's grace (a 2 GiB upload on a slow link): it lists its blocks in
a journal, ``tmp/<random>.put`` (``tmp/<cid>.put`` once finished, removed by the pin),
and collection keeps the blocks of every journal written to within the grace. A failed
put deletes the blocks it added at once.

Directories are 0700 and files 0600 (ciphertext is not for other local users to
copy), whatever the umask; an existing store is tightened when it is opened.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from hygieia.errors import StorageUnavailable
from hygieia.ipfs import CID, parse_cid
from hygieia.storage._blocks import BlockBlobStore, _BlockSink
from hygieia.storage.base import BlockSink

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
        self._lock = self.root / "lock"
        try:
            for d in (self.root, self._blocks, self._pins, self._tmp):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
                d.chmod(0o700)  # mkdir's mode is cut by the umask; an old store was 0755
        except OSError as exc:
            raise StorageUnavailable("cannot create the local blob store") from exc

    def block_sink(self) -> BlockSink:
        try:
            fd, journal = tempfile.mkstemp(dir=self._tmp, suffix=_JOURNAL)
        except OSError as exc:
            raise StorageUnavailable("cannot write to the local blob store") from exc
        return _LocalSink(self, fd, Path(journal))

    def pin(self, cid: str) -> None:
        super().pin(cid)
        # The blob's blocks are reachable now: its put's journal has done its work.
        with contextlib.suppress(OSError):
            (self._tmp / f"{parse_cid(cid)}{_JOURNAL}").unlink()

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
                path.parent.mkdir(mode=0o700, exist_ok=True)
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

    def _write_block(self, cid: CID, block: bytes) -> bool:
        path = self._block_path(cid)
        if _touch(path):
            # Already here (an unpinned leftover, or another put of the same bytes):
            # now young again, so garbage collection leaves it to this put's pin.
            return False
        self._write_atomic(path, block)
        return True

    def _has_block(self, cid: CID) -> bool:
        return self._block_path(cid).is_file()

    def _delete_block(self, cid: CID) -> None:
        try:
            self._block_path(cid).unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable("cannot clean the local blob store") from exc

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        # flock, not a thread lock: several server processes may share the store.
        try:
            fd = os.open(self._lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageUnavailable("cannot lock the local blob store") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _add_pin(self, cid: CID) -> None:
        path = self._pins / str(cid)
        if not _touch(path):  # a pin file's time says when it was (last) taken
            self._write_atomic(path, b"")

    def _pins_since(self, since: float) -> Iterable[str]:
        for cid in self.pins():
            with contextlib.suppress(FileNotFoundError):
                if (self._pins / cid).stat().st_mtime >= since:
                    yield cid

    def _remove_pin(self, cid: CID) -> None:
        try:
            (self._pins / str(cid)).unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable("cannot write to the local blob store") from exc
        _fsync_dir(self._pins)

    def is_pinned(self, cid: str) -> bool:
        return (self._pins / str(parse_cid(cid))).is_file()

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
    def collect_garbage(self, *, older_than: float) -> int:
        """Delete blocks no pin reaches and leftovers in ``tmp/``, if older than
        ``older_than`` seconds (younger ones may belong to a put still in progress,
        whose pin is not taken yet: a put touches the blocks it finds already there,
        and lists its blocks in a journal). Returns how many block and temporary files
        were deleted."""
        with self._exclusive():
            keep = self._reachable(self.pins())
            cutoff = time.time() - older_than
            removed = 0
            try:
                keep |= self._in_progress(cutoff)
                candidates = [p for p in self._blocks.glob("*/*") if p.name not in keep]
                candidates += list(self._tmp.iterdir())
                for path in candidates:
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime <= cutoff:
                            path.unlink()
                            # Old journals are bookkeeping, not data: not counted.
                            removed += not path.name.endswith(_JOURNAL)
            except OSError as exc:
                raise StorageUnavailable("cannot clean the local blob store") from exc
        return removed

    def _in_progress(self, cutoff: float) -> set[str]:
        """Blocks listed by the journals written to since ``cutoff``."""
        names: set[str] = set()
        for journal in self._tmp.glob(f"*{_JOURNAL}"):
            with contextlib.suppress(FileNotFoundError):
                if journal.stat().st_mtime > cutoff:
                    names.update(journal.read_text("ascii", "replace").split())
        return names


_JOURNAL = ".put"


class _LocalSink(_BlockSink):
    """A put that lists its blocks in a journal, so collection leaves them alone."""

    def __init__(self, store: LocalBlobStore, fd: int, journal: Path) -> None:
        super().__init__(store)
        self._fd: int | None = fd
        self._journal = journal

    def _note(self, cid: CID) -> None:
        if self._fd is not None:
            try:
                os.write(self._fd, f"{cid}\n".encode())  # each block: ~60 bytes per MiB
            except OSError as exc:
                raise StorageUnavailable("cannot write to the local blob store") from exc

    def finish(self, root: CID) -> None:
        super().finish(root)
        self._close()
        named = self._journal.with_name(f"{root}{_JOURNAL}")
        try:
            os.replace(self._journal, named)
        except OSError as exc:
            raise StorageUnavailable("cannot write to the local blob store") from exc
        self._journal = named

    def abort(self) -> None:
        super().abort()
        self._close()
        with contextlib.suppress(OSError):
            self._journal.unlink()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _touch(path: Path) -> bool:
    """Set the file's times to now; False if it doesn't exist."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageUnavailable("cannot write to the local blob store") from exc
    return True
