"""A lying Trustless Gateway for tests: a proxy that tampers with a real gateway's answers.

Tests of verified retrieval (CLI, web) need a gateway that serves *wrong* bytes with a
straight face. This proxy sits on 127.0.0.1 in front of a real one (the Helia test
node, ``tests/support/helia_node.py``), forwards ``GET``/``HEAD``/``OPTIONS`` and
rewrites the answers that match a rule:

* ``flip``       one byte of a block is inverted (raw: the body; CAR: the block's data,
                 CID label kept), so the block no longer hashes to its CID;
* ``substitute`` a different, itself valid block is served for the CID (raw: the body;
                 CAR: the section keeps the CID label, carries the other bytes);
* ``truncate``   a CAR is cut just before the section of ``cid`` or, without ``cid``,
                 after ``keep`` whole blocks (``cut_inside=True`` also sends half of
                 that next section); a raw body is cut to half its length;
* ``drop``       a CAR omits the block's section; a raw request answers 404.

Targeting: ``Tamper.cid`` names the block to tamper with (a raw request for it, or
the section carrying it inside any CAR), ``None`` meaning the first block of each
matching response (a rule changes at most one block per response); ``Tamper.root``
limits a rule to requests for ``/ipfs/{root}``; ``Tamper.format`` to ``"raw"`` or
``"car"`` answers; ``Tamper.times`` to the first N responses it changes. Every
request is logged in ``TamperGateway.requests`` with whether it was tampered, so a
test can check its lie was actually served.

Usage::

    with running_tamper_gateway(helia.gateway_url) as gw:
        gw.add(Tamper("flip", cid=leaf_cid))
        ... point the client at gw.url ...
        assert any(r.tampered for r in gw.requests)

CAR answers are rewritten section by section as they stream (memory stays at one
block); tampered answers are sent ``Connection: close`` without a length. Written by
hand: no proxy library offers rewriting CAR sections, and the standard library's
threading HTTP server is enough for tests.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

import httpx

from hygieia.ipfs import CID, normalize_cid

__all__ = ["LoggedRequest", "Tamper", "TamperGateway", "running_tamper_gateway"]

Mode = Literal["flip", "substitute", "truncate", "drop"]

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


@dataclass
class Tamper:
    """One rule: what to do, to which block, in which answers, how many times."""

    mode: Mode
    cid: str | None = None
    root: str | None = None
    format: Literal["raw", "car"] | None = None
    block: bytes | None = None  # substitute: the bytes served instead
    offset: int | None = None  # flip: which byte of the block (default: the middle one)
    keep: int = 1  # truncate: whole CAR blocks kept
    cut_inside: bool = False  # truncate: also send half of the next section
    times: int | None = None
    used: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.mode == "substitute" and self.block is None:
            raise ValueError("substitute needs block=")
        self.cid = normalize_cid(self.cid) if self.cid else None
        self.root = normalize_cid(self.root) if self.root else None


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int
    tampered: bool


class _Reader:
    """Exact reads over an iterator of chunks (the upstream body)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def varint(self) -> int | None:
        value, shift = 0, 0
        while True:
            byte = self.read(1)
            if not byte:
                return None
            value |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return value
            shift += 7


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _cid_length(section: bytes) -> int:
    """Length of the binary CID at the start of a CAR section (v0 or v1)."""
    if section[:2] == b"\x12\x20":
        return 34
    pos = 0
    for _ in range(3):  # version, codec, multihash code
        while section[pos] & 0x80:
            pos += 1
        pos += 1
    length = 0
    shift = 0
    while True:
        byte = section[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return pos + length


def _cid_text(binary: bytes) -> str:
    try:
        return str(CID.from_bytes(binary))
    except ValueError:
        return binary.hex()  # a CID this project doesn't parse: never a rule's target


def _flip(block: bytes, offset: int | None) -> bytes:
    if not block:
        return b"\x00"  # nothing to flip in an empty block: one byte too many
    at = len(block) // 2 if offset is None else offset % len(block)
    return block[:at] + bytes((block[at] ^ 0xFF,)) + block[at + 1 :]


class TamperGateway:
    """The proxy; see the module docstring. ``url`` is its base URL."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[Tamper] = []
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add(self, rule: Tamper) -> Tamper:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    @property
    def tampered(self) -> list[LoggedRequest]:
        return [r for r in self.requests if r.tampered]

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    # -- rule matching ---------------------------------------------------------------
    def _rules_for(self, root: str | None, fmt: str) -> list[Tamper]:
        with self._lock:
            return [
                r
                for r in self.rules
                if (r.times is None or r.used < r.times)
                and (r.format is None or r.format == fmt)
                and (r.root is None or r.root == root)
            ]

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)


def _handler_for(gw: TamperGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test reads gw.requests

        def do_OPTIONS(self) -> None:
            self._forward()

        def do_HEAD(self) -> None:
            self._forward()

        def do_GET(self) -> None:
            self._forward()

        def _forward(self) -> None:
            url = urlsplit(self.path)
            parts = url.path.split("/")
            root: str | None = None
            if len(parts) >= 3 and parts[1] == "ipfs":
                with contextlib.suppress(ValueError):
                    root = normalize_cid(parts[2])
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in _HOP_HEADERS and k.lower() != "host"
            }
            request = gw._client.build_request(
                self.command, gw.upstream + self.path, headers=headers
            )
            response = gw._client.send(request, stream=True)
            try:
                ctype = response.headers.get("content-type", "")
                fmt = (
                    "car"
                    if ctype.startswith("application/vnd.ipld.car")
                    else "raw"
                    if ctype.startswith("application/vnd.ipld.raw")
                    else ""
                )
                rules = (
                    gw._rules_for(root, fmt)
                    if response.status_code == 200 and self.command == "GET" and fmt
                    else []
                )
                if fmt == "raw":
                    rules = [r for r in rules if r.cid is None or r.cid == root]
                if not rules:
                    self._pass_through(response)
                    gw._log(LoggedRequest(self.command, self.path, response.status_code, False))
                    return
                tampered = (
                    self._raw(response, rules[0]) if fmt == "raw" else self._car(response, rules)
                )
                gw._log(LoggedRequest(self.command, self.path, response.status_code, tampered))
            finally:
                response.close()

        def _head(self, response: httpx.Response, *, length: int | None) -> None:
            self.send_response(response.status_code)
            for k, v in response.headers.multi_items():
                if k.lower() not in _HOP_HEADERS:
                    self.send_header(k, v)
            if length is None:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(length))
            self.end_headers()

        def _pass_through(self, response: httpx.Response) -> None:
            length = response.headers.get("content-length")
            self._head(response, length=int(length) if length is not None else None)
            if self.command != "HEAD":
                for chunk in response.iter_raw():
                    self.wfile.write(chunk)

        def _raw(self, response: httpx.Response, rule: Tamper) -> bool:
            body = response.read()
            if rule.mode == "drop":
                text = b"not_found: dropped by the tamper gateway\n"
                self.send_response(404)
                self.send_header("Content-Type", "text/plain")
                # As the upstream would answer a missing block: readable cross-origin
                # (a page's fetch sees the 404, not a network error).
                cors = response.headers.get("access-control-allow-origin")
                if cors is not None:
                    self.send_header("Access-Control-Allow-Origin", cors)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
            else:
                if rule.mode == "flip":
                    body = _flip(body, rule.offset)
                elif rule.mode == "substitute":
                    assert rule.block is not None
                    body = rule.block
                else:  # truncate
                    body = body[: len(body) // 2]
                self._head(response, length=len(body))
                self.wfile.write(body)
            rule.used += 1
            return True

        def _car(self, response: httpx.Response, rules: list[Tamper]) -> bool:
            self._head(response, length=None)
            reader = _Reader(response.iter_bytes())
            header_len = reader.varint()
            if header_len is None:
                return False
            self.wfile.write(_varint(header_len) + reader.read(header_len))
            fired: list[Tamper] = []  # each rule changes one block per response
            written = 0
            try:
                while (size := reader.varint()) is not None:
                    section = reader.read(size)
                    split = _cid_length(section)
                    cid_bin, block = section[:split], section[split:]
                    cid = _cid_text(cid_bin)
                    out: bytes | None = block
                    for rule in rules:
                        if rule in fired or (rule.cid is not None and rule.cid != cid):
                            continue
                        if rule.mode == "truncate":
                            if rule.cid is None and written < rule.keep:
                                continue
                            fired.append(rule)
                            if rule.cut_inside:
                                whole = _varint(size) + section
                                self.wfile.write(whole[: len(whole) // 2])
                            return True
                        fired.append(rule)
                        if rule.mode == "drop":
                            out = None
                        elif rule.mode == "flip":
                            out = _flip(block, rule.offset)
                        else:
                            assert rule.block is not None
                            out = rule.block
                        break
                    if out is not None:
                        self.wfile.write(_varint(len(cid_bin) + len(out)) + cid_bin + out)
                        written += 1
                return bool(fired)
            except (BrokenPipeError, ConnectionResetError):
                # The client saw the lie and hung up mid-CAR: it was told all the same.
                self.close_connection = True
                return bool(fired)
            finally:
                for rule in fired:
                    rule.used += 1

    return Handler


@contextlib.contextmanager
def running_tamper_gateway(upstream: str) -> Iterator[TamperGateway]:
    """A :class:`TamperGateway` in front of ``upstream`` (a gateway base URL), stopped on exit."""
    gw = TamperGateway(upstream)
    gw.start()
    try:
        yield gw
    finally:
        gw.close()
