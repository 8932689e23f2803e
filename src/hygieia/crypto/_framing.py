"""OpenPGP packet framing for record segments (RFC 4880 §4.2), written by hand.

Why by hand: rPGP writes a large SEIPD packet with *partial* body lengths, but a
segment that is followed by another one must carry a fixed length or stock gpg
reads past it (research/openpgp.md, "Segments and stock gpg"); and no library
offers a streaming, bounded-memory check of a concatenation of packets that the
server can run on an upload without keys. The format is tiny (a tag byte and a
length), so the code here only parses packet headers (the package's one parser of
them: re-framing rPGP's output, splitting keys for re-locking, checking the packets
inside a decrypted message) and validates segment streams; it never interprets
packet contents beyond the version byte.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from ._errors import InvalidFraming

__all__ = [
    "MAX_SEGMENT_OVERHEAD",
    "SEGMENT_HEADER_SIZE",
    "SEGMENT_SIZE",
    "SegmentFramingChecker",
    "fixed_header",
    "iter_packets",
    "max_segment_packet",
    "packet_spans",
    "read_exactly",
    "read_packet",
]

SEGMENT_SIZE = 4 * 1024 * 1024
# SEIPD version/prefix/MDC, literal and one-pass headers, an Ed25519 signature and
# the 16-byte segment header come to a few hundred bytes; the margin leaves room.
MAX_SEGMENT_OVERHEAD = 4096


def max_segment_packet(segment_size: int = SEGMENT_SIZE) -> int:
    """Upper bound on a segment packet's body length, for framing checks."""
    return segment_size + MAX_SEGMENT_OVERHEAD


_TAG_SEIPD = 18
_SEIPD_HEADER = bytes([0xC0 | _TAG_SEIPD, 0xFF])  # new format, tag 18, 5-byte length
SEGMENT_HEADER_SIZE = 6  # 0xD2 0xFF u32be(len)
_SEIPD_V1 = 1
# version + 16-byte IV + 2 check bytes + MDC packet (22): the smallest SEIPDv1 body.
_MIN_SEIPD_BODY = 1 + 18 + 22
# RFC 9580 §4.2.1.4 demands 512 bytes of the first partial chunk only, but rPGP,
# OpenPGP.js and gpg never write a smaller one anywhere. Refusing them bounds the
# chunks per packet: 1-byte chunks cost a reader a list entry and a loop turn per
# byte (a 4 MiB segment became 2 million spans, 280 MB and seconds of CPU).
_MIN_PARTIAL_CHUNK = 512


def fixed_header(tag: int, length: int) -> bytes:
    """A new-format header with the five-octet length form, whatever the length."""
    if not 0 <= length <= 0xFFFFFFFF:
        raise ValueError("packet too long")
    return bytes([0xC0 | tag, 0xFF]) + struct.pack(">I", length)


