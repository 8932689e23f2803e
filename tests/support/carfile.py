"""Read a CARv1 file in tests and check it: every block hashed against its CID, every
root's UnixFS DAG complete. Small on purpose (the header's DAG-CBOR is one fixed shape:
``{"roots": [CID…], "version": 1}``), so a test can tell what a writer produced without
trusting the writer's own reader."""

from __future__ import annotations

from pathlib import Path

from hygieia.ipfs import CID, RAW, decode_dag_pb
from hygieia.ipfs._cid import decode_varint


def _cbor_head(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(major type, argument, next position) of the CBOR item at ``pos``."""
    first = buf[pos]
    major, info = first >> 5, first & 31
    pos += 1
    if info < 24:
        return major, info, pos
    size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
    return major, int.from_bytes(buf[pos : pos + size], "big"), pos + size


def _header(buf: bytes) -> tuple[list[CID], int]:
    major, count, pos = _cbor_head(buf, 0)
    assert major == 5, "CAR header is not a map"
    roots: list[CID] = []
    version = None
    for _ in range(count):
        major, n, pos = _cbor_head(buf, pos)
        assert major == 3
        key = buf[pos : pos + n].decode()
        pos += n
        if key == "version":
            major, version, pos = _cbor_head(buf, pos)
            assert major == 0
        elif key == "roots":
            major, items, pos = _cbor_head(buf, pos)
            assert major == 4
            for _ in range(items):
                major, tag, pos = _cbor_head(buf, pos)
                assert (major, tag) == (6, 42), "a root is not a CID (tag 42)"
                major, n, pos = _cbor_head(buf, pos)
                assert major == 2 and buf[pos] == 0
                roots.append(CID.from_bytes(buf[pos + 1 : pos + n]))
                pos += n
        else:
            raise AssertionError(f"unexpected CAR header key {key!r}")
    assert pos == len(buf), "trailing bytes in the CAR header"
    assert version is not None
    return roots, version


def read_car(path: Path) -> tuple[list[CID], dict[str, bytes]]:
    """The roots and the blocks (by canonical CID) of a CARv1, each block verified."""
    data = path.read_bytes()
    length, pos = decode_varint(data, 0)
    roots, version = _header(data[pos : pos + length])
    assert version == 1
    pos += length
    blocks: dict[str, bytes] = {}
    while pos < len(data):
        length, pos = decode_varint(data, pos)
        section = data[pos : pos + length]
        pos += length
        cid_len = 34 if section[:2] == b"\x12\x20" else None
        if cid_len is None:  # CIDv1: version, codec, hash code, digest length, digest
            p = 0
            for _ in range(4):
                _, p = decode_varint(section, p)
            cid_len = p + 32
        cid = CID.from_bytes(section[:cid_len])
        block = section[cid_len:]
        assert cid.verify(block), f"block {cid} does not match its CID"
        blocks[str(cid)] = block
    return roots, blocks


def dag_content(root: CID, blocks: dict[str, bytes]) -> bytes:
    """A UnixFS file's bytes from ``blocks``; AssertionError if a block is missing."""
    block = blocks.get(str(root))
    assert block is not None, f"block {root} is missing"
    if root.codec == RAW:
        return block
    node = decode_dag_pb(block)
    return (node.data or b"") + b"".join(dag_content(c, blocks) for c in node.links)


def dag_blocks(root: CID, blocks: dict[str, bytes]) -> set[str]:
    """The CIDs of every block under ``root`` (root included)."""
    out = {str(root)}
    if root.codec != RAW:
        for child in decode_dag_pb(blocks[str(root)]).links:
            out |= dag_blocks(child, blocks)
    return out
