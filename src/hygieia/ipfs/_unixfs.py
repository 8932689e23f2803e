"""A streaming UnixFS file importer and dag-pb reader, written by hand.

No maintained PyPI package computes multi-chunk UnixFS CIDs (``ipfs-cid`` hashes the
whole content, which is right only for a single chunk; ``py-ipfs-cid`` needs a Rust
toolchain), so this module builds the DAG itself, with the import parameters of
Kubo's modern profile and Helia's defaults:

* CIDv1, sha2-256, raw leaves (``bafkrei…``), fixed 1 MiB chunks;
* balanced layout, at most 1024 links per node;
* inner nodes are dag-pb ``PBNode{Links, Data}`` whose Data is a UnixFS ``File``
  with ``filesize`` and one ``blocksizes`` entry per child, links carrying an empty
  ``Name`` and the child's cumulative ``Tsize`` — byte for byte what Kubo writes;
* a file of one chunk is that raw leaf; an empty file is the raw leaf of 0 bytes.

The importer keeps one pending list of links per tree level (≤ 1024 small entries
each), so memory does not depend on the file's size; blocks are handed to a callback
as soon as they are complete, children always before their parents, the root last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hygieia.ipfs._cid import CID, DAG_PB, RAW, decode_varint, encode_varint

CHUNK_SIZE = 1024 * 1024
MAX_LINKS = 1024

_UNIXFS_FILE = 2
_UNIXFS_RAW = 0

EmitBlock = Callable[[CID, bytes], None]


@dataclass(frozen=True, slots=True)
class _Link:
    cid: CID
    tsize: int  # bytes of the child block plus all blocks under it
    filesize: int  # file content bytes under the child


def _field_bytes(number: int, value: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def _field_varint(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def _encode_file_node(children: list[_Link]) -> bytes:
    unixfs = bytearray(_field_varint(1, _UNIXFS_FILE))
    unixfs += _field_varint(3, sum(c.filesize for c in children))
    for child in children:
        unixfs += _field_varint(4, child.filesize)  # blocksizes: repeated, not packed
    node = bytearray()
    for child in children:  # dag-pb canonical order: Links (field 2) before Data (1)
        link = (
            _field_bytes(1, child.cid.binary) + _field_bytes(2, b"") + _field_varint(3, child.tsize)
        )
        node += _field_bytes(2, link)
    node += _field_bytes(1, bytes(unixfs))
    return bytes(node)


class FileImporter:
    """Feed bytes with :meth:`write`, then :meth:`finish` to get the root CID."""

    def __init__(
        self, emit: EmitBlock, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS
    ) -> None:
        # Other chunk sizes and fan-outs exist only so tests can build deep trees from
        # little data and check them against a real node; stores use the defaults.
        if chunk_size < 1 or max_links < 2:
            raise ValueError("chunk_size must be ≥ 1 and max_links ≥ 2")
        self._emit = emit
        self._chunk_size = chunk_size
        self._max_links = max_links
        # The chunk being filled, as pieces of the input: joined once when full, so each
        # byte is copied once whatever the sizes of the writes (immutable ``bytes`` are
        # held by reference; other buffers are copied, as their owner may reuse them).
        self._pending: list[bytes | memoryview] = []
        self._pending_len = 0
        self._levels: list[list[_Link]] = [[]]  # level 0 holds leaves
        self._size = 0
        self._finished = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._finished:
            raise RuntimeError("importer already finished")
        view = memoryview(data).cast("B")
        self._size += len(view)
        chunk = self._chunk_size
        immutable = isinstance(data, bytes)
        while view:
            take = min(chunk - self._pending_len, len(view))
            piece, view = view[:take], view[take:]
            if take == chunk:  # a whole chunk straight from the input
                self._add_leaf(bytes(piece))
                continue
            self._pending.append(piece if immutable else bytes(piece))
            self._pending_len += take
            if self._pending_len == chunk:
                self._add_leaf(self._take_pending())

    def _take_pending(self) -> bytes:
        leaf = b"".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        return leaf

    def finish(self) -> CID:
        if self._finished:
            raise RuntimeError("importer already finished")
        self._finished = True
        if self._pending or not self._levels[0]:
            self._add_leaf(self._take_pending())  # last partial chunk, or the empty file
        level = 0
        while True:
            links = self._levels[level]
            if level == len(self._levels) - 1 and len(links) == 1:
                return links[0].cid
            self._push(level + 1, self._make_parent(links))
            self._levels[level] = []
            level += 1

    def _add_leaf(self, chunk: bytes) -> None:
        cid = CID.for_block(RAW, chunk)
        self._emit(cid, chunk)
        self._push(0, _Link(cid, len(chunk), len(chunk)))

    def _push(self, level: int, link: _Link) -> None:
        if level == len(self._levels):
            self._levels.append([])
        links = self._levels[level]
        if len(links) == self._max_links:
            # A full node only becomes a parent once a further sibling exists: a file of
            # exactly 1024 chunks has that node as its root.
            self._push(level + 1, self._make_parent(links))
            links = self._levels[level] = []
        links.append(link)

    def _make_parent(self, children: list[_Link]) -> _Link:
        block = _encode_file_node(children)
        cid = CID.for_block(DAG_PB, block)
        self._emit(cid, block)
        return _Link(
            cid,
            len(block) + sum(c.tsize for c in children),
            sum(c.filesize for c in children),
        )


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DagPbNode:
    links: list[CID]
    data: bytes | None  # the node's UnixFS file content, if it carries any
    filesize: int | None = None  # UnixFS ``filesize``: content bytes under this node
    blocksizes: tuple[int, ...] = ()  # UnixFS ``blocksizes``: content bytes per link


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    pos = 0
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = decode_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated protobuf field")
            yield number, wire, buf[pos : pos + length]
            pos += length
        else:
            raise ValueError("unsupported protobuf wire type")


def decode_dag_pb(block: bytes) -> DagPbNode:
    """Decode a dag-pb node holding a UnixFS file (or raw) node."""
    links: list[CID] = []
    unixfs: bytes | None = None
    for number, wire, value in _fields(block):
        if number == 2 and wire == 2 and isinstance(value, bytes):
            for lnum, lwire, lvalue in _fields(value):
                if lnum == 1 and lwire == 2 and isinstance(lvalue, bytes):
                    links.append(CID.from_bytes(lvalue))
        elif number == 1 and wire == 2 and isinstance(value, bytes):
            unixfs = value
    if unixfs is None:
        raise ValueError("dag-pb node without UnixFS data")
    kind: int | None = None
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    for number, wire, value in _fields(unixfs):
        if number == 1 and wire == 0 and isinstance(value, int):
            kind = value
        elif number == 2 and wire == 2 and isinstance(value, bytes):
            data = value
        elif number == 3 and wire == 0 and isinstance(value, int):
            filesize = value
        elif number == 4 and wire == 0 and isinstance(value, int):
            blocksizes.append(value)
        elif number == 4 and wire == 2 and isinstance(value, bytes):  # packed, as some write
            pos = 0
            while pos < len(value):
                size, pos = decode_varint(value, pos)
                blocksizes.append(size)
    if kind not in (_UNIXFS_FILE, _UNIXFS_RAW):
        raise ValueError("not a UnixFS file")
    return DagPbNode(links, data, filesize, tuple(blocksizes))
