"""Verified retrieval of a record's ciphertext from IPFS, without the Hygieia server.

Interface (``hygieia offline get``, ``hygieia kit restore``)::

    from hygieia.ipfs import ContentError, open_block_source, verified_chunks

    with open_block_source(gateway=URL) as source:  # or ipfs_api=URL, or car=Path
        for chunk in verified_chunks(cid, source, size=ciphertext_size):
            out.write(chunk)  # to a temp file: renamed only once the loop ended cleanly

* :func:`open_block_source` picks one :class:`BlockSource` (exactly one of ``gateway``,
  ``ipfs_api``, ``car``; ``gateway_car=True`` asks the gateway for one CAR per file
  instead of one ``?format=raw`` request per block).
* :func:`verified_chunks` yields the file's bytes in order, in pieces of at most one
  block, holding at most a few blocks at a time whatever the file's size.
* Every failure is one :class:`ContentError`, whose ``code`` is ``content_unavailable``
  (a block is missing, the source answered with an HTTP error or not at all) or
  ``content_invalid`` (a block does not hash to its CID, the DAG is malformed or
  not Hygieia's layout, a limit was exceeded) and whose message names the CID. Bytes
  already yielded are not retracted: the caller keeps them in a temp file and deletes
  it on error; nothing is yielded after a bad block.

Why by hand: no maintained Python package verifies UnixFS over a trustless gateway
(``@helia/verified-fetch`` is JavaScript), and the pieces needed are small — the CID and
dag-pb code of this package plus an incremental CARv1 reader (below).

What is checked, in the order the DAG is walked (depth first, children in link order):

1. each block's sha2-256 against its CID *before* the block is decoded or used; CIDs
   other than CIDv1/v0 raw or dag-pb with sha2-256 are refused when parsed;
2. each block is at most :data:`MAX_BLOCK_SIZE` (2 MiB, the bitswap/Helia cap);
3. a dag-pb node is a UnixFS ``File`` (or ``Raw``) whose ``filesize`` equals the size
   its parent (or, for the root, the caller) expects, with one ``blocksizes`` entry per
   link, each at least 1, summing with its inline data to ``filesize``; a raw leaf is
   exactly as long as its parent says. So the sum of the bytes yielded is ``size`` and
   the number of blocks is bounded by it; depth is capped at :data:`MAX_DEPTH`;
4. with ``canonical=True`` (the default) the bytes are re-imported with
   :class:`~hygieia.ipfs.FileImporter` as they go, and the CID it computes must equal
   ``cid``. The walk alone already proves the bytes are the ones ``cid`` names; the
   re-import proves ``cid`` also has Hygieia's layout (CIDv1, raw 1 MiB leaves,
   balanced 1024), so a server that re-computes the CID from the bytes (``kit
   restore``) gets the same CID. It is the only check that can fail after the last
   byte was yielded — which is why callers write to a temp file first.

Sources:

* ``GatewayRawSource``: ``GET {gw}/ipfs/{cid}?format=raw`` with
  ``Accept: application/vnd.ipld.raw`` (Trustless Gateway spec), a few blocks fetched
  ahead on a small thread pool (bounded window) so latency overlaps.
* ``GatewayCarSource``: ``GET {gw}/ipfs/{cid}?format=car&dag-scope=all&car-order=dfs&
  car-dups=y``, parsed incrementally: the roots header is ignored, blocks not asked for
  are dropped, the block asked for must come before the stream ends. A gateway that
  sends each block once (``dups=n``) or in another order is still served: a block seen
  earlier is taken from a small cache or, failing that, fetched as ``?format=raw``.
* ``KuboRpcSource``: ``POST {api}/api/v0/block/get?arg=CID`` (Kubo; js-ipfs 0.66 too),
  with the same window as the raw gateway.
* ``CarFileSource``: a local CARv1 file, indexed once (CID → offset, never the block
  bytes), then read by offset.

Each HTTP request has a timeout; transport errors and 429/502/503/504 answers are
retried twice, other HTTP errors are final.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, ClassVar, Self

import httpx

from hygieia.ipfs._cid import CID, DAG_PB, RAW, decode_varint, parse_cid
from hygieia.ipfs._unixfs import FileImporter, decode_dag_pb

__all__ = [
    "MAX_BLOCK_SIZE",
    "MAX_DEPTH",
    "BlockSource",
    "CarFileSource",
    "ContentError",
    "GatewayCarSource",
    "GatewayRawSource",
    "KuboRpcSource",
    "open_block_source",
    "verified_chunks",
]

MAX_BLOCK_SIZE = 2 * 1024 * 1024
#: Levels of dag-pb nodes above the leaves. Hygieia's layout needs 3 for 1 TiB.
MAX_DEPTH = 8
#: Blocks fetched ahead of the one being used (raw gateway, Kubo RPC).
DEFAULT_WINDOW = 4
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: Seconds one block may take in all: the read timeout alone lets a server that sends a
#: byte now and then hold the walk forever.
BLOCK_DEADLINE = 120.0
RETRIES = 2

_MAX_CAR_HEADER = 1 << 20
# Whole sections: the block plus its CID (at most a few dozen bytes).
_MAX_SECTION = MAX_BLOCK_SIZE + 256
_CAR_RECENT_BLOCKS = 4
RAW_MEDIA_TYPE = "application/vnd.ipld.raw"
CAR_MEDIA_TYPE = "application/vnd.ipld.car"
# Answers worth asking again; a Kubo RPC error is a 500 and final.
_RETRY_STATUS = frozenset({429, 502, 503, 504})


class ContentError(Exception):
    """A CID's content could not be produced, verified, from the source.

    ``code`` is ``content_unavailable`` or ``content_invalid``; ``cid`` the CID concerned
    (a block's, or the file's). The message is fixed text plus CIDs and sizes only.
    """

    UNAVAILABLE: ClassVar[str] = "content_unavailable"
    INVALID: ClassVar[str] = "content_invalid"

    def __init__(self, code: str, message: str, *, cid: CID | str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.cid = None if cid is None else str(cid)

    @classmethod
    def unavailable(cls, message: str, cid: CID | str | None = None) -> ContentError:
        return cls(cls.UNAVAILABLE, message, cid=cid)

    @classmethod
    def invalid(cls, message: str, cid: CID | str | None = None) -> ContentError:
        return cls(cls.INVALID, message, cid=cid)


# -- sources -------------------------------------------------------------------------


class BlockSource:
    """Where blocks come from. Returned bytes are *unverified*: the walker hashes them.

    ``session(root)`` opens one file's retrieval; the walker then calls ``get`` for
    every block in depth-first order and ``hint`` with blocks it will ask for soon
    (in that order), so a source may fetch them ahead. Sources are context managers;
    ``close`` releases connections, threads and files.
    """

    def session(self, root: CID) -> _Session:
        return _Session(self)

    def get(self, cid: CID) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Session:
    """One file's retrieval from a source: ``get`` in DFS order, ``hint`` what comes next."""

    def __init__(self, source: BlockSource) -> None:
        self._source = source

    def hint(self, cids: list[CID]) -> None:
        return None

    def get(self, cid: CID) -> bytes:
        return self._source.get(cid)

    def close(self) -> None:
        return None


