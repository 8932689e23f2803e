"""Pure ASGI middleware: body size limits and stall timeout, security headers and a
privacy-safe access log.

The access log writes method, path, status and duration; never headers, bodies, query
strings (prelogin carries an email) or path parameters (``/records/{record_id}``).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hygieia.api.error_handlers import error_response
from hygieia.errors import BadRequest, HygieiaError, PayloadTooLarge, RequestTimeout

log = logging.getLogger("hygieia.access")

CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' blob: data:; object-src 'none'; frame-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SERVICE_WORKER = "/app/sw.js"


def content_security_policy(gateway_origins: Sequence[str] = ()) -> str:
    """The page's CSP: :data:`CSP` with ``connect-src`` widened to the IPFS gateways the
    web app's offline mode may fetch blocks from (``HYGIEIA_GATEWAY_ORIGINS``), nothing
    else changed."""
    connect = " ".join(["'self'", *gateway_origins])
    return CSP.replace("connect-src 'self'", f"connect-src {connect}")


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: HygieiaError) -> None:
    # Answered before the body is read through, so the connection can't carry another
    # request: it is closed.
    await error_response(exc, close=True)(scope, receive, send)


class _HttpMiddleware(abc.ABC):
    """A pure ASGI middleware that acts on HTTP requests only (:meth:`handle`); other
    scopes (lifespan, websockets) pass straight through to the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    @abc.abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request, calling ``self.app`` as the middleware sees fit."""


class BodyLimitMiddleware(_HttpMiddleware):
    """Refuse bodies over the limit with 413 before reading them through, and bodies
    that stall with 408.

    ``limit_for(path)`` gives the limit for a path (uploads get the record limit, JSON
    routes the small one). A declared Content-Length over the limit is refused at once;
    a chunked body is counted as it streams and cut off when it passes the limit.
    While the body is incomplete, each wait for its next piece may last ``idle_timeout``
    seconds: then the client is answered 408 ``request_timeout`` (connection closed)
    and the app sees a client that went away. Uploads hold no worker thread while they
    wait, but buffers, a slot and a socket; a stalled one must not keep them forever.
    An answer the app gives before the body was read closes the connection too.
    """

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str], int], idle_timeout: float | None = None
    ) -> None:
        super().__init__(app)
        self.limit_for = limit_for
        self.idle_timeout = idle_timeout

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["path"])
        has_body = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _refuse(scope, receive, send, BadRequest("invalid Content-Length"))
                    return
                if declared > limit:
                    await _refuse(scope, receive, send, PayloadTooLarge())
                    return
                has_body = declared > 0
            elif name == b"transfer-encoding":
                has_body = True
        seen = 0
        app_started = False
        refused = False
        body_done = not has_body

        async def counting_receive() -> Message:
            nonlocal seen, refused, body_done
            if refused:
                return {"type": "http.disconnect"}
            if body_done:
                # Past the body, receive only waits for a disconnect (a streaming
                # response listens for one): no deadline then.
                message: Message = await receive()
                return message
            try:
                async with asyncio.timeout(self.idle_timeout):
                    message = await receive()
            except TimeoutError:
                if not app_started:
                    refused = True
                    await _refuse(scope, receive, send, RequestTimeout())
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > limit:
                    if not refused and not app_started:
                        refused = True
                        await _refuse(scope, receive, send, PayloadTooLarge())
                    # The app sees a client that went away and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal app_started
            if refused:
                return  # we already answered 413 or 408
            if message["type"] == "http.response.start":
                app_started = True
                headers = list(message.get("headers", []))
                if not body_done and (b"connection", b"close") not in headers:
                    # Answered before the body was read (an upload refused at once):
                    # close rather than read the rest of it, maybe gigabytes, for nothing.
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class SecurityHeadersMiddleware(_HttpMiddleware):
    """CSP and hardening headers everywhere; ``Cache-Control: no-store`` on the API.

    The service worker (``/app/sw.js``, bundled with the app) may control the whole
    origin (``Service-Worker-Allowed: /``): it caches the app shell for offline use.
    """

    def __init__(self, app: ASGIApp, csp: str = CSP) -> None:
        super().__init__(app)
        self.csp = csp.encode()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_api = scope["path"].startswith("/api/")
        is_worker = scope["path"] == SERVICE_WORKER

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # API answers are never cached; static assets are revalidated each load
                # (their names are fixed, so a stale app bundle must not linger).
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers += [
                    (b"content-security-policy", self.csp),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
                ]
                headers.append((b"cache-control", b"no-store" if is_api else b"no-cache"))
                if is_worker:
                    headers.append((b"service-worker-allowed", b"/"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class PublicCorsMiddleware(_HttpMiddleware):
    """CORS for the SMART Health Link routes only (``prefixes``): a viewer on any origin
    may POST a manifest request and GET a file, as SHL viewers do in browsers (the SHL
    IG lists CORS among its referenced specifications). No credentials are involved
    (``Access-Control-Allow-Origin: *`` forbids them), so a page of another origin gains
    nothing it could not fetch with curl. Preflights are answered here; every other
    answer on these paths (errors, the body limit's 413 included) gets the header, so a
    viewer can read ``remainingAttempts`` and ``Retry-After``."""

    def __init__(self, app: ASGIApp, prefixes: Sequence[str]) -> None:
        super().__init__(app)
        self.prefixes = tuple(prefixes)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        cors = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-expose-headers", b"retry-after"),
        ]
        if scope.get("method") == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        *cors,
                        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                        (b"access-control-allow-headers", b"content-type"),
                        (b"access-control-max-age", b"600"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def loggable_path(scope: Scope) -> str:
    """The path as the access log may show it: path parameters by their names
    (``/api/v1/records/{record_id}``), and any other segment that could be an e-mail
    address (it has an ``@``; a path that matched no route) blanked out."""
    # Each parameter's value stands for one segment; matched from the right, where the
    # routes keep their parameters.
    pending = {str(v): k for k, v in scope.get("path_params", {}).items()}
    parts = scope["path"].split("/")
    for i in reversed(range(len(parts))):
        if parts[i] in pending:
            parts[i] = "{" + pending.pop(parts[i]) + "}"
        elif "@" in parts[i]:
            parts[i] = "{redacted}"
    return "/".join(parts)


class AccessLogMiddleware(_HttpMiddleware):
    """One line per request: method, path (see :func:`loggable_path`), status, time.

    The query string is never read (prelogin carries an e-mail address), nor are
    headers or bodies. Added last, so it wraps the other middleware and sees the status
    the client got, the body limit's refusals included.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            # Unhandled: the server-error middleware outside this one answers 500.
            status = status or 500
            raise
        finally:
            log.info(
                "%s %s %s %.1fms",
                scope.get("method", "-"),
                loggable_path(scope),
                status or "-",
                (time.perf_counter() - t0) * 1000,
            )
