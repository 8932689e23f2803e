"""Verified retrieval (hygieia.ipfs.fetch) over every block source, and every refusal.

DAGs come from FileImporter (the layout Hygieia stores); deep trees use tiny chunks
and fan-outs, as in test_unixfs.py. The gateway is tests/support/dict_gateway.py (real
HTTP, blocks from a dict, tampered by editing them); Kubo RPC is the real js-ipfs node.
"""

from __future__ import annotations

import io
import random
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hygieia.ipfs import (
    CID,
    DAG_PB,
    RAW,
    BlockSource,
    CarWriter,
    ContentError,
    FileImporter,
    car_block_prefix,
    car_header,
    fetch,
    open_block_source,
    verified_chunks,
)
from hygieia.ipfs._cid import encode_varint
from hygieia.ipfs.fetch import (
    MAX_BLOCK_SIZE,
    CarFileSource,
    GatewayCarSource,
    GatewayRawSource,
    KuboRpcSource,
)
from tests.support.dict_gateway import DictGateway, Section, running_gateway

MiB = 1024 * 1024
Blocks = dict[CID, bytes]


def build(data: bytes, **options: int) -> tuple[CID, Blocks]:
    blocks: Blocks = {}
    importer = FileImporter(blocks.__setitem__, **options)
    importer.write(data)
    return importer.finish(), blocks


def leaves(root: CID, blocks: Blocks) -> list[CID]:
    """The raw leaves in file order."""
    gw = DictGateway(blocks)
    return [c for c, _ in gw.car_sections(root) if c.codec == RAW]


def collect(chunks: Iterator[bytes], got: list[bytes]) -> None:
    for chunk in chunks:
        got.append(chunk)


def data_of(size: int) -> bytes:
    return random.Random(size).randbytes(size)


# -- a hand-made dag-pb encoder, to build nodes that lie ------------------------------


def _field(number: int, wire: int, value: bytes | int) -> bytes:
    key = encode_varint(number << 3 | wire)
    if isinstance(value, int):
        return key + encode_varint(value)
    return key + encode_varint(len(value)) + value


def node(
    links: list[CID], *, filesize: int | None, blocksizes: list[int], data: bytes = b""
) -> tuple[CID, bytes]:
    unixfs = _field(1, 0, 2)
    if data:
        unixfs += _field(2, 2, data)
    if filesize is not None:
        unixfs += _field(3, 0, filesize)
    for size in blocksizes:
        unixfs += _field(4, 0, size)
    body = b"".join(_field(2, 2, _field(1, 2, link.binary) + _field(2, 2, b"")) for link in links)
    body += _field(1, 2, unixfs)
    return CID.for_block(DAG_PB, body), body


# -- sources ------------------------------------------------------------------------


@pytest.fixture
def gateway() -> Iterator[DictGateway]:
    with running_gateway(DictGateway()) as gw:
        yield gw


def write_car(path: Path, root: CID, blocks: Blocks) -> Path:
    with path.open("wb") as out:
        out.write(car_header(root))
        for cid, block in blocks.items():
            out.write(car_block_prefix(cid, block) + block)
    return path


SourceFactory = Callable[[CID, Blocks], BlockSource]


@pytest.fixture(params=["gateway-raw", "gateway-car", "car-file"])
def make_source(
    request: pytest.FixtureRequest, gateway: DictGateway, tmp_path: Path
) -> Iterator[SourceFactory]:
    """A source serving the given blocks (the HTTP ones through the dict gateway)."""
    opened: list[BlockSource] = []

    def make(root: CID, blocks: Blocks) -> BlockSource:
        source: BlockSource
        if request.param == "car-file":
            source = CarFileSource(write_car(tmp_path / f"{root}.car", root, blocks))
        else:
            gateway.blocks.update(blocks)
            source = open_block_source(
                gateway=gateway.url, gateway_car=request.param == "gateway-car"
            )
        opened.append(source)
        return source

    yield make
    for source in opened:
        source.close()


SIZES = [0, 1, MiB, MiB + 1, 3 * MiB + 5]


@pytest.mark.parametrize("size", SIZES, ids=["0B", "1B", "1MiB", "1MiB+1", "3MiB+5"])
def test_every_source_returns_the_file(make_source: SourceFactory, size: int) -> None:
    data = data_of(size)
    root, blocks = build(data)
    chunks = list(verified_chunks(str(root), make_source(root, blocks), size=size))
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= MiB for c in chunks)