def packet_spans(
    data: bytes, offset: int = 0, *, old_format: bool = False
) -> tuple[int, list[tuple[int, int]], int]:
    """Parse the header(s) of the packet at ``offset``: ``(tag, spans, next_offset)``.

    ``spans`` are the ``[start, end)`` ranges of ``data`` that make up the body:
    one, or several when the body uses partial lengths. Old-format headers
    (RFC 4880 §4.2.1) are accepted only with ``old_format`` (keys may carry them;
    nothing Hygieia frames does). The one parser of packet lengths in the package:
    callers that want the body joined use :func:`read_packet`. Raises
    :class:`InvalidFraming` on anything malformed or truncated, and on a partial
    chunk under 512 bytes (no writer makes one; see ``_MIN_PARTIAL_CHUNK``).
    """
    if offset >= len(data):
        raise InvalidFraming("truncated packet header")
    first = data[offset]
    if first & 0x80 == 0:
        raise InvalidFraming("not an OpenPGP packet")
    pos = offset + 1
    if first & 0x40 == 0:
        if not old_format:
            raise InvalidFraming("not a new-format OpenPGP packet")
        kind = first & 3
        if kind == 3:
            raise InvalidFraming("indeterminate packet length")
        size = 1 << kind
        if pos + size > len(data):
            raise InvalidFraming("truncated packet length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        if pos + length > len(data):
            raise InvalidFraming("truncated packet body")
        return (first >> 2) & 0x0F, [(pos, pos + length)], pos + length
    spans: list[tuple[int, int]] = []
    while True:
        if pos >= len(data):
            raise InvalidFraming("truncated packet length")
        octet = data[pos]
        if octet < 192:
            length, pos, partial = octet, pos + 1, False
        elif octet < 224:
            if pos + 1 >= len(data):
                raise InvalidFraming("truncated packet length")
            length = ((octet - 192) << 8) + data[pos + 1] + 192
            pos, partial = pos + 2, False
        elif octet == 255:
            if pos + 5 > len(data):
                raise InvalidFraming("truncated packet length")
            (length,) = struct.unpack_from(">I", data, pos + 1)
            pos, partial = pos + 5, False
        else:
            length, pos, partial = 1 << (octet & 0x1F), pos + 1, True
            if length < _MIN_PARTIAL_CHUNK:
                raise InvalidFraming("partial body chunk under 512 bytes")
        if pos + length > len(data):
            raise InvalidFraming("truncated packet body")
        spans.append((pos, pos + length))
        pos += length
        if not partial:
            return first & 0x3F, spans, pos


def read_packet(
    data: bytes, offset: int = 0, *, old_format: bool = False, partial: bool = True
) -> tuple[int, bytes, int]:
    """Parse one packet at ``offset``: ``(tag, body, next_offset)``.

    Partial body lengths are joined (so the body can be re-emitted with
    :func:`fixed_header`), or refused with ``partial=False``; ``old_format`` as in
    :func:`packet_spans`. Raises :class:`InvalidFraming` on anything malformed.
    """
    tag, spans, end = packet_spans(data, offset, old_format=old_format)
    if len(spans) > 1 and not partial:
        raise InvalidFraming("partial body lengths not allowed here")
    return tag, b"".join(data[start:stop] for start, stop in spans), end


def _parse_segment_header(header: bytes, max_packet: int) -> int:
    if header[:2] != _SEIPD_HEADER:
        raise InvalidFraming("expected a SEIPD packet with a fixed five-octet length")
    (length,) = struct.unpack(">I", header[2:6])
    if length < _MIN_SEIPD_BODY:
        raise InvalidFraming("segment packet too short")
    if length > max_packet:
        raise InvalidFraming("segment packet too long")
    return int(length)


def read_exactly(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes from ``source``, fewer only at its end (a stream may return short reads)."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        chunk = source.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def iter_packets(source: BinaryIO, *, max_packet: int | None = None) -> Iterator[bytes]:
    """Split a concatenation of segment packets; yields each whole packet (header included).

    Only new-format tag-18 packets with a five-octet length, version 1, of at most
    ``max_packet`` body bytes (default: :func:`max_segment_packet`) are accepted;
    an empty stream, a truncated packet or trailing junk raise
    :class:`InvalidFraming`. Holds one packet at a time.
    """
    limit = max_segment_packet() if max_packet is None else max_packet
    count = 0
    while True:
        header = read_exactly(source, SEGMENT_HEADER_SIZE)
        if not header:
            break
        if len(header) < SEGMENT_HEADER_SIZE:
            raise InvalidFraming("truncated segment header")
        length = _parse_segment_header(header, limit)
        body = read_exactly(source, length)
        if len(body) != length:
            raise InvalidFraming("truncated segment")
        if body[0] != _SEIPD_V1:
            raise InvalidFraming("segment is not SEIPDv1")
        count += 1
        yield header + body
    if count == 0:
        raise InvalidFraming("no segments")


class SegmentFramingChecker:
    """Incremental framing check of a segment stream arriving in arbitrary chunks.

    For the server, which has no keys: ``feed()`` every chunk as it streams to
    storage, then ``finish()`` returns the number of segments. Nothing beyond a
    six-byte header is buffered. Raises :class:`InvalidFraming` as soon as the
    stream can't be valid.
    """

    def __init__(self, *, max_packet: int | None = None, max_segments: int | None = None) -> None:
        self._max_packet = max_segment_packet() if max_packet is None else max_packet
        self._max_segments = max_segments
        self._header = bytearray()
        self._remaining = 0  # body bytes still expected in the current packet
        self._need_version = False
        self._count = 0
        self._failed = False

    def feed(self, chunk: bytes) -> None:
        if self._failed:
            raise InvalidFraming("stream already rejected")
        try:
            self._feed(memoryview(chunk))
        except InvalidFraming:
            self._failed = True
            raise

    def _feed(self, view: memoryview) -> None:
        pos = 0
        while pos < len(view):
            if self._remaining:
                if self._need_version:
                    if view[pos] != _SEIPD_V1:
                        raise InvalidFraming("segment is not SEIPDv1")
                    self._need_version = False
                take = min(self._remaining, len(view) - pos)
                self._remaining -= take
                pos += take
                continue
            take = min(SEGMENT_HEADER_SIZE - len(self._header), len(view) - pos)
            self._header += view[pos : pos + take]
            pos += take
            if len(self._header) == SEGMENT_HEADER_SIZE:
                self._remaining = _parse_segment_header(bytes(self._header), self._max_packet)
                self._header.clear()
                self._need_version = True
                self._count += 1
                if self._max_segments is not None and self._count > self._max_segments:
                    raise InvalidFraming("too many segments")

    def finish(self) -> int:
        """The segment count; :class:`InvalidFraming` if the stream ended mid-packet."""
        if self._failed:
            raise InvalidFraming("stream already rejected")
        if self._header or self._remaining:
            self._failed = True
            raise InvalidFraming("truncated segment")
        if self._count == 0:
            self._failed = True
            raise InvalidFraming("no segments")
        return self._count
