"""Host header validation: the server answers only to the names it is configured for.

Without it, any name that resolves to the server reaches it: a DNS-rebinding page can
talk to a server on the user's own machine as if same-origin, and a forged ``Host``
ends up in absolute URLs and logs. Starlette's ``TrustedHostMiddleware`` does the same
check but answers in plain text; this one answers in the API's ``{code, detail}`` shape
(``errors.InvalidHost``). Security review, finding 14.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from hygieia.errors import InvalidHost

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Any], Callable[[dict[str, Any]], Any]], Any]


def host_name(header: str) -> str:
    """The name in a ``Host`` header, lower-cased, without the port (``[v6]`` kept)."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[: end + 1] if end > 0 else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
            return True
    return False


class AllowedHostsMiddleware:
    """Refuse requests whose ``Host`` is not allowed with 400 ``invalid_host``."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = [h.lower() for h in allowed_hosts]
        self.any = "*" in self.allowed

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", []) if k == b"host"), b"")
        if host_allowed(host_name(header.decode("latin-1")), self.allowed):
            await self.app(scope, receive, send)
            return
        error = InvalidHost()
        body = json.dumps({"code": error.code, "detail": error.detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