@pytest.mark.parametrize(("chunks", "links"), [(9, 3), (28, 3), (100, 3), (1000, 4)])
def test_multi_level_trees(make_source: SourceFactory, chunks: int, links: int) -> None:
    data = data_of(chunks * 4 - 1)
    root, blocks = build(data, chunk_size=4, max_links=links)
    source = make_source(root, blocks)
    got = verified_chunks(root, source, size=len(data), canonical=False)
    assert b"".join(got) == data


def test_a_non_canonical_layout_is_refused_at_the_end(make_source: SourceFactory) -> None:
    """A valid DAG, but not Hygieia's layout: its bytes re-import to another CID."""
    data = data_of(40)
    root, blocks = build(data, chunk_size=4, max_links=3)
    got: list[bytes] = []
    with pytest.raises(ContentError, match="not laid out as Hygieia") as err:
        collect(verified_chunks(root, make_source(root, blocks), size=40), got)
    assert err.value.code == "content_invalid" and err.value.cid == str(root)
    assert b"".join(got) == data  # the caller's temp file is what gets thrown away


def test_wrong_expected_size(make_source: SourceFactory) -> None:
    root, blocks = build(data_of(MiB + 1))
    with pytest.raises(ContentError, match="claims 1048577 bytes where 1048576"):
        list(verified_chunks(root, make_source(root, blocks), size=MiB))
    root, blocks = build(b"abc")
    with pytest.raises(ContentError, match="holds 3 bytes where 4"):
        list(verified_chunks(root, make_source(root, blocks), size=4))


# -- tampering ----------------------------------------------------------------------

TAMPER_SOURCES = ["gateway-raw", "gateway-car"]


def open_gateway(gateway: DictGateway, kind: str, timeout: float = 30.0) -> BlockSource:
    if kind == "gateway-car":
        return GatewayCarSource(gateway.url, timeout=timeout)
    return GatewayRawSource(gateway.url, timeout=timeout)


def three_leaves(gateway: DictGateway) -> tuple[CID, bytes, list[CID]]:
    data = data_of(2 * MiB + 7)
    root, blocks = build(data)
    gateway.blocks.update(blocks)
    return root, data, leaves(root, blocks)


def refused(
    gateway: DictGateway, kind: str, root: CID, size: int, timeout: float = 30.0
) -> tuple[ContentError, bytes]:
    """Run the walk to its error; return it and the bytes yielded before it."""
    got: list[bytes] = []
    with open_gateway(gateway, kind, timeout) as source, pytest.raises(ContentError) as err:
        collect(verified_chunks(root, source, size=size), got)
    return err.value, b"".join(got)


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_flipped_byte(gateway: DictGateway, kind: str) -> None:
    root, data, leaf = three_leaves(gateway)
    block = bytearray(gateway.blocks[leaf[1]])
    block[1000] ^= 1
    gateway.blocks[leaf[1]] = bytes(block)
    err, got = refused(gateway, kind, root, len(data))
    assert err.code == "content_invalid" and err.cid == str(leaf[1])
    assert str(err) == f"block {leaf[1]} does not match its CID"
    assert got == data[:MiB]  # the good first leaf, nothing after the bad one


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_wrong_block_for_a_cid(gateway: DictGateway, kind: str) -> None:
    root, data, leaf = three_leaves(gateway)
    gateway.blocks[leaf[0]] = gateway.blocks[leaf[2]]
    err, got = refused(gateway, kind, root, len(data))
    assert err.code == "content_invalid" and err.cid == str(leaf[0]) and got == b""


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_flipped_byte_in_the_root(gateway: DictGateway, kind: str) -> None:
    root, data, _ = three_leaves(gateway)
    block = bytearray(gateway.blocks[root])
    block[-1] ^= 0x40
    gateway.blocks[root] = bytes(block)
    err, got = refused(gateway, kind, root, len(data))
    assert err.code == "content_invalid" and err.cid == str(root) and got == b""


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_missing_block(gateway: DictGateway, kind: str) -> None:
    root, data, leaf = three_leaves(gateway)
    del gateway.blocks[leaf[2]]
    err, got = refused(gateway, kind, root, len(data))
    assert err.code == "content_unavailable" and err.cid == str(leaf[2])
    assert str(leaf[2]) in str(err)
    assert got == data[: 2 * MiB]


