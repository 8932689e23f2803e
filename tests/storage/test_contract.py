"""The BlobStore contract, run against every backend (kubo = a real js-ipfs daemon)."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from hygieia.ipfs import FileImporter, normalize_cid, parse_cid
from hygieia.storage import BlobNotFound, BlobStore, SupportsCarExport
from tests.support.stores import open_store

MiB = 1024 * 1024
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # Kubo, raw leaves

MALFORMED = [
    "",
    "not-a-cid",
    "../../etc/passwd",
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk/",
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvy",  # truncated
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku?x=1",
    "QmNotReallyACidNotReallyACidNotReallyACidNotRe",
    "bagaaierasords4njcts6vs7qvdjfcvgnume4hqohf65zsfguprqphs3icwea",  # dag-json codec
    "b" + "a" * 200,
]


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed ^ size).randbytes(size)


def pieces(data: bytes, size: int = 100_003) -> Iterator[bytes]:
    """A generator in awkward piece sizes, not aligned with chunks."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def read_all(store: BlobStore, cid: str) -> bytes:
    return b"".join(store.get(cid))


@pytest.mark.parametrize(
    "size",
    [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 5, 20 * MiB + 7],
    ids=["0B", "1B", "1MiB-1", "1MiB", "1MiB+1", "3MiB+5", "20MiB+7"],
)
def test_round_trip(store: BlobStore, size: int) -> None:
    data = payload(size)
    cid = store.put(io.BytesIO(data))
    assert cid == normalize_cid(cid)  # canonical CIDv1 base32
    assert cid.startswith("bafkrei" if size <= MiB else "bafybei")
    assert store.has(cid)
    assert read_all(store, cid) == data


def test_empty_blob_is_the_raw_empty_leaf(store: BlobStore) -> None:
    assert store.put(io.BytesIO(b"")) == EMPTY_CID
    assert store.put([]) == EMPTY_CID
    assert read_all(store, EMPTY_CID) == b""


def test_generator_input_equals_file_input(store: BlobStore) -> None:
    data = payload(2 * MiB + 12345)
    from_file = store.put(io.BytesIO(data))
    from_generator = store.put(pieces(data))
    assert from_file == from_generator
    assert read_all(store, from_generator) == data


def test_get_streams_in_pieces(store: BlobStore) -> None:
    data = payload(3 * MiB)
    chunks = list(store.get(store.put([data])))
    assert len(chunks) >= 3
    assert max(len(c) for c in chunks) <= MiB


def test_put_is_idempotent(store: BlobStore) -> None:
    data = payload(MiB + 10)
    assert store.put([data]) == store.put([data])


def test_unknown_cid(store: BlobStore) -> None:
    absent = str(parse_cid(_absent_cid()))
    assert not store.has(absent)
    with pytest.raises(BlobNotFound):
        store.get(absent)  # raised at call time, before any byte is read
    with pytest.raises(BlobNotFound):
        store.pin(absent)
    store.unpin(absent)  # not pinned: a no-op
    assert absent not in set(store.pins())


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_cid_is_refused(store: BlobStore, bad: str) -> None:
    for call in (store.get, store.has, store.pin, store.unpin):
        with pytest.raises(ValueError):
            call(bad)
    if isinstance(store, SupportsCarExport):
        with pytest.raises(ValueError):
            store.export_car(bad, io.BytesIO())


def test_pin_unpin_pins(store: BlobStore) -> None:
    cid = store.put([payload(MiB + 3, seed=7)])
    assert cid not in set(store.pins())  # put does not pin
    store.pin(cid)
    store.pin(cid)  # idempotent
    assert cid in set(store.pins())
    assert all(p == normalize_cid(p) for p in store.pins())
    store.unpin(cid)
    assert cid not in set(store.pins())
    store.unpin(cid)  # idempotent
    assert store.has(cid)  # unpinning does not delete here and now


def test_other_cid_spellings_are_accepted(store: BlobStore) -> None:
    data = payload(1000)
    cid = store.put([data])
    base58 = _to_base58btc(cid)
    assert base58.startswith("zb2")
    assert store.has(base58)
    assert read_all(store, base58) == data
    store.pin(base58)
    assert cid in set(store.pins())
    store.unpin(cid.upper().replace("B", "b", 1))  # base32 upper-case body
    assert cid not in set(store.pins())


def test_car_export_holds_the_whole_dag(store: BlobStore) -> None:
    if not isinstance(store, SupportsCarExport):
        pytest.skip("backend cannot export CAR")
    data = payload(2 * MiB + 1)
    cid = store.put([data])
    out = io.BytesIO()
    store.export_car(cid, out)
    roots, blocks = _read_car(out.getvalue())
    assert roots == [cid]
    assert blocks[0] == cid  # root first
    assert len(blocks) == 4  # root + three raw leaves
    with pytest.raises(BlobNotFound):
        store.export_car(_absent_cid(), io.BytesIO())


