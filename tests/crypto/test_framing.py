from __future__ import annotations

import io
import random
import struct

import pytest

from hygieia import crypto
from hygieia.crypto._framing import fixed_header, read_packet

MAX = 1 << 16


def packet(body_len: int, *, version: int = 1) -> bytes:
    body = bytes([version]) + bytes(range(256)) * (body_len // 256 + 1)
    return b"\xd2\xff" + struct.pack(">I", body_len) + body[:body_len]


GOOD = [packet(100), packet(5000), packet(41)]
STREAM = b"".join(GOOD)

BAD_STREAMS = {
    "empty": b"",
    "truncated header": STREAM + b"\xd2\xff\x00",
    "truncated body": STREAM[:-1],
    "trailing junk": STREAM + b"\x00",
    "old-format header": b"\x93" + GOOD[0][1:],
    "short length form": b"\xd2\x64" + GOOD[0][6:],
    "partial length": b"\xd2\xe1" + GOOD[0][6:],
    "wrong tag (literal)": b"\xcb" + GOOD[0][1:],
    "wrong tag (PKESK)": b"\xc1" + GOOD[0][1:],
    "too short": packet(40),
    "too long": packet(MAX + 1),
    "not version 1": packet(100, version=2),
}


def test_iter_packets_splits() -> None:
    assert list(crypto.iter_packets(io.BytesIO(STREAM), max_packet=MAX)) == GOOD


@pytest.mark.parametrize("name", list(BAD_STREAMS))
def test_iter_packets_rejects(name: str) -> None:
    with pytest.raises(crypto.InvalidFraming):
        list(crypto.iter_packets(io.BytesIO(BAD_STREAMS[name]), max_packet=MAX))


def check(data: bytes, sizes: list[int]) -> int:
    checker = crypto.SegmentFramingChecker(max_packet=MAX)
    pos = 0
    for size in sizes:
        checker.feed(data[pos : pos + size])
        pos += size
    checker.feed(data[pos:])
    return checker.finish()


@pytest.mark.parametrize("seed", range(5))
def test_checker_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.choice([0, 1, 2, 5, 6, 7, 100, 4096]) for _ in range(200)]
    assert check(STREAM, sizes) == 3


def test_checker_byte_by_byte() -> None:
    assert check(STREAM, [1] * len(STREAM)) == 3


@pytest.mark.parametrize("name", list(BAD_STREAMS))
@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_checker_rejects(name: str, chunk: int) -> None:
    data = BAD_STREAMS[name]
    with pytest.raises(crypto.InvalidFraming):
        check(data, [chunk] * (len(data) // chunk + 1))


def test_checker_stays_failed_and_limits_segments() -> None:
    checker = crypto.SegmentFramingChecker(max_packet=MAX, max_segments=2)
    with pytest.raises(crypto.InvalidFraming):
        checker.feed(STREAM)
    with pytest.raises(crypto.InvalidFraming):
        checker.feed(b"")
    with pytest.raises(crypto.InvalidFraming):
        checker.finish()


def test_read_packet_joins_partial_chunks() -> None:
    body = bytes(range(256)) * 5  # 1280 bytes: 512 + 512 partial, then 256 fixed
    framed = b"\xd2\xe9" + body[:512] + b"\xe9" + body[512:1024] + b"\xc0\x40" + body[1024:]
    tag, got, end = read_packet(framed + b"next")
    assert (tag, got, end) == (18, body, len(framed))
    assert fixed_header(18, len(body)) == b"\xd2\xff\x00\x00\x05\x00"
    with pytest.raises(crypto.InvalidFraming):
        read_packet(framed[:-1])
    # A partial chunk under 512 bytes: no writer makes one, and 1-byte chunks would
    # cost a reader a list entry per byte (tests/crypto/test_opening.py).
    with pytest.raises(crypto.InvalidFraming):
        read_packet(b"\xd2\xe9" + body[:512] + b"\xe8" + body[512:768] + b"\x01" + body[768:769])