def test_car_missing_a_block_in_the_middle(gateway: DictGateway) -> None:
    root, data, leaf = three_leaves(gateway)
    gateway.car_filter = lambda sections: [s for s in sections if s[0] != leaf[1]]
    err, got = refused(gateway, "gateway-car", root, len(data))
    assert err.code == "content_unavailable"
    assert str(err) == f"the CAR for {root} ended without block {leaf[1]}"
    assert got == data[:MiB]


def test_truncated_car(gateway: DictGateway) -> None:
    root, data, leaf = three_leaves(gateway)
    gateway.car_cut = len(gateway.car_bytes(root)) - 1000  # inside the second leaf
    err, got = refused(gateway, "gateway-car", root, len(data))
    assert err.code == "content_unavailable" and err.cid == str(leaf[1])
    assert "ended in the middle of a block" in str(err)
    assert got == data[:MiB]


def test_car_that_is_not_a_car(gateway: DictGateway) -> None:
    root, data, _ = three_leaves(gateway)
    gateway.car_cut = 3
    err, got = refused(gateway, "gateway-car", root, len(data))
    assert err.code == "content_invalid" and "no valid header" in str(err) and got == b""


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_oversized_block(gateway: DictGateway, kind: str) -> None:
    big = b"\x00" * (MAX_BLOCK_SIZE + 1)
    root = CID.for_block(RAW, big)
    gateway.blocks[root] = big
    err, got = refused(gateway, kind, root, len(big))
    assert err.code == "content_invalid" and "larger than" in str(err) and got == b""


def test_car_extra_reordered_and_deduplicated_blocks(gateway: DictGateway) -> None:
    """Blocks not asked for are dropped; a block sent once (``dups=n``) or out of
    order is still served, from the small cache or as ``?format=raw``."""
    data = bytes(3 * MiB) + b"tail"  # three identical leaves
    root, blocks = build(data)
    stranger, stranger_blocks = build(b"not part of this file")
    gateway.blocks.update(blocks | stranger_blocks)

    def once_each(sections: list[Section]) -> list[Section]:
        return [(stranger, stranger_blocks[stranger]), *dict(sections).items()]

    gateway.car_filter = once_each
    with GatewayCarSource(gateway.url) as source:
        assert b"".join(verified_chunks(root, source, size=len(data))) == data

    data = data_of(4 * MiB)
    root, blocks = build(data)
    gateway.blocks.update(blocks)
    gateway.car_filter = lambda sections: [sections[0], *reversed(sections[1:])]
    gateway.requests.clear()
    with GatewayCarSource(gateway.url) as source:
        assert b"".join(verified_chunks(root, source, size=len(data))) == data
    assert sum("format=raw" in r for r in gateway.requests) == 3  # all but the one it met


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_node_claiming_wrong_sizes(gateway: DictGateway, kind: str) -> None:
    a, b = CID.for_block(RAW, b"aaaa"), CID.for_block(RAW, b"bb")
    gateway.blocks.update({a: b"aaaa", b: b"bb"})
    cases = {
        "filesize": node([a, b], filesize=7, blocksizes=[4, 2]),
        "blocksizes": node([a, b], filesize=6, blocksizes=[3, 3]),
        "count": node([a, b], filesize=6, blocksizes=[6]),
        "zero": node([a, b, a], filesize=6, blocksizes=[4, 2, 0]),
        "no filesize": node([a, b], filesize=None, blocksizes=[4, 2]),
    }
    messages = {
        "filesize": "claims 7 bytes where 6",
        "blocksizes": "holds 4 bytes where 3",  # found when the leaf arrives
        "count": "2 links but 1 blocksizes",
        "zero": "inconsistent blocksizes",
        "no filesize": "links but no filesize",
    }
    for name, (cid, block) in cases.items():
        gateway.blocks[cid] = block
        err, _ = refused(gateway, kind, cid, 6)
        assert err.code == "content_invalid", name
        assert messages[name] in str(err), (name, str(err))


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_a_deep_chain_ends_in_an_error(gateway: DictGateway, kind: str) -> None:
    """Nodes of one link each, 20 deep: consistent sizes, but beyond the depth cap."""
    cid = CID.for_block(RAW, b"x")
    gateway.blocks[cid] = b"x"
    for _ in range(20):
        cid, block = node([cid], filesize=1, blocksizes=[1])
        gateway.blocks[cid] = block
    err, got = refused(gateway, kind, cid, 1)
    assert err.code == "content_invalid" and "deeper than 8 levels" in str(err) and got == b""


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_a_node_served_for_its_own_children_ends_in_an_error(
    gateway: DictGateway, kind: str
) -> None:
    """A gateway answering every CID with the root block (a cycle, as far as it can
    make one: a node can't hash to a CID it contains) is caught at the first child."""
    root, data, leaf = three_leaves(gateway)
    for cid in leaf:
        gateway.blocks[cid] = gateway.blocks[root]
    err, got = refused(gateway, kind, root, len(data))
    assert err.code == "content_invalid" and err.cid == str(leaf[0]) and got == b""


