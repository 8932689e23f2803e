"""A hostile server at the outer edge: an httpx transport that rewrites answers.

The real server answers; this transport then changes what the client receives, the way
a compromised server or a man in the middle would. Clients must notice and refuse.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

Rewrite = Callable[[httpx.Request, bytes], bytes | None]


class TamperingTransport(httpx.BaseTransport):
    def __init__(self, rewrite: Rewrite) -> None:
        self.inner = httpx.HTTPTransport()
        self.rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        changed = self.rewrite(request, body)
        if changed is None:
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=changed)

    def close(self) -> None:
        self.inner.close()
