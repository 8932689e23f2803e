"""Pull-style streaming ``multipart/form-data`` reader for uploads of any size.

Starlette's ``request.form()`` spools each file part to a temporary file before the
route runs; records can be gigabytes, and we want the ciphertext to flow straight from
the socket into the blob store. python-multipart's push parser does the parsing; this
module only turns its callbacks into "next part" / "this part's data" pulls, fed by a
:class:`BodyPump` that reads the ASGI ``receive`` channel ahead of the worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
from python_multipart.multipart import MultipartParser, parse_options_header

from hygieia.errors import BadRequest, ClientDisconnected, UnsupportedMediaType, ValidationFailed

MAX_PART_HEADERS = 16 * 1024


#: Body bytes gathered on the event loop per hop to the worker thread (one hop per ASGI
#: message, ~64 KiB, cost a thread round trip each: 1,600 per 100 MB).
BATCH = 1024 * 1024


async def _receive_batch(receive: Callable[[], Any]) -> tuple[list[bytes], bool]:
    # The ASGI messages as they came (not joined: the importer copies each byte once).
    parts: list[bytes] = []
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
    """Reads the request body on the event loop *ahead* of the worker thread.

    Without it, uvicorn stops reading the socket while the worker hashes and writes
    the previous chunk, so network receive and storage run one after the other. The
    pump keeps up to ``depth`` batches (~1 MiB each) in flight (two are enough to
    overlap, at little RSS); the worker pulls them with one thread hop per batch.
    """

    def __init__(self, receive: Callable[[], Any], depth: int = 2) -> None:
        self._receive = receive
        self._queue: asyncio.Queue[tuple[list[bytes], bool, BaseException | None]] = asyncio.Queue(
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

    def chunks(self) -> Iterator[bytes]:
        """The body, from a worker thread."""
        more = True
        while more:
            parts, more, error = anyio.from_thread.run(self._queue.get)
            if error is not None:
                raise error
            yield from parts


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


class MultipartReader:
    def __init__(self, chunks: Iterator[bytes], boundary: bytes) -> None:
        self._chunks = chunks
        self._events: deque[tuple[str, Any]] = deque()
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
                "on_part_end": lambda: self._events.append(("part_end", None)),
                "on_end": lambda: self._events.append(("end", None)),
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
        self._events.append(
            (
                "part",
                Part(
                    name=params[b"name"].decode("utf-8", "replace"),
                    filename=filename.decode("utf-8", "replace") if filename else None,
                    content_type=self._headers.get("content-type"),
                ),
            )
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self._events.append(("data", bytes(data[start:end])))

    # --- pulling -------------------------------------------------------------------
    def _next_event(self) -> tuple[str, Any]:
        while not self._events:
            if self._ended:
                raise BadRequest("multipart body ended early")
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
                self._parser.finalize()
                continue
            try:
                self._parser.write(chunk)
            except ValidationFailed:
                raise
            except Exception as exc:
                raise BadRequest("malformed multipart body") from exc
        return self._events.popleft()

    def next_part(self) -> Part | None:
        """The next part's headers, or ``None`` at the end of the body."""
        while True:
            kind, value = self._next_event()
            if kind == "part":
                return value  # type: ignore[no-any-return]
            if kind == "end":
                return None
            if kind == "data":
                raise BadRequest("unexpected data outside a part")

    def data(self) -> Iterator[bytes]:
        """The current part's bytes, streamed."""
        while True:
            kind, value = self._next_event()
            if kind == "data":
                yield value
            elif kind == "part_end":
                return
            else:
                raise BadRequest("malformed multipart body")

    def read_small(self, limit: int) -> bytes:
        buf = bytearray()
        for chunk in self.data():
            buf += chunk
            if len(buf) > limit:
                raise ValidationFailed("form field too large")
        return bytes(buf)

    def expect_end(self) -> None:
        if self.next_part() is not None:
            raise ValidationFailed("unexpected extra multipart part")