def test_unexpected_codec_in_a_link(gateway: DictGateway) -> None:
    dag_cbor = b"\x01\x71\x12\x20" + bytes(32)
    unixfs = _field(1, 0, 2) + _field(3, 0, 1) + _field(4, 0, 1)
    body = _field(2, 2, _field(1, 2, dag_cbor)) + _field(1, 2, unixfs)
    cid = CID.for_block(DAG_PB, body)
    gateway.blocks[cid] = body
    err, _ = refused(gateway, "gateway-raw", cid, 1)
    assert err.code == "content_invalid" and "unsupported CID codec" in str(err)


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_errors(gateway: DictGateway, kind: str, status: int) -> None:
    root, data, _ = three_leaves(gateway)
    gateway.status = status
    err, got = refused(gateway, kind, root, len(data))
    assert err.code == "content_unavailable" and f"HTTP {status}" in str(err)
    assert str(root) in str(err) and got == b""
    retried = 3 if status == 503 else 1
    assert len(gateway.requests) == retried


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_a_gateway_that_is_not_trustless(gateway: DictGateway, kind: str) -> None:
    root, data, _ = three_leaves(gateway)
    gateway.content_type = "application/octet-stream"
    err, got = refused(gateway, kind, root, len(data))
    assert err.code == "content_unavailable" and got == b""
    assert "is not a trustless gateway (it answered application/octet-stream" in str(err)


