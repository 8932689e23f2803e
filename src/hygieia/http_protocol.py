"""uvicorn's HTTP/1.1 protocol (httptools) with a deadline on request headers.

uvicorn 0.54 times a connection out only while it idles between two requests
(``timeout_keep_alive``, armed when a response completes). A connection that sends
nothing after it opens, or starts a request and never ends its headers, is kept
until the client goes away, and enough of them exhaust the server's sockets: there
is no header-read timeout in uvicorn's options, for httptools or h11. This subclass
adds one: from the moment a connection opens, or a request's first byte arrives,
its headers must be complete within ``header_timeout`` seconds, or the connection
is closed (as nginx's ``client_header_timeout`` does). Bodies have their own stall
deadline in the app (``BodyLimitMiddleware``).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["header_timeout_protocol"]


class _HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a following request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's headers trail a response still being written:
            # that response is not cut; the deadline starts again.
            self._arm()
            return
        if not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with this header deadline."""
    return type(
        "HygieiaHttpProtocol", (_HeaderDeadlineProtocol,), {"header_timeout": header_timeout}
    )