@pytest.mark.parametrize("other", ["memory", "local", pytest.param("kubo", marks=pytest.mark.ipfs)])
def test_same_cid_from_every_backend(
    store: BlobStore, other: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = payload(5 * MiB + 77, seed=3)
    with open_store(other, request, tmp_path / "other") as second:
        assert store.put(pieces(data)) == second.put(io.BytesIO(data))


# -- a put that fails leaves nothing behind --------------------------------------------
# Fails on the code before the fix (issue 9, finding 8): a failed put left its blocks in
# the store until a restart or `admin reconcile`, and stores had no push-form writer.


def _leaves(data: bytes) -> list[str]:
    found: list[str] = []
    FileImporter(lambda cid, _block: found.append(str(cid))).write(data)
    return found  # the whole 1 MiB chunks the importer emitted as it went


def test_failed_put_removes_its_blocks(store: BlobStore) -> None:
    data = payload(3 * MiB + 5, seed=11)

    def breaks_off() -> Iterator[bytes]:
        yield data[: 2 * MiB + 100]
        raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError):
        store.put(breaks_off())
    written = _leaves(data[: 2 * MiB + 100])
    assert len(written) == 2
    assert not any(store.has(cid) for cid in written)


def test_aborted_writer_removes_a_finished_blob(store: BlobStore) -> None:
    # As an upload whose bytes don't have the announced CID: finished, then refused.
    data = payload(2 * MiB + 9, seed=12)
    writer = store.writer()
    for piece in pieces(data):
        writer.write(piece)
    cid = writer.finish()
    assert store.has(cid)
    writer.abort()
    assert not store.has(cid)
    assert not any(store.has(leaf) for leaf in _leaves(data))


def test_abort_spares_what_a_pin_reaches(store: BlobStore) -> None:
    kept = payload(2 * MiB, seed=13)
    kept_cid = store.put([kept])
    store.pin(kept_cid)
    writer = store.writer()
    writer.write(kept[:MiB] + payload(MiB + 1, seed=14))  # shares kept's first leaf
    writer.finish()
    writer.abort()
    assert read_all(store, kept_cid) == kept


# -- helpers ------------------------------------------------------------------------------


def _absent_cid() -> str:
    from hygieia.ipfs import CID, RAW

    return str(CID.for_block(RAW, b"hygieia: a block no store was given"))


def _to_base58btc(cid: str) -> str:
    raw = parse_cid(cid).binary
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "z" + "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def _read_car(car: bytes) -> tuple[list[str], list[str]]:
    from hygieia.ipfs import CID
    from hygieia.ipfs._cid import decode_varint

    length, pos = decode_varint(car, 0)
    header = car[pos : pos + length]
    pos += length
    # The header's one root: tag 42 (d8 2a), bytes head, 0x00, CID (36 bytes).
    at = header.index(b"\xd8\x2a") + 2
    cid_len = header[at + 1] - 1
    roots = [str(CID.from_bytes(header[at + 3 : at + 3 + cid_len]))]
    blocks = []
    while pos < len(car):
        length, pos = decode_varint(car, pos)
        section = car[pos : pos + length]
        pos += length
        cid = CID.from_bytes(section[:36])
        assert cid.verify(section[36:])
        blocks.append(str(cid))
    return roots, blocks


def test_block_access_for_scrub(store: BlobStore) -> None:
    """``SupportsBlocks``: raw blocks as stored (the caller hashes them), None for an
    absent one, the pin state of a blob, and corrupt blocks dropped even under a pin."""
    from hygieia.ipfs import CID, RAW, decode_dag_pb
    from hygieia.storage import SupportsBlocks

    assert isinstance(store, SupportsBlocks)
    cid = store.put(pieces(payload(2 * MiB + 5, seed=41)))
    root = parse_cid(cid)
    assert not store.is_pinned(cid)
    store.pin(cid)
    assert store.is_pinned(cid)
    block = store.read_block(root)
    assert block is not None and root.verify(block)
    leaves = decode_dag_pb(block).links
    assert len(leaves) == 3
    leaf = store.read_block(leaves[2])
    assert leaf is not None and leaves[2].verify(leaf) and len(leaf) == 5
    assert store.read_block(CID.for_block(RAW, b"never stored here")) is None
    store.drop_blocks(cid, [leaves[1]])
    assert store.read_block(leaves[1]) is None
    assert store.read_block(leaves[0]) is not None  # only the blocks named go
    store.unpin(cid)
    assert not store.is_pinned(cid)