def test_a_stalled_gateway_times_out(gateway: DictGateway) -> None:
    root, data, _ = three_leaves(gateway)
    gateway.stall = 2.0
    err, _ = refused(gateway, "gateway-raw", root, len(data), timeout=0.3)
    assert err.code == "content_unavailable" and "ReadTimeout" in str(err)


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_a_dripping_gateway_hits_the_block_deadline(
    gateway: DictGateway, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each piece comes within the read timeout, but the block takes too long in all."""
    monkeypatch.setattr(fetch, "BLOCK_DEADLINE", 0.3)
    root, data, _ = three_leaves(gateway)
    gateway.drip = 0.05
    err, got = refused(gateway, kind, root, len(data))
    assert err.code == "content_unavailable" and "came too slowly" in str(err)
    assert err.cid is not None and got == b""


def test_nothing_listens() -> None:
    root, _ = build(b"abc")
    with GatewayRawSource("http://127.0.0.1:9") as source, pytest.raises(ContentError) as err:
        list(verified_chunks(root, source, size=3))
    assert err.value.code == "content_unavailable" and "ConnectError" in str(err.value)


def test_not_a_cid() -> None:
    with pytest.raises(ContentError, match="is not a CID Hygieia reads"):
        verified_chunks("QmNotACid", BlockSource(), size=0)


def test_open_block_source_takes_exactly_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        open_block_source()
    with pytest.raises(ValueError, match="exactly one"):
        open_block_source(gateway="http://x", ipfs_api="http://y")
    with pytest.raises(ValueError, match="http"):
        open_block_source(gateway="file:///etc")
    assert isinstance(open_block_source(ipfs_api="http://127.0.0.1:1"), KuboRpcSource)


# -- local CAR files ---------------------------------------------------------------


def test_car_file_tampering(tmp_path: Path) -> None:
    data = data_of(2 * MiB + 7)
    root, blocks = build(data)
    leaf = leaves(root, blocks)
    path = write_car(tmp_path / "v.car", root, blocks)
    raw = path.read_bytes()

    bad = bytearray(raw)
    bad[raw.index(blocks[leaf[1]]) + 10] ^= 1
    (tmp_path / "flip.car").write_bytes(bad)
    with CarFileSource(tmp_path / "flip.car") as source, pytest.raises(ContentError) as err:
        list(verified_chunks(root, source, size=len(data)))
    assert err.value.code == "content_invalid" and err.value.cid == str(leaf[1])

    (tmp_path / "cut.car").write_bytes(raw[:-10])
    with pytest.raises(ContentError, match="truncated section"):
        CarFileSource(tmp_path / "cut.car")

    write_car(tmp_path / "hole.car", root, {c: b for c, b in blocks.items() if c != leaf[2]})
    with CarFileSource(tmp_path / "hole.car") as source, pytest.raises(ContentError) as err:
        list(verified_chunks(root, source, size=len(data)))
    assert err.value.code == "content_unavailable" and str(leaf[2]) in str(err.value)

    (tmp_path / "junk.car").write_bytes(b"\x05hello")
    with pytest.raises(ContentError, match="not a CARv1"):
        CarFileSource(tmp_path / "junk.car")
    with pytest.raises(ContentError, match="cannot open"):
        CarFileSource(tmp_path / "absent.car")


def test_car_writer_several_files(tmp_path: Path) -> None:
    files = [b"", b"x", data_of(MiB + 1), data_of(3 * MiB)]
    roots = [build(f)[0] for f in files]
    out = io.BytesIO()
    writer = CarWriter(out, roots)
    for f, root in zip(files, roots, strict=True):
        assert writer.add_file([f[i : i + 65536] for i in range(0, len(f), 65536)]) == root
    assert writer.bytes_written == len(out.getvalue())
    path = tmp_path / "all.car"
    path.write_bytes(out.getvalue())
    with CarFileSource(path) as source:
        for f, root in zip(files, roots, strict=True):
            assert b"".join(verified_chunks(root, source, size=len(f))) == f
    with pytest.raises(ValueError, match="re-imports to"):
        CarWriter(io.BytesIO(), roots).add_file([b"y"], expected=roots[1])


# -- Kubo RPC on the real js-ipfs node -----------------------------------------------


@pytest.mark.ipfs
def test_kubo_rpc_source(ipfs_api: str) -> None:
    files = [b"", b"1", data_of(MiB + 1), data_of(5 * MiB + 3)]
    roots = [build(f)[0] for f in files]
    car = io.BytesIO()
    writer = CarWriter(car, roots)
    for f in files:
        writer.add_file([f])
    r = httpx.post(
        f"{ipfs_api}/api/v0/dag/import",
        files={"file": ("v.car", car.getvalue())},
        timeout=60,
    )
    r.raise_for_status()
    with open_block_source(ipfs_api=ipfs_api) as source:
        for f, root in zip(files, roots, strict=True):
            assert b"".join(verified_chunks(root, source, size=len(f))) == f
    absent, _ = build(b"never added to the node " + data_of(64))
    with KuboRpcSource(ipfs_api, node_timeout="1s") as source, pytest.raises(ContentError) as err:
        list(verified_chunks(absent, source, size=88))
    assert err.value.code == "content_unavailable" and str(absent) in str(err.value)


# -- memory -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TAMPER_SOURCES)
def test_memory_stays_flat(gateway: DictGateway, kind: str) -> None:
    """32 MiB through the gateway with a peak of a few blocks (the window is 4)."""
    size = 32 * MiB
    root, blocks = build(data_of(size))
    gateway.blocks.update(blocks)
    del blocks
    with open_gateway(gateway, kind) as source:
        tracemalloc.start()
        try:
            total = sum(len(c) for c in verified_chunks(root, source, size=size))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert total == size
    assert peak < 12 * MiB  # the gateway thread (same process) sends blocks, not copies


def test_car_writer_memory_stays_flat(tmp_path: Path) -> None:
    """64 MiB into a CAR file with a peak of a few chunks: blocks go straight out."""
    rng = random.Random(7)
    size = 64 * MiB
    with (tmp_path / "big.car").open("wb") as out:
        tracemalloc.start()
        try:
            writer = CarWriter(out, [CID.for_block(RAW, b"placeholder")])
            writer.add_file(rng.randbytes(256 * 1024) for _ in range(size // (256 * 1024)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert writer.bytes_written > size
    assert peak < 4 * MiB