class _HttpSource(BlockSource):
    """Shared HTTP plumbing: one client, timeouts, limited retries, a prefetch window."""

    def __init__(
        self,
        base: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        window: int = DEFAULT_WINDOW,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = base.rstrip("/")
        self._client = httpx.Client(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=window + 2),
        )
        self._window = max(window, 0)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    #: The media type a 200 must carry (a trustless gateway MUST send it); None: any.
    _media_type: ClassVar[str | None] = None

    def _request(self, cid: CID) -> httpx.Request:
        raise NotImplementedError

    def get(self, cid: CID) -> bytes:
        last = "no answer"
        for _ in range(RETRIES + 1):
            try:
                response = self._client.send(self._request(cid), stream=True)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                continue
            try:
                if response.status_code == 200:
                    _check_media_type(response, self._media_type, self.base, cid)
                    return _read_capped(response.iter_bytes(), cid, self.base)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                continue
            finally:
                response.close()
            last = f"HTTP {response.status_code}"
            if response.status_code not in _RETRY_STATUS:
                break
        raise ContentError.unavailable(
            f"could not fetch block {cid} from {self.base} ({last})", cid
        )

    def session(self, root: CID) -> _Session:
        if self._window == 0:
            return _Session(self)
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._window, thread_name_prefix="ipfs-fetch")
        return _PrefetchSession(self, self._pool, self._window)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._client.close()


