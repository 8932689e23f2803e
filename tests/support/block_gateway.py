"""A small IPFS trustless gateway for tests: raw blocks only, from a block directory.

``GET /ipfs/{cid}?format=raw`` (or ``Accept: application/vnd.ipld.raw``) answers the
block's bytes, as the Trustless Gateway spec says; any other request is 400, a block it
doesn't have 404. Blocks come from a ``LocalBlobStore``'s ``blocks/blocks/`` directory (files
named by their canonical CIDv1), so it keeps serving after the Hygieia server that
wrote them is stopped. ``Access-Control-Allow-Origin: *`` lets a page on another origin
read them (public gateways send it too).

It can misbehave on purpose, per CID (``tamper``): ``flip`` a byte, serve ``another``
block's bytes, or answer ``missing`` (404); clients must refuse all three. It records
the CIDs asked for (``asked``).

This stands in for the Helia node's gateway (tests/support/helia_node.py) until that
fixture is there; tests take any object with ``url``, ``tamper`` and ``asked``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hygieia.ipfs import parse_cid

RAW_TYPE = "application/vnd.ipld.raw"


@dataclass
class BlockGateway:
    root: Path
    url: str = ""
    tamper: dict[str, tuple[str, str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def block(self, cid: str) -> bytes | None:
        """The block named ``cid`` (any spelling) from the directory, or None."""
        try:
            name = str(parse_cid(cid))
        except ValueError:
            return None
        for path in self.root.rglob(name):
            return path.read_bytes()
        return None

    def answer(self, cid: str) -> bytes | None:
        """What this gateway serves for ``cid``, tampering included."""
        name = str(parse_cid(cid))
        mode, arg = self.tamper.get(name, ("", ""))
        if mode == "missing":
            return None
        if mode == "another":
            return self.block(arg)
        data = self.block(name)
        if data is not None and mode == "flip":
            pos = int(arg or len(data) // 2) % max(len(data), 1)
            data = data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]
        return data


def _handler(gateway: BlockGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test reads `asked`

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_OPTIONS(self) -> None:
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "Accept")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            raw = query.get("format") == ["raw"] or RAW_TYPE in self.headers.get("Accept", "")
            segments = parts.path.strip("/").split("/")
            if len(segments) != 2 or segments[0] != "ipfs" or not raw:
                self._send(400, b"only /ipfs/{cid}?format=raw is served here")
                return
            cid = segments[1]
            gateway.asked.append(cid)
            try:
                data = gateway.answer(cid)
            except ValueError:
                self._send(400, b"not a CID")
                return
            if data is None:
                self._send(404, b"block not found")
                return
            self._send(200, data, RAW_TYPE)

        do_HEAD = do_GET

    return Handler


@contextmanager
def serving_blocks(root: Path) -> Iterator[BlockGateway]:
    """Serve the blocks under ``root`` on 127.0.0.1 (a free port) until the block ends."""
    gateway = BlockGateway(root=root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gateway))
    server.daemon_threads = True
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
