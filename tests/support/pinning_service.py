"""A small IPFS Pinning Service API server for tests, that really pins into a js-ipfs node.

It follows the spec (github.com/ipfs/pinning-services-api-spec, v1.0.0) for what a
client of it uses: a bearer token on every call (401 without), ``POST /pins`` answers
202 with a ``PinStatus`` (``queued``), ``GET /pins/{requestid}``, ``GET /pins`` with
``cid``, ``status`` (default ``pinned``) and ``limit``, ``DELETE /pins/{requestid}``
(202). Behind it, a worker per request moves it to ``pinning``, connects the backing
node to each of ``origins`` (``swarm/connect``) and pins the CID there over bitswap
(``pin/add``, online, with a deadline): ``pinned`` when the node holds every block,
``failed`` otherwise. ``fail_next`` makes the next requests fail on purpose.

Why not ``mock-ipfs-pinning-service`` (npm): it never fetches anything, and
``@helia/pinning-service-api-server`` needs a Helia node the suite doesn't run yet.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx


class FakePinningService:
    def __init__(self, backing_api: str, *, token: str, pin_timeout: float = 20.0) -> None:
        self.backing_api = backing_api
        self.token = token
        self.pin_timeout = pin_timeout
        self.pins: dict[str, dict[str, Any]] = {}
        self.origins_seen: list[list[str]] = []
        self.fail_next = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- the worker: really pins ---------------------------------------------------
    def _work(self, requestid: str, cid: str, origins: list[str], fail: bool) -> None:
        self._set(requestid, "pinning")
        if fail:
            self._set(requestid, "failed")
            return
        rpc = f"{self.backing_api}/api/v0/"
        try:
            for origin in origins:
                with contextlib.suppress(httpx.HTTPError):
                    httpx.post(rpc + "swarm/connect", params={"arg": origin}, timeout=10)
            response = httpx.post(
                rpc + "pin/add",
                params={"arg": cid, "recursive": "true", "timeout": f"{int(self.pin_timeout)}s"},
                timeout=self.pin_timeout + 10,
            )
            self._set(requestid, "pinned" if response.status_code == 200 else "failed")
        except httpx.HTTPError:
            self._set(requestid, "failed")

    def _set(self, requestid: str, status: str) -> None:
        with self._lock:
            if requestid in self.pins:
                self.pins[requestid]["status"] = status

    # -- HTTP ----------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, reason: str) -> None:
                self._send(status, {"error": {"reason": reason, "details": reason}})

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {service.token}":
                    self._error(401, "UNAUTHORIZED")
                    return False
                return True

            def do_POST(self) -> None:
                if not self._authorised():
                    return
                if urlsplit(self.path).path != "/pins":
                    self._error(404, "NOT_FOUND")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    pin = json.loads(self.rfile.read(length))
                    cid = pin["cid"]
                    origins = list(pin.get("origins") or [])
                    assert isinstance(cid, str) and all(isinstance(o, str) for o in origins)
                except (ValueError, KeyError, TypeError, AssertionError):
                    self._error(400, "BAD_REQUEST")
                    return
                requestid = str(uuid.uuid4())
                with service._lock:
                    fail = service.fail_next > 0
                    service.fail_next -= fail
                    service.origins_seen.append(origins)
                    service.pins[requestid] = {
                        "requestid": requestid,
                        "status": "queued",
                        "created": datetime.now(UTC).isoformat(),
                        "pin": {"cid": cid, "name": pin.get("name"), "origins": origins},
                        "delegates": ["/ip4/127.0.0.1/tcp/4001/p2p/QmServicePeerId"],
                    }
                    body = dict(service.pins[requestid])
                threading.Thread(
                    target=service._work, args=(requestid, cid, origins, fail), daemon=True
                ).start()
                self._send(202, body)

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                parts = urlsplit(self.path)
                one = re.fullmatch(r"/pins/([^/]+)", parts.path)
                with service._lock:
                    if one:
                        pin = service.pins.get(one.group(1))
                        if pin is None:
                            self._error(404, "NOT_FOUND")
                        else:
                            self._send(200, pin)
                        return
                    if parts.path != "/pins":
                        self._error(404, "NOT_FOUND")
                        return
                    query = parse_qs(parts.query)
                    cids = set(",".join(query.get("cid", [])).split(",")) - {""}
                    statuses = set(",".join(query.get("status", ["pinned"])).split(","))
                    limit = int(query.get("limit", ["10"])[0])
                    found = [
                        p
                        for p in service.pins.values()
                        if p["status"] in statuses and (not cids or p["pin"]["cid"] in cids)
                    ]
                    self._send(200, {"count": len(found), "results": found[:limit]})

            def do_DELETE(self) -> None:
                if not self._authorised():
                    return
                one = re.fullmatch(r"/pins/([^/]+)", urlsplit(self.path).path)
                with service._lock:
                    pin = service.pins.pop(one.group(1), None) if one else None
                if pin is None:
                    self._error(404, "NOT_FOUND")
                    return
                if pin["status"] == "pinned":
                    with contextlib.suppress(httpx.HTTPError):
                        httpx.post(
                            f"{service.backing_api}/api/v0/pin/rm",
                            params={"arg": pin["pin"]["cid"]},
                            timeout=30,
                        )
                self._send(202)

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def pinning_service(
    backing_api: str, *, token: str, pin_timeout: float = 20.0
) -> Iterator[FakePinningService]:
    service = FakePinningService(backing_api, token=token, pin_timeout=pin_timeout)
    service.start()
    try:
        yield service
    finally:
        service.stop()