class _PrefetchSession(_Session):
    """Fetches up to ``window`` hinted blocks ahead on the source's thread pool."""

    def __init__(self, source: BlockSource, pool: ThreadPoolExecutor, window: int) -> None:
        super().__init__(source)
        self._pool = pool
        self._window = window
        self._ahead: collections.OrderedDict[CID, Future[bytes]] = collections.OrderedDict()

    def hint(self, cids: list[CID]) -> None:
        for cid in cids:
            if len(self._ahead) >= self._window:
                return
            if cid not in self._ahead:
                self._ahead[cid] = self._pool.submit(self._source.get, cid)

    def get(self, cid: CID) -> bytes:
        future = self._ahead.pop(cid, None)
        if future is None:
            return self._source.get(cid)
        return future.result()

    def close(self) -> None:
        for future in self._ahead.values():
            future.cancel()
        for future in self._ahead.values():
            if not future.cancelled():
                future.exception()  # wait: no thread may outlive the session's caller
        self._ahead.clear()


class GatewayRawSource(_HttpSource):
    """Blocks from a trustless gateway, one ``?format=raw`` request each."""

    _media_type = RAW_MEDIA_TYPE

    def _request(self, cid: CID) -> httpx.Request:
        return _raw_request(self.base, cid)


def _raw_request(base: str, cid: CID) -> httpx.Request:
    return httpx.Request(
        "GET",
        f"{base}/ipfs/{cid}",
        params={"format": "raw"},
        headers={"Accept": RAW_MEDIA_TYPE},
    )


class KuboRpcSource(_HttpSource):
    """Blocks from a Kubo RPC API (``/api/v0/block/get``; js-ipfs 0.66 has it too)."""

    def __init__(
        self,
        base: str,
        *,
        node_timeout: str = "20s",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        window: int = DEFAULT_WINDOW,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base, timeout=timeout, window=window, transport=transport)
        self._node_timeout = node_timeout  # the node stops searching the network then

    def _request(self, cid: CID) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self.base}/api/v0/block/get",
            params={"arg": str(cid), "timeout": self._node_timeout},
        )


class GatewayCarSource(_HttpSource):
    """Whole files from a trustless gateway as one streamed CAR each (``?format=car``).

    ``get`` on the source itself (used for blocks the CAR did not repeat) asks for
    ``?format=raw``; a session reads the CAR.
    """

    _media_type = RAW_MEDIA_TYPE

    def __init__(
        self,
        base: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base, timeout=timeout, window=0, transport=transport)

    def _request(self, cid: CID) -> httpx.Request:
        return _raw_request(self.base, cid)

    def session(self, root: CID) -> _Session:
        return _CarStreamSession(self, root)


class _CarStreamSession(_Session):
    def __init__(self, source: GatewayCarSource, root: CID) -> None:
        super().__init__(source)
        self._gateway = source
        self._root = root
        self._response: httpx.Response | None = None
        self._reader: _SectionReader | None = None
        self._seen: set[CID] = set()
        self._recent: collections.OrderedDict[CID, bytes] = collections.OrderedDict()

    def _open(self) -> _SectionReader:
        url = f"{self._gateway.base}/ipfs/{self._root}"
        params = {"format": "car", "dag-scope": "all", "car-order": "dfs", "car-dups": "y"}
        accept = f"{CAR_MEDIA_TYPE}; version=1; order=dfs; dups=y"
        last = "no answer"
        for _ in range(RETRIES + 1):
            try:
                request = self._gateway._client.build_request(
                    "GET", url, params=params, headers={"Accept": accept}
                )
                response = self._gateway._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                continue
            if response.status_code == 200:
                self._response = response
                _check_media_type(response, CAR_MEDIA_TYPE, self._gateway.base, self._root)
                reader = _SectionReader(_guard_stream(response.iter_bytes(), self._root))
                reader.skip_header(self._root)
                return reader
            response.close()
            last = f"HTTP {response.status_code}"
            if response.status_code not in _RETRY_STATUS:
                break
        raise ContentError.unavailable(
            f"could not fetch {self._root} as a CAR from {self._gateway.base} ({last})",
            self._root,
        )

    def get(self, cid: CID) -> bytes:
        cached = self._recent.get(cid)
        if cached is not None:
            return cached
        if cid in self._seen:  # sent once already (dups=n, or another order): ask for it
            return self._gateway.get(cid)
        if self._reader is None:
            self._reader = self._open()
        self._reader.deadline = time.monotonic() + BLOCK_DEADLINE
        self._reader.waiting_for = cid
        while True:
            section = self._reader.next_section(cid)
            if section is None:
                raise ContentError.unavailable(
                    f"the CAR for {self._root} ended without block {cid}", cid
                )
            got, block = section
            if got is None:
                continue  # a block of a codec Hygieia never uses: not part of this file
            self._seen.add(got)
            if got == cid:
                self._remember(got, block)
                return block
            # Not the block wanted now: dropped (dfs order puts needed blocks in order).

    def _remember(self, cid: CID, block: bytes) -> None:
        if cid.codec == RAW:
            self._recent[cid] = block
            while len(self._recent) > _CAR_RECENT_BLOCKS:
                self._recent.popitem(last=False)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        self._recent.clear()


