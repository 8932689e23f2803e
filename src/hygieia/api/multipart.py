"""Push-style streaming ``multipart/form-data`` for uploads of any size.

Starlette's ``request.form()`` spools each file part to a temporary file before the
route runs; records can be gigabytes, and we want the ciphertext to flow straight from
the socket into the blob store. A :class:`BodyPump` reads the ASGI ``receive`` channel
on the event loop, ahead of its consumer, in batches of about 1 MiB; the route hands
each batch to a worker thread, where python-multipart's push parser (wrapped by
:class:`MultipartReader`) passes each part's bytes on to a :class:`FormHandler`.

No thread ever waits for the network: a worker is taken for a batch that has arrived
and given back once it is parsed, checked and stored. (Until this was so, forty
stalled uploads parked forty workers and every other route waited behind them.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from hygieia.errors import BadRequest, ClientDisconnected, UnsupportedMediaType, ValidationFailed

MAX_PART_HEADERS = 16 * 1024


#: Body bytes gathered on the event loop per hop to a worker thread (one hop per ASGI
#: message, ~64 KiB, cost a thread round trip each: 1,600 per 100 MB).
BATCH = 1024 * 1024

Batch = list[bytes]


async def _receive_batch(receive: Callable[[], Any]) -> tuple[Batch, bool]:
    # The ASGI messages as they came (not joined: the importer copies each byte once).
    parts: Batch = []
    size = 0
    while size < BATCH:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        body = message.get("body", b"")
        if body:
            parts.append(body)
            size += len(body)
        if not message.get("more_body", False):
            return parts, False
    return parts, True


class BodyPump:
    """Reads the request body on the event loop *ahead* of its consumer.

    Without it, uvicorn stops reading the socket while a worker hashes and writes the
    previous batch, so network receive and storage run one after the other. The pump
    keeps up to ``depth`` batches (~1 MiB each) in flight (two are enough to overlap,
    at little RSS); :meth:`batches` yields them on the event loop.
    """

    def __init__(self, receive: Callable[[], Any], depth: int = 2) -> None:
        self._receive = receive
        self._queue: asyncio.Queue[tuple[Batch, bool, BaseException | None]] = asyncio.Queue(
            maxsize=depth
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BodyPump:
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _pump(self) -> None:
        more = True
        while more:
            try:
                parts, more = await _receive_batch(self._receive)
            except Exception as exc:
                await self._queue.put(([], False, exc))
                return
            await self._queue.put((parts, more, None))

    async def batches(self) -> AsyncIterator[Batch]:
        """The body, batch by batch (the last may be empty)."""
        more = True
        while more:
            parts, more, error = await self._queue.get()
            if error is not None:
                raise error
            yield parts


def boundary_of(content_type: str | None) -> bytes:
    if not content_type:
        raise UnsupportedMediaType("multipart/form-data required")
    ctype, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise UnsupportedMediaType("multipart/form-data with a boundary required")
    return boundary


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None


class FormHandler(Protocol):
    """What a :class:`MultipartReader` tells, as the body is fed to it."""

    def part(self, part: Part) -> None:
        """A part begins (its headers are complete)."""

    def data(self, data: bytes) -> None:
        """The current part's next bytes."""

    def part_end(self) -> None:
        """The current part is complete."""


class MultipartReader:
    """Feeds a body, piece by piece, through the parser to a :class:`FormHandler`.

    The handler's exceptions pass through :meth:`feed` unchanged; malformed framing is
    a ``BadRequest``. :meth:`close` checks that the body ended with its closing
    boundary, so a caller can act on the form only once it is known to be whole.
    """

    def __init__(self, boundary: bytes, handler: FormHandler) -> None:
        self._handler = handler
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": handler.part_end,
                "on_end": self._on_end,
            },
        )

    # --- parser callbacks ---------------------------------------------------------
    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_bytes = 0

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_PART_HEADERS:
            raise ValidationFailed("multipart part headers too large")

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._field.decode("latin-1").lower()
        self._headers[name] = self._value.decode("latin-1")
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition != b"form-data" or b"name" not in params:
            raise ValidationFailed("multipart part without a form-data name")
        filename = params.get(b"filename")
        self._handler.part(
            Part(
                name=params[b"name"].decode("utf-8", "replace"),
                filename=filename.decode("utf-8", "replace") if filename else None,
                content_type=self._headers.get("content-type"),
            )
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            # A whole input piece is passed on as is (slicing all of a bytes object
            # returns it): no copy here.
            self._handler.data(bytes(data[start:end]))

    def _on_end(self) -> None:
        self._ended = True

    # --- feeding -------------------------------------------------------------------
    def feed(self, piece: bytes) -> None:
        if self._ended:
            return  # the epilogue after the closing boundary is ignored
        try:
            self._parser.write(piece)
        except FormParserError as exc:
            raise BadRequest("malformed multipart body") from exc

    def close(self) -> None:
        """The body is complete: it must have ended with the closing boundary."""
        if not self._ended:
            raise BadRequest("multipart body ended early")
