"""CARv1 framing: a DAG-CBOR header naming the roots, then length-prefixed blocks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import IO

from hygieia.ipfs._cid import CID, RAW, encode_varint
from hygieia.ipfs._unixfs import FileImporter


def car_header(*roots: CID) -> bytes:
    """``varint(len) || DAG-CBOR {"roots": [root, ...], "version": 1}``.

    At least one root: go-car refuses a CARv1 without roots.
    """
    if not roots:
        raise ValueError("a CAR needs at least one root")
    # Keys in DAG-CBOR canonical (length-first) order; a CID is CBOR tag 42 over a byte
    # string holding 0x00 (the identity multibase prefix) and the binary CID.
    body = bytearray(b"\xa2" + b"\x65roots" + _cbor_head(0x80, len(roots)))
    for root in roots:
        cid_bytes = b"\x00" + root.binary
        body += b"\xd8\x2a" + _cbor_head(0x40, len(cid_bytes)) + cid_bytes
    body += b"\x67version\x01"
    return encode_varint(len(body)) + bytes(body)


def car_block_prefix(cid: CID, block: bytes) -> bytes:
    """What goes before a block's bytes in a CAR section: ``varint(len) || cid``."""
    cid_bytes = cid.binary
    return encode_varint(len(cid_bytes) + len(block)) + cid_bytes


def _cbor_head(major: int, length: int) -> bytes:
    """A CBOR head of ``major`` type (0x40 byte string, 0x80 array) for ``length``."""
    if length < 24:
        return bytes((major | length,))
    if length < 0x100:
        return bytes((major | 24, length))
    if length < 0x10000:
        return bytes((major | 25,)) + length.to_bytes(2, "big")
    return bytes((major | 26,)) + length.to_bytes(4, "big")


class CarWriter:
    """A CARv1 of several UnixFS files, written as it goes (``hygieia export car``).

    The header names every root up front, so the roots are given first; then
    :meth:`add_file` re-imports each file's bytes with :class:`FileImporter` and writes
    its blocks as the importer emits them (children before parents, the root last),
    so memory holds one chunk, whatever the sizes. A block already written (by an
    earlier file) is not written again; only the set of CIDs written is kept.
    """

    def __init__(self, out: IO[bytes], roots: Sequence[CID]) -> None:
        self._out = out
        self._written: set[CID] = set()
        self.bytes_written = 0
        unique = list(dict.fromkeys(roots))
        if not unique:
            # An empty vault: go-car needs a root, so name the empty file and include it.
            empty = CID.for_block(RAW, b"")
            self._write(car_header(empty))
            self._emit(empty, b"")
        else:
            self._write(car_header(*unique))

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self.bytes_written += len(data)

    def _emit(self, cid: CID, block: bytes) -> None:
        if cid in self._written:
            return
        self._written.add(cid)
        self._write(car_block_prefix(cid, block))
        self._write(block)

    def add_file(self, chunks: Iterable[bytes], *, expected: CID | None = None) -> CID:
        """Import ``chunks`` as one UnixFS file, write its blocks; return its CID.

        ``ValueError`` if ``expected`` is given and the CID differs: the blocks are
        already written, so the caller throws the partial CAR away.
        """
        importer = FileImporter(self._emit)
        for chunk in chunks:
            importer.write(chunk)
        cid = importer.finish()
        if expected is not None and cid != expected:
            raise ValueError(f"the content re-imports to {cid}, not {expected}")
        return cid