class CarFileSource(BlockSource):
    """Blocks from a local CARv1 file (``hygieia export car``, ``ipfs dag export``).

    Opening reads the file once, section by section, seeking over block bytes, and
    keeps only ``CID → (offset, length)``: about 100 bytes per block in memory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: BinaryIO = path.open("rb")
        except OSError as exc:
            raise ContentError.unavailable(f"cannot open CAR file {path}: {exc.strerror}") from exc
        self._lock = threading.Lock()
        try:
            self._index = _index_car(self._file, path)
        except BaseException:
            self._file.close()
            raise

    def __contains__(self, cid: CID) -> bool:
        return cid in self._index

    def get(self, cid: CID) -> bytes:
        where = self._index.get(cid)
        if where is None:
            raise ContentError.unavailable(f"block {cid} is not in {self.path.name}", cid)
        offset, length = where
        with self._lock:
            self._file.seek(offset)
            block = self._file.read(length)
        if len(block) != length:
            raise ContentError.unavailable(f"{self.path.name} was truncated", cid)
        return block

    def close(self) -> None:
        self._file.close()


def open_block_source(
    gateway: str | None = None,
    ipfs_api: str | None = None,
    car: Path | None = None,
    *,
    gateway_car: bool = False,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
) -> BlockSource:
    """The source for exactly one of ``gateway``, ``ipfs_api`` or ``car``.

    ``gateway_car`` asks the gateway for a CAR per file instead of a request per block.
    """
    given = [x for x in (gateway, ipfs_api, car) if x is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of gateway, ipfs_api or car")
    if car is not None:
        return CarFileSource(Path(car))
    url = gateway or ipfs_api or ""
    if not url.startswith(("http://", "https://")):
        raise ValueError("the gateway or API URL must start with http:// or https://")
    if gateway is not None:
        if gateway_car:
            return GatewayCarSource(url, timeout=timeout)
        return GatewayRawSource(url, timeout=timeout)
    return KuboRpcSource(url, timeout=timeout)


# -- the walk ------------------------------------------------------------------------


def verified_chunks(
    cid: str | CID,
    source: BlockSource,
    *,
    size: int,
    canonical: bool = True,
) -> Iterator[bytes]:
    """Yield the bytes of the UnixFS file ``cid`` (``size`` bytes), every block verified.

    Nothing is fetched before the first ``next()``. Raises :class:`ContentError`; see
    the module docstring for every check, and for why the caller writes to a temp file.
    """
    if isinstance(cid, str):
        try:
            root = parse_cid(cid)
        except ValueError as exc:
            raise ContentError.invalid(f"{cid!r} is not a CID Hygieia reads ({exc})") from exc
    else:
        root = cid
    if size < 0:
        raise ValueError("size must be ≥ 0")
    return _walk(root, source, size, canonical)


def _walk(root: CID, source: BlockSource, size: int, canonical: bool) -> Iterator[bytes]:
    importer = FileImporter(_ignore_block) if canonical else None
    session = source.session(root)
    # The stack holds, per level, the children still to visit as (cid, size, depth),
    # reversed so that pop() gives the next one in link order.
    stack: list[tuple[CID, int, int]] = [(root, size, 0)]
    produced = 0
    try:
        while stack:
            cid, expected, depth = stack.pop()
            session.hint([c for c, _, _ in reversed(stack[-DEFAULT_WINDOW:])])
            block = session.get(cid)
            if len(block) > MAX_BLOCK_SIZE:
                raise ContentError.invalid(f"block {cid} is larger than 2 MiB", cid)
            if not cid.verify(block):
                raise ContentError.invalid(f"block {cid} does not match its CID", cid)
            if cid.codec == RAW:
                if len(block) != expected:
                    raise ContentError.invalid(
                        f"block {cid} holds {len(block)} bytes where {expected} were expected",
                        cid,
                    )
                data: bytes | None = block
            elif cid.codec == DAG_PB:
                data = _open_node(cid, block, expected, depth, stack)
            else:  # parse_cid/CID.from_bytes accept nothing else
                raise ContentError.invalid(f"block {cid} has a codec Hygieia never uses", cid)
            if data:
                produced += len(data)
                if importer is not None:
                    importer.write(data)
                yield data
        if produced != size:  # unreachable given the per-node checks; kept as a backstop
            raise ContentError.invalid(f"{root} holds {produced} bytes, not {size}", root)
        if importer is not None and importer.finish() != root:
            raise ContentError.invalid(
                f"{root} is not laid out as Hygieia stores files (its bytes re-import "
                "to another CID)",
                root,
            )
    finally:
        session.close()


def _open_node(
    cid: CID, block: bytes, expected: int, depth: int, stack: list[tuple[CID, int, int]]
) -> bytes | None:
    """Check a verified dag-pb node against its expected size; push its children."""
    try:
        node = decode_dag_pb(block)
    except ValueError as exc:
        raise ContentError.invalid(f"block {cid} is not a UnixFS file node ({exc})", cid) from exc
    inline = len(node.data or b"")
    if node.filesize is None and not node.links:
        node_size = inline  # a UnixFS node may leave filesize out when it has no links
    elif node.filesize is None:
        raise ContentError.invalid(f"node {cid} has links but no filesize", cid)
    else:
        node_size = node.filesize
    if node_size != expected:
        raise ContentError.invalid(
            f"node {cid} claims {node_size} bytes where {expected} were expected", cid
        )
    if len(node.blocksizes) != len(node.links):
        raise ContentError.invalid(
            f"node {cid} has {len(node.links)} links but {len(node.blocksizes)} blocksizes", cid
        )
    if inline + sum(node.blocksizes) != node_size or any(s < 1 for s in node.blocksizes):
        raise ContentError.invalid(f"node {cid} has inconsistent blocksizes", cid)
    if node.links and depth + 1 > MAX_DEPTH:
        raise ContentError.invalid(f"node {cid} is nested deeper than {MAX_DEPTH} levels", cid)
    stack.extend(
        (child, child_size, depth + 1)
        for child, child_size in zip(reversed(node.links), reversed(node.blocksizes), strict=True)
    )
    return node.data


def _ignore_block(cid: CID, block: bytes) -> None:
    return None


# -- CAR reading ---------------------------------------------------------------------


def _check_media_type(response: httpx.Response, expected: str | None, base: str, cid: CID) -> None:
    """A gateway that ignores ``format=`` answers with the file itself (js-ipfs 0.66's
    does): say so, rather than report every block as corrupt."""
    if expected is None:
        return
    got = response.headers.get("content-type", "")
    if got.split(";")[0].strip().lower() != expected:
        raise ContentError.unavailable(
            f"{base} is not a trustless gateway (it answered {got or 'no Content-Type'} "
            f"for {expected}, asked for {cid})",
            cid,
        )


def _read_capped(chunks: Iterator[bytes], cid: CID, base: str) -> bytes:
    deadline = time.monotonic() + BLOCK_DEADLINE
    buf = bytearray()
    for piece in chunks:
        buf += piece
        if len(buf) > MAX_BLOCK_SIZE:
            raise ContentError.invalid(f"block {cid} is larger than 2 MiB", cid)
        if time.monotonic() > deadline:
            raise ContentError.unavailable(f"block {cid} came too slowly from {base}", cid)
    return bytes(buf)


def _guard_stream(chunks: Iterator[bytes], root: CID) -> Iterator[bytes]:
    """Map transport errors in the middle of a streamed body to ``ContentError``."""
    try:
        yield from chunks
    except httpx.HTTPError as exc:
        raise ContentError.unavailable(
            f"the CAR for {root} was cut off ({type(exc).__name__})", root
        ) from exc


class _SectionReader:
    """CARv1 sections from an iterator of byte pieces, holding at most one section."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buf = bytearray()
        self._pos = 0
        self.deadline = float("inf")  # for the block being waited for
        self.waiting_for: CID | None = None

    def _fill(self, n: int) -> bool:
        """Make ``n`` bytes available from ``_pos``; False if the stream ends first."""
        while len(self._buf) - self._pos < n:
            piece = next(self._pieces, None)
            if piece is None:
                return False
            if time.monotonic() > self.deadline:
                raise ContentError.unavailable(
                    f"the CAR came too slowly (waiting for {self.waiting_for})", self.waiting_for
                )
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += piece
        return True

    def _varint(self) -> int | None:
        """A varint, or None at a clean end of the stream."""
        if not self._fill(1):
            return None
        for width in range(1, 11):
            if not self._fill(width):
                raise ValueError("truncated varint")
            if not self._buf[self._pos + width - 1] & 0x80:
                with memoryview(self._buf) as view:
                    value, end = decode_varint(view, self._pos)
                self._pos = end
                return value
        raise ValueError("varint too long")

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise ValueError("truncated section")
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return out

    def skip_header(self, where: object) -> None:
        try:
            length = self._varint()
            if length is None or not 0 < length <= _MAX_CAR_HEADER:
                raise ValueError("bad header length")
            header = self._take(length)
        except ValueError as exc:
            raise ContentError.invalid(f"the CAR for {where} has no valid header ({exc})") from exc
        if b"\x67version\x01" not in header:  # the roots are ignored, as the spec says
            raise ContentError.invalid(f"the CAR for {where} is not a CARv1")

    def next_section(self, wanted: CID) -> tuple[CID | None, bytes] | None:
        """The next ``(cid, block)``; cid None for a block of a codec Hygieia never
        uses; None at the end of the stream."""
        try:
            length = self._varint()
            if length is None:
                return None
            if not 0 < length <= _MAX_SECTION:
                raise ContentError.invalid(
                    f"a CAR section of {length} bytes (before {wanted}) is larger than a block "
                    "may be",
                    wanted,
                )
            section = self._take(length)
        except ValueError as exc:
            raise ContentError.unavailable(
                f"the CAR ended in the middle of a block (waiting for {wanted}): {exc}", wanted
            ) from exc
        try:
            cid_len = _cid_length(section)
        except ValueError as exc:
            raise ContentError.invalid(f"a CAR section has a malformed CID ({exc})") from exc
        try:
            cid: CID | None = CID.from_bytes(section[:cid_len])
        except ValueError:
            cid = None
        return cid, section[cid_len:]


