"""``PinningService``: a remote pinning service, through the IPFS Pinning Service API.

The API (github.com/ipfs/pinning-services-api-spec, v1.0.0) is small and frozen: a
bearer token, ``POST /pins {cid, name, origins, meta}`` answering a ``PinStatus``
(``requestid``, ``status`` queued → pinning → pinned | failed, ``delegates``),
``GET /pins/{requestid}`` to follow it, ``GET /pins?cid=…&status=…`` to find pins,
``DELETE /pins/{requestid}`` to remove one. The service fetches the blocks itself,
over bitswap, from ``origins`` (multiaddrs of nodes that hold them) or the network.
No maintained Python client exists; these five calls over httpx are the client.

Errors map as elsewhere in ``storage``: transport failures, 5xx and refused
credentials become ``StorageUnavailable`` (messages never carry the token).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from hygieia.errors import StorageUnavailable
from hygieia.ipfs import parse_cid

__all__ = ["PinStatus", "PinningService"]

#: Every status, for queries that must see pins in any state (the spec's default is
#: ``pinned`` only).
ALL_STATUSES = "queued,pinning,pinned,failed"


@dataclass(frozen=True)
class PinStatus:
    requestid: str
    status: str  # queued | pinning | pinned | failed
    cid: str


class PinningService:
    """A client of one Pinning Service API endpoint (e.g. ``https://api.example.org/psa``)."""

    def __init__(
        self,
        url: str,
        *,
        auth_header: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": auth_header} if auth_header else {}
        self._client = httpx.Client(
            base_url=url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    def add(self, cid: str, *, origins: Sequence[str] = (), name: str | None = None) -> PinStatus:
        """Ask the service to pin ``cid``, fetching from ``origins`` (``POST /pins``)."""
        body: dict[str, Any] = {"cid": str(parse_cid(cid))}
        if origins:
            body["origins"] = list(origins)
        if name:
            body["name"] = name
        return _status(self._call("POST", "pins", json_body=body))

    def status(self, requestid: str) -> PinStatus | None:
        """The request's status, or None if the service doesn't know it (404)."""
        data = self._call("GET", f"pins/{_segment(requestid)}", missing_ok=True)
        return None if data is None else _status(data)

    def find(self, cid: str) -> list[PinStatus]:
        """The pin requests for ``cid``, whatever their status."""
        data = self._call(
            "GET",
            "pins",
            params={"cid": str(parse_cid(cid)), "status": ALL_STATUSES, "limit": "1000"},
        )
        results = data.get("results") if data else None
        if not isinstance(results, list):
            raise StorageUnavailable("the pinning service sent an unexpected answer")
        return [_status(r) for r in results if isinstance(r, dict)]

    def remove(self, requestid: str) -> None:
        """Delete a pin request (a no-op if the service doesn't know it)."""
        self._call("DELETE", f"pins/{_segment(requestid)}", missing_ok=True)

    def unpin(self, cid: str) -> None:
        """Remove every pin request for ``cid``."""
        for pin in self.find(cid):
            self.remove(pin.requestid)

    def close(self) -> None:
        self._client.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        try:
            response = self._client.request(method, path, json=json_body, params=params)
        except httpx.HTTPError as exc:
            raise StorageUnavailable("the pinning service is unreachable") from exc
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (401, 403):
            raise StorageUnavailable("the pinning service refused the access token")
        if response.status_code >= 300:
            error = StorageUnavailable("the pinning service answered an error")
            error.add_note(f"pinning service {response.status_code}: {response.text[:300]}")
            raise error
        if not response.content:
            return {}
        try:
            data = response.json()
        except json.JSONDecodeError as exc:
            raise StorageUnavailable("the pinning service sent malformed JSON") from exc
        if not isinstance(data, dict):
            raise StorageUnavailable("the pinning service sent an unexpected answer")
        return data


def _segment(requestid: str) -> str:
    """A request id as one URL path segment (it comes from the service)."""
    from urllib.parse import quote

    return quote(requestid, safe="")


def _status(data: Mapping[str, Any] | None) -> PinStatus:
    if not data:
        raise StorageUnavailable("the pinning service sent an unexpected answer")
    pin = data.get("pin")
    requestid, status = data.get("requestid"), data.get("status")
    cid = pin.get("cid") if isinstance(pin, dict) else None
    if not (isinstance(requestid, str) and isinstance(status, str) and isinstance(cid, str)):
        raise StorageUnavailable("the pinning service sent an unexpected answer")
    if status not in ("queued", "pinning", "pinned", "failed"):
        raise StorageUnavailable("the pinning service sent an unknown pin status")
    return PinStatus(requestid=requestid, status=status, cid=cid)
