"""A tiny trustless gateway serving blocks from a dict: the outer-edge stand-in for tests.

It answers ``GET /ipfs/{cid}?format=raw`` (the block, or 404) and
``GET /ipfs/{cid}?format=car`` (a CARv1 of the DAG in DFS order, every block once per
visit, as ``car-dups=y`` asks) over real HTTP on 127.0.0.1, so the client's
timeouts, streaming and status handling are exercised for real. Tests tamper by
editing ``blocks`` (a flipped byte, a wrong block for a CID), or by setting
``car_filter`` (a function over the list of CAR sections: drop one, reorder, dedupe),
``car_cut`` (truncate the CAR body to that many bytes), ``status`` (answer every
request with that HTTP status), ``content_type`` (another media type on a 200),
``stall`` (sleep that long before answering) or ``drip`` (pause between pieces).

The real node (a Helia trustless gateway, tests/support/helia_node.py) serves the same
URLs; tests written against :class:`DictGateway` switch by taking the URL from that
fixture and tampering through its proxy instead.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from hygieia.ipfs import CID, RAW, car_block_prefix, car_header, decode_dag_pb, parse_cid

Section = tuple[CID, bytes]


class DictGateway:
    def __init__(self, blocks: dict[CID, bytes] | None = None) -> None:
        self.blocks: dict[CID, bytes] = dict(blocks or {})
        self.car_filter: Callable[[list[Section]], list[Section]] | None = None
        self.car_cut: int | None = None
        self.status: int | None = None
        self.stall = 0.0
        self.drip = 0.0  # a pause between 64 KiB pieces of every body
        self.content_type: str | None = None  # overrides the media type of a 200
        self.requests: list[str] = []
        self.url = ""

    def car_sections(self, root: CID) -> list[Section]:
        """The DAG under ``root`` in DFS pre-order; stops (cut short) at a missing block."""
        out: list[Section] = []

        def visit(cid: CID) -> bool:
            block = self.blocks.get(cid)
            if block is None:
                return False
            out.append((cid, block))
            if cid.codec == RAW:
                return True
            try:
                links = decode_dag_pb(block).links
            except ValueError:
                return True
            return all(visit(child) for child in links)

        visit(root)
        return out

    def car_pieces(self, root: CID) -> list[bytes]:
        """The CAR response as pieces (the blocks themselves, not copies), cut if asked."""
        sections = self.car_sections(root)
        if self.car_filter is not None:
            sections = self.car_filter(sections)
        pieces = [car_header(root)]
        for cid, block in sections:
            pieces += (car_block_prefix(cid, block), block)
        if self.car_cut is not None:
            kept, left = [], self.car_cut
            for piece in pieces:
                kept.append(piece[:left])
                left -= len(kept[-1])
            pieces = kept
        return pieces

    def car_bytes(self, root: CID) -> bytes:
        return b"".join(self.car_pieces(root))


def _handler(gateway: DictGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each small answer waits for a delayed ACK

        def log_message(self, format: str, *args: object) -> None:
            return None

        def _send(self, status: int, body: bytes | list[bytes], content_type: str) -> None:
            pieces = [body] if isinstance(body, bytes) else body
            if status == 200 and gateway.content_type is not None:
                content_type = gateway.content_type
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(sum(len(p) for p in pieces)))
            self.end_headers()
            for piece in pieces:
                if not gateway.drip:
                    self.wfile.write(piece)
                    continue
                for i in range(0, len(piece), 65536):
                    time.sleep(gateway.drip)
                    self.wfile.write(piece[i : i + 65536])

        def do_GET(self) -> None:
            gateway.requests.append(self.path)
            if gateway.stall:
                time.sleep(gateway.stall)
            if gateway.status is not None:
                self._send(gateway.status, b"error", "text/plain")
                return
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if not parts.path.startswith("/ipfs/"):
                self._send(404, b"not found", "text/plain")
                return
            try:
                cid = parse_cid(parts.path.removeprefix("/ipfs/"))
            except ValueError:
                self._send(400, b"bad cid", "text/plain")
                return
            fmt = query.get("format", [""])[0]
            if fmt == "raw":
                block = gateway.blocks.get(cid)
                if block is None:
                    self._send(404, b"block not found", "text/plain")
                else:
                    self._send(200, block, "application/vnd.ipld.raw")
            elif fmt == "car":
                if cid not in gateway.blocks:
                    self._send(404, b"block not found", "text/plain")
                else:
                    self._send(200, gateway.car_pieces(cid), "application/vnd.ipld.car")
            else:
                self._send(406, b"only trustless responses", "text/plain")

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        return None  # a client that hangs up after a refused block is expected here


@contextlib.contextmanager
def running_gateway(gateway: DictGateway) -> Iterator[DictGateway]:
    """Serve ``gateway`` on a free loopback port; ``gateway.url`` is set meanwhile."""
    server = _QuietServer(("127.0.0.1", 0), _handler(gateway))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
