"""``KuboBlobStore``: blobs on an IPFS node through the Kubo RPC API, over httpx.

The production backend. Everything streams: a put's UnixFS DAG is built locally, once
for every store taking it (:class:`~hygieia.storage._put.DagWriter`, the same importer
as the embedded stores), and its blocks are sent as a CAR in a hand-framed multipart
body, block by block (chunked transfer encoding, nothing buffered); ``get`` and
``export_car`` stream the response. The node's own import defaults never matter
(Kubo 0.22: CIDv0, 256 KiB chunks, dag-pb leaves, 174 links; js-ipfs: 174 links), so
the CID is the same as the embedded stores' by construction.

``block_sink()`` runs that upload on a thread of its own fed through a short queue, so
the caller pushes blocks as they come without holding a worker thread; a put that fails
or is aborted asks the node to delete the blocks it imported (``block/rm``, which spares
every block a pin reaches).

Every call has a timeout; transport failures become ``StorageUnavailable`` and the
node's "not found" answers become ``BlobNotFound``. CIDs the node prints (js-ipfs
prints base58 ``zb2…``) are decoded and returned in canonical CIDv1 base32.

With ``offline=True`` (the default) reads, pins and ``has`` ask the node to answer
from its own blockstore instead of searching the network, so a missing blob fails
fast instead of hanging until the timeout. ``get`` re-computes the CID of the bytes
it streams (cheap next to the network) and raises ``StorageUnavailable`` at the end
of the stream when they don't match — a truncated or wrong answer never passes as
a whole blob; this assumes blobs imported with this module's parameters, which is
what Hygieia stores.
"""

from __future__ import annotations

import contextlib
import enum
import json
import queue
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import httpx

from hygieia.errors import HygieiaError, StorageUnavailable
from hygieia.ipfs import CHUNK_SIZE, CID, RAW, FileImporter, car_block_prefix, car_header, parse_cid
from hygieia.storage._put import DagWriter
from hygieia.storage.base import BlobNotFound, BlobStore, BlobWriter, BlockSink

__all__ = ["KuboBlobStore"]

#: ``ipfs add`` parameters for the CIDs of :mod:`hygieia.ipfs`, on a node whose
#: balanced layout takes 1024 links per node (files up to 174 MiB match on any node).
ADD_PARAMS: dict[str, str] = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "trickle": "false",
    "wrap-with-directory": "false",
    "pin": "false",
    "progress": "false",
    "quieter": "true",
}

# The CAR header must name a root before the real one is known: the empty raw block.
_PLACEHOLDER_ROOT = CID.for_block(RAW, b"")

# Phrases of Kubo's and js-ipfs's JSON error messages that mean "no such content".
_NOT_FOUND = (
    "not found",
    "could not find",
    "no link named",
    "not present",
    "blockstore: block not found",
    # The node-side deadline of a lookup (`timeout=`): Kubo, then js-ipfs.
    "context deadline exceeded",
    "request timed out",
)


