"""LocalBlobStore specifics: on-disk layout, durability across reopen, corruption,
garbage collection and file modes."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hygieia.config import Settings
from hygieia.errors import StorageUnavailable
from hygieia.storage import (
    BlobNotFound,
    KuboBlobStore,
    LocalBlobStore,
    MemoryBlobStore,
    make_store,
)

MiB = 1024 * 1024


def test_layout_and_reopen(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    cid = store.put([os.urandom(2 * MiB + 1)])
    store.pin(cid)
    assert (tmp_path / "pins" / cid).is_file()
    assert (tmp_path / "blocks" / cid[-3:-1] / cid).is_file()
    assert len(list((tmp_path / "blocks").glob("*/*"))) == 4
    assert not list((tmp_path / "tmp").iterdir())  # no temp file left behind

    reopened = LocalBlobStore(tmp_path)
    assert reopened.has(cid)
    assert list(reopened.pins()) == [cid]


def test_stray_files_are_not_pins(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    (tmp_path / "pins" / "notes.txt").write_text("x")
    assert list(store.pins()) == []


def test_corrupt_block_is_detected(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    cid = store.put([b"precious"])
    (tmp_path / "blocks" / cid[-3:-1] / cid).write_bytes(b"tampered")
    with pytest.raises(StorageUnavailable):
        store.get(cid)


def test_missing_leaf_fails_the_stream(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(2 * MiB)
    cid = store.put([data])
    leaf = next(p for p in (tmp_path / "blocks").glob("*/bafkrei*"))
    leaf.unlink()
    with pytest.raises(BlobNotFound):
        b"".join(store.get(cid))


def test_unwritable_root_is_storage_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageUnavailable):
        LocalBlobStore(tmp_path / "file" / "store")


def _big_stream(total: int) -> Iterator[bytes]:
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)
    sent = 0
    while sent < total:
        piece = block[: min(MiB, total - sent)]
        sent += len(piece)
        yield bytes([sent % 251]) + piece[1:]  # distinct chunks, no dedup


@pytest.mark.slow
def test_round_trip_across_1024_links(tmp_path: Path) -> None:
    """1025 MiB: a root over a full 1024-link node and a node with one leaf."""
    total = 1025 * MiB
    store = LocalBlobStore(tmp_path)
    cid = store.put(_big_stream(total))
    digest, size = hashlib.sha256(), 0
    for chunk in store.get(cid):
        digest.update(chunk)
        size += len(chunk)
    expected = hashlib.sha256()
    for piece in _big_stream(total):
        expected.update(piece)
    assert size == total
    assert digest.digest() == expected.digest()


def test_make_store(tmp_path: Path) -> None:
    local = make_store(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalBlobStore)
    assert local.root == tmp_path / "blocks"
    assert isinstance(make_store(Settings(store="memory")), MemoryBlobStore)
    kubo = make_store(Settings(ipfs_api="http://127.0.0.1:5001", ipfs_api_auth="Bearer x"))
    assert isinstance(kubo, KuboBlobStore)
    kubo.close()
    with pytest.raises(ValueError):
        make_store(Settings(store="kubo"))


def test_collect_garbage_keeps_what_pins_reach(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    kept = store.put([b"k" * (3 * 1024 * 1024 + 5)])  # a tree: root + 4 leaves
    store.pin(kept)
    dropped = store.put([b"d" * (2 * 1024 * 1024 + 1)])
    shared = store.put([b"k" * 1024 * 1024])  # the same bytes as one of kept's leaves
    files = {p.name for p in (tmp_path / "blocks").glob("*/*")}
    # Young unreachable blocks may belong to a put whose pin is on its way: kept.
    assert store.collect_garbage(older_than=3600) == 0
    removed = store.collect_garbage(older_than=0)
    left = {p.name for p in (tmp_path / "blocks").glob("*/*")}
    assert dropped not in left and removed == len(files) - len(left) >= 2
    assert shared in left  # reachable through the pinned tree
    assert b"".join(store.get(kept)) == b"k" * (3 * 1024 * 1024 + 5)
    store.unpin(kept)
    store.collect_garbage(older_than=0)
    assert not any((tmp_path / "blocks").glob("*/*"))


# -- failed puts, long puts and garbage collection (issue 9, finding 8) -------------------
def _block_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blocks").glob("*/*")}


def _age(paths: Iterator[Path], seconds: float) -> None:
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


def test_put_in_progress_is_safe_from_collection(tmp_path: Path) -> None:
    """A put lasting longer than the grace (a slow 2 GiB upload) keeps its first blocks:
    its journal lists them. Fails on the code before the fix, which collected them."""
    store = LocalBlobStore(tmp_path)
    writer = store.writer()
    writer.write(os.urandom(2 * MiB + 5))
    assert len(_block_files(tmp_path)) == 2
    _age((tmp_path / "blocks").glob("*/*"), 600)  # written ten minutes ago
    assert store.collect_garbage(older_than=300) == 0
    cid = writer.finish()
    store.pin(cid)
    assert not list((tmp_path / "tmp").iterdir())  # the pin retired the journal
    assert store.collect_garbage(older_than=0) == 0
    assert len(b"".join(store.get(cid))) == 2 * MiB + 5

    # A journal nobody has written to within the grace (a put that died) protects
    # nothing, and goes too.
    stale = store.writer()
    stale.write(os.urandom(MiB))
    _age(itertools.chain((tmp_path / "blocks").glob("*/*"), (tmp_path / "tmp").iterdir()), 600)
    assert store.collect_garbage(older_than=300) == 1
    assert not list((tmp_path / "tmp").iterdir())


def test_pin_needs_every_block(tmp_path: Path) -> None:
    """A put that fails removes blocks it added; if a concurrent put of the same bytes
    found them there and wrote nothing, its pin fails instead of pinning a hole."""
    store = LocalBlobStore(tmp_path)
    cid = store.put([os.urandom(2 * MiB + 1)])
    next((tmp_path / "blocks").glob("*/bafkrei*")).unlink()
    with pytest.raises(BlobNotFound):
        store.pin(cid)
    assert list(store.pins()) == []


def test_store_is_private_to_its_user(tmp_path: Path) -> None:
    """Directories 0700 and files 0600 whatever the umask, and an old store (0755) is
    tightened when opened. Fails on the code before the fix (issue 9, finding 11)."""
    old_umask = os.umask(0o022)
    try:
        root = tmp_path / "old"
        for d in ("blocks", "pins", "tmp"):
            (root / d).mkdir(parents=True, mode=0o755)
        store = LocalBlobStore(root)
        cid = store.put([os.urandom(MiB + 1)])
        store.pin(cid)
        store.writer().write(os.urandom(10))  # a journal in tmp/
        store.collect_garbage(older_than=3600)  # the lock file
    finally:
        os.umask(old_umask)
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
