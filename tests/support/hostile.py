"""A hostile server: it answers what a test tells it to and records what clients send.

The security review's attacker (finding 5) was such a server: it answered prelogin with
cheap KDF parameters and cracked the password from the ``auth_key`` the client sent.
Tests point a real client at it and check what reached it. It is the adversary under
test, not a stand-in for Hygieia's server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.server import threaded_server


@dataclass
class Hostile:
    url: str
    #: ``path -> (status, JSON body)`` answers; anything else is a 404 in the API shape.
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    #: ``(method, path, body)`` of every request received, in order.
    received: list[tuple[str, str, bytes]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.received]


@contextmanager
def hostile_server() -> Iterator[Hostile]:
    state = Hostile(url="", answers={"/api/v1/health": (200, {"status": "ok"})})

    async def anything(request: Request) -> JSONResponse:
        body = await request.body()
        state.received.append((request.method, request.url.path, body))
        status, answer = state.answers.get(
            request.url.path, (404, {"code": "not_found", "detail": "not found"})
        )
        return JSONResponse(json.loads(json.dumps(answer)), status_code=status)

    app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    with threaded_server(app) as url:
        state.url = url
        state.received.clear()  # the start-up health checks
        yield state