class KuboBlobStore(BlobStore):
    """A ``BlobStore`` on an IPFS node's RPC API at ``api_url`` (e.g. ``http://127.0.0.1:5001``)."""

    def __init__(
        self,
        api_url: str,
        *,
        auth_header: str | None = None,
        timeout: float = 30.0,
        offline: bool = True,
        lookup_timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": auth_header} if auth_header else {}
        self._offline = {"offline": "true"} if offline else {}
        self._client = httpx.Client(
            base_url=api_url.rstrip("/") + "/api/v0/",
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )
        # How long the node may look for a block before `has` says no. Kubo answers at
        # once with offline=true; js-ipfs looks until this deadline even when offline.
        # Kept below our own timeout so the node's answer, not ours, ends the wait.
        lookup = max(0.1, min(lookup_timeout, timeout * 0.8))
        self._lookup_timeout = {"timeout": f"{int(lookup * 1000)}ms"}

    # -- BlobStore -----------------------------------------------------------------
    def writer(self) -> BlobWriter:
        return DagWriter({"": self.block_sink()})

    def block_sink(self) -> BlockSink:
        return _KuboSink(self)

    def _import(self, car: Iterator[bytes]) -> None:
        # The DAG is built here and sent as a CAR (dag/import) rather than with `add`:
        # `add` can't make the layout explicit on every node (js-ipfs hard-codes 174
        # links per node, Kubo before 0.35 too), so above 174 chunks the node's CID
        # would differ from the local store's. The CAR header has to come first, before
        # the root is known, so it names a placeholder root and roots aren't pinned.
        boundary = secrets.token_hex(16)
        self._call(
            "dag/import",
            params={"pin-roots": "false", "stats": "false"},
            content=_multipart(boundary, car),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    def _check_imported(self, root: CID) -> None:
        if not self.has(str(root)):
            raise StorageUnavailable("the IPFS node did not keep the imported blocks")

    def _remove_unpinned(self, cids: list[CID]) -> None:
        """Best effort: the node refuses to delete blocks a pin reaches, and says so
        per block; those answers, like any other failure here, are not errors."""
        for i in range(0, len(cids), _RM_BATCH):
            params = [("arg", str(c)) for c in cids[i : i + _RM_BATCH]]
            with contextlib.suppress(httpx.HTTPError):
                self._client.post("block/rm", params=[*params, ("quiet", "true")])

    def get(self, cid: str) -> Iterator[bytes]:
        parsed = self._require(cid)
        response = self._open("cat", {"arg": parsed, **self._offline})
        return _VerifiedStream(response, parsed)

    def has(self, cid: str) -> bool:
        params = {"arg": str(parse_cid(cid)), **self._offline, **self._lookup_timeout}
        try:
            self._call("block/stat", params=params)
        except BlobNotFound:
            return False
        return True

    def pin(self, cid: str) -> None:
        parsed = self._require(cid)
        self._call("pin/add", params={"arg": parsed, "recursive": "true", **self._offline})

    def unpin(self, cid: str) -> None:
        params = {"arg": str(parse_cid(cid)), "recursive": "true"}
        try:
            self._call("pin/rm", params=params)
        except (BlobNotFound, StorageUnavailable) as exc:
            if "not pinned" not in _node_message(exc):
                raise

    def pins(self) -> Iterator[str]:
        response = self._open("pin/ls", {"type": "recursive", "stream": "true"})
        return self._pin_lines(response)

    # -- block access, for scrub and repair (SupportsBlocks) ------------------------
    def read_block(self, cid: CID) -> bytes | None:
        params = {"arg": str(cid), **self._offline, **self._lookup_timeout}
        try:
            return self._call("block/get", params=params).content
        except BlobNotFound:
            return None

    def drop_blocks(self, root: str, cids: Sequence[CID]) -> None:
        # The node refuses to delete a block a pin reaches: the root's pin goes first
        # (the repair that follows takes it again).
        self.unpin(root)
        for i in range(0, len(cids), _RM_BATCH):
            params = [("arg", str(c)) for c in cids[i : i + _RM_BATCH]]
            try:
                self._client.post("block/rm", params=[*params, ("force", "true")])
            except httpx.HTTPError as exc:
                raise StorageUnavailable("the IPFS node is unreachable") from exc

    def is_pinned(self, cid: str) -> bool:
        params = {"arg": str(parse_cid(cid)), "type": "recursive"}
        try:
            response = self._call("pin/ls", params=params)
        except (BlobNotFound, StorageUnavailable) as exc:
            if "not pinned" in _node_message(exc):
                return False
            raise
        return str(parse_cid(cid)) in set(self._pin_lines_of(response.text))

    def origins(self) -> list[str]:
        """The node's libp2p addresses (``…/p2p/ID``), for a pinning service to fetch
        from; empty when the node listens on none."""
        data = _json(self._call("id", params={}).text)
        addresses = data.get("Addresses")
        if not isinstance(addresses, list):
            return []
        return [a for a in addresses if isinstance(a, str) and "/p2p/" in a]

    def export_car(self, cid: str, out: BinaryIO) -> None:
        """Write the blob's DAG as CARv1 (``dag export``), streamed into ``out``."""
        response = self._open("dag/export", {"arg": self._require(cid), **self._offline})
        try:
            for chunk in response.iter_bytes(CHUNK_SIZE):
                out.write(chunk)
        except httpx.HTTPError as exc:
            raise StorageUnavailable("the IPFS node stopped answering") from exc
        finally:
            response.close()

    def close(self) -> None:
        self._client.close()

    # -- the RPC edge ----------------------------------------------------------------
    def _require(self, cid: str) -> str:
        """The canonical CID, after checking the node holds it: a node that would look
        for it (js-ipfs, or Kubo online) fails fast instead of at the timeout."""
        parsed = str(parse_cid(cid))
        if not self.has(parsed):
            raise BlobNotFound()
        return parsed

    def _call(
        self,
        command: str,
        *,
        params: Mapping[str, str],
        content: Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._client.post(command, params=params, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise StorageUnavailable("the IPFS node is unreachable") from exc
        if response.status_code != 200:
            raise _error(response.status_code, response.text)
        return response

    def _open(self, command: str, params: Mapping[str, str]) -> httpx.Response:
        """A streaming POST whose status is checked before any byte is handed out."""
        try:
            request = self._client.build_request("POST", command, params=params)
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise StorageUnavailable("the IPFS node is unreachable") from exc
        if response.status_code != 200:
            try:
                text = response.read().decode(errors="replace")
            except httpx.HTTPError:
                text = ""
            finally:
                response.close()
            raise _error(response.status_code, text)
        return response

    @staticmethod
    def _pin_lines_of(text: str) -> Iterator[str]:
        for line in text.splitlines():
            if not line.strip():
                continue
            entry = _json(line)
            found = [entry["Cid"]] if isinstance(entry.get("Cid"), str) else []
            keys = entry.get("Keys")
            if isinstance(keys, dict):
                found += keys
            for pinned in found:
                with contextlib.suppress(ValueError):
                    yield str(parse_cid(pinned))

    @staticmethod
    def _pin_lines(response: httpx.Response) -> Iterator[str]:
        try:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                entry = _json(line)
                found: list[str] = []
                if isinstance(entry.get("Cid"), str):  # stream=true: one pin per line
                    found.append(entry["Cid"])
                keys = entry.get("Keys")  # a node that ignores stream=true
                if isinstance(keys, dict):
                    found += keys
                for pinned in found:
                    try:
                        yield str(parse_cid(pinned))
                    except ValueError:
                        continue  # a pin of another kind (a shared node): not a blob
        except httpx.HTTPError as exc:
            raise StorageUnavailable("the IPFS node stopped answering") from exc
        finally:
            response.close()


class _VerifiedStream(Iterator[bytes]):
    """The body of a ``cat``, closed when exhausted or closed, its CID checked at the end."""

    def __init__(self, response: httpx.Response, cid: str) -> None:
        self._response = response
        self._cid = cid
        self._chunks = response.iter_bytes(CHUNK_SIZE)
        self._importer = FileImporter(lambda _cid, _block: None)
        self._done = False

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.close()
            if str(self._importer.finish()) != self._cid:
                raise StorageUnavailable(
                    "the IPFS node sent bytes that don't match the CID"
                ) from None
            raise
        except httpx.HTTPError as exc:
            self.close()
            raise StorageUnavailable("the IPFS node stopped answering") from exc
        self._importer.write(chunk)
        return chunk

    def close(self) -> None:
        self._done = True
        self._response.close()

    def __del__(self) -> None:
        self._response.close()


#: CIDs per ``block/rm`` call (they travel in the query string).
_RM_BATCH = 100


class _Last(enum.Enum):
    """The writer's last word to the sending thread."""

    END = "the blob is complete"
    ABORT = "give the import up"


class _KuboSink(BlockSink):
    """Blocks go through a short queue to a thread that streams them, as a CAR, into
    one ``dag/import`` request.

    The queue is the backpressure: ``put`` waits while the node is behind, never
    while the caller's own input is. The thread is not one of the server's worker
    threads, so a slow node can't starve other requests of them; with several nodes
    each has its thread, and they take the same blocks side by side.
    """

    def __init__(self, store: KuboBlobStore) -> None:
        self._store = store
        self._queue: queue.Queue[tuple[CID, bytes] | _Last] = queue.Queue(maxsize=2)
        #: The blocks handed to the node, for ``abort`` (a CID per MiB).
        self.emitted: list[CID] = []
        self._root: CID | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._heard_last = False
        self._thread = threading.Thread(target=self._run, name="hygieia-ipfs-put", daemon=True)
        self._thread.start()

    def _car(self) -> Iterator[bytes]:
        yield car_header(_PLACEHOLDER_ROOT)
        while True:
            item = self._queue.get()
            if isinstance(item, _Last):
                # Aborted or not, the CAR is ended cleanly and the import completes:
                # an import cut off mid-stream can leave the node holding its GC lock
                # (js-ipfs does), and the block/rm that follows then waits forever.
                self._heard_last = True
                return
            cid, block = item
            yield car_block_prefix(cid, block)
            yield block

    def _run(self) -> None:
        try:
            self._store._import(self._car())
            if self._root is not None:  # not aborted: the node must hold the root now
                self._store._check_imported(self._root)
        except BaseException as exc:
            self._error = exc
            # Keep taking blocks until the writer's last word, so it never waits on a
            # queue nobody reads.
            while not self._heard_last:
                self._heard_last = isinstance(self._queue.get(), _Last)

    def put(self, cid: CID, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((cid, block))
        self.emitted.append(cid)

    def end(self, root: CID) -> None:
        self._root = root
        self._close(_Last.END, wait=False)

    def finish(self, root: CID) -> None:
        if self._root is None:
            self.end(root)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._close(_Last.ABORT, wait=True)
        if self._error is None:
            # Only after an import that completed: after a failed one the node is in
            # trouble, and `ipfs repo gc` will do.
            self._store._remove_unpinned(self.emitted)
        self.emitted = []

    def _close(self, last: _Last, *, wait: bool) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(last)
        if wait:
            self._thread.join()


def _multipart(boundary: str, pieces: Iterator[bytes]) -> Iterator[bytes]:
    yield (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="blob"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from pieces
    yield f"\r\n--{boundary}--\r\n".encode()


def _json(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise StorageUnavailable("the IPFS node sent malformed JSON") from exc
    if not isinstance(value, dict):
        raise StorageUnavailable("the IPFS node sent unexpected JSON")
    return value


def _error(status: int, text: str) -> HygieiaError:
    """Map an RPC error answer: only a JSON error naming missing content is NotFound."""
    message = ""
    try:
        body = json.loads(text)
        if isinstance(body, dict) and isinstance(body.get("Message"), str):
            message = body["Message"]
    except ValueError:
        pass
    exc: HygieiaError
    if status in (401, 403):
        exc = StorageUnavailable("the IPFS node refused the API credentials")
    elif message and any(p in message.lower() for p in _NOT_FOUND):
        exc = BlobNotFound()
    else:
        exc = StorageUnavailable("the IPFS node answered an error")
    exc.add_note(f"IPFS RPC {status}: {(message or text)[:300]}")
    return exc


def _node_message(exc: BaseException) -> str:
    return " ".join(getattr(exc, "__notes__", [])).lower()
