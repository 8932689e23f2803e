"""CARv1 framing: a DAG-CBOR header naming the roots, then length-prefixed blocks."""

from __future__ import annotations

from hygieia.ipfs._cid import CID, encode_varint


def car_header(root: CID) -> bytes:
    """``varint(len) || DAG-CBOR {"roots": [root], "version": 1}``."""
    # Keys in DAG-CBOR canonical (length-first) order; a CID is CBOR tag 42 over a byte
    # string holding 0x00 (the identity multibase prefix) and the binary CID.
    cid_bytes = b"\x00" + root.binary
    body = (
        b"\xa2"
        + b"\x65roots"
        + b"\x81\xd8\x2a"
        + _cbor_bytes_head(len(cid_bytes))
        + cid_bytes
        + b"\x67version\x01"
    )
    return encode_varint(len(body)) + body


def car_block_prefix(cid: CID, block: bytes) -> bytes:
    """What goes before a block's bytes in a CAR section: ``varint(len) || cid``."""
    cid_bytes = cid.binary
    return encode_varint(len(cid_bytes) + len(block)) + cid_bytes


def _cbor_bytes_head(length: int) -> bytes:
    if length < 24:
        return bytes((0x40 | length,))
    if length < 256:
        return bytes((0x58, length))
    return bytes((0x59,)) + length.to_bytes(2, "big")