def _cid_length(buf: bytes) -> int:
    """Length of the binary CID at the start of ``buf`` (CIDv0 or CIDv1)."""
    if len(buf) >= 2 and buf[0] == 0x12 and buf[1] == 0x20:
        return 34
    _, pos = decode_varint(buf, 0)  # version
    _, pos = decode_varint(buf, pos)  # codec
    _, pos = decode_varint(buf, pos)  # multihash code
    digest_len, pos = decode_varint(buf, pos)
    if pos + digest_len > len(buf):
        raise ValueError("truncated CID")
    return pos + digest_len


def _index_car(file: BinaryIO, path: Path) -> dict[CID, tuple[int, int]]:
    index: dict[CID, tuple[int, int]] = {}
    name = path.name
    file.seek(0, 2)
    end = file.tell()
    file.seek(0)

    def varint() -> int | None:
        value = shift = 0
        for i in range(10):
            byte = file.read(1)
            if not byte:
                if i == 0:
                    return None
                raise ContentError.invalid(f"{name} ends in the middle of a length")
            value |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return value
            shift += 7
        raise ContentError.invalid(f"{name} has a malformed length")

    length = varint()
    if length is None or not 0 < length <= _MAX_CAR_HEADER:
        raise ContentError.invalid(f"{name} is not a CAR file")
    header = file.read(length)
    if len(header) != length or b"\x67version\x01" not in header:
        raise ContentError.invalid(f"{name} is not a CARv1 file")
    while True:
        length = varint()
        if length is None:
            return index
        start = file.tell()
        if not 0 < length <= _MAX_SECTION or start + length > end:
            raise ContentError.invalid(f"{name} has a malformed or truncated section at {start}")
        head = file.read(min(length, 64))
        try:
            cid_len = _cid_length(head)
            cid: CID | None = CID.from_bytes(head[:cid_len])
        except ValueError:
            cid = None  # not a block Hygieia makes: never asked for
            cid_len = 0
        if cid is not None:
            index.setdefault(cid, (start + cid_len, length - cid_len))
        file.seek(start + length)
