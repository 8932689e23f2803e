"""The packet check in front of rPGP (hygieia.crypto._opening), attacked directly.

A writer holding a record's session key (its author, or anyone it is shared with)
can put any packets inside a SEIPDv1 packet with a valid MDC; a hostile server can
frame the outer packets as it likes. Whatever they send, a reader must end in
``DecryptionError`` (no other exception, no inflation) in bounded memory, and open
only a one-pass signed literal.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hygieia import crypto
from hygieia.crypto._errors import refused_as
from hygieia.crypto._framing import fixed_header, read_packet
from hygieia.crypto._identity import load_public_key
from hygieia.crypto._messages import MAX_MESSAGE_SIZE
from hygieia.crypto._opening import open_signed
from tests.support.identities import Person

from .forgery import assert_unreadable, seipd_v1, signed_literal_packets

OPS, LITERAL, SIG, COMPRESSED, MARKER, PADDING = 4, 11, 2, 8, 10, 21
SESSION_KEY = bytes(range(32))
MIB = 1024 * 1024


def new(tag: int, body: bytes) -> bytes:
    return fixed_header(tag, len(body)) + body


def old(tag: int, body: bytes) -> bytes:
    """An old-format header (RFC 4880 §4.2.1), four-octet length."""
    return bytes([0x80 | tag << 2 | 2]) + struct.pack(">I", len(body)) + body


def partial(tag: int, body: bytes, chunk_power: int, first_power: int | None = None) -> bytes:
    """``body`` in partial chunks of 2**chunk_power bytes (the first 2**first_power)."""
    out = bytearray([0xC0 | tag])
    pos, power = 0, chunk_power if first_power is None else first_power
    while len(body) - pos > 1 << power:
        out += bytes([224 + power]) + body[pos : pos + (1 << power)]
        pos += 1 << power
        power = chunk_power
    rest = body[pos:]
    out += (b"\xff" + struct.pack(">I", len(rest))) + rest
    return bytes(out)


def literal_body(data: bytes) -> bytes:
    return b"b\x00" + bytes(4) + data


def opened(alice: Person, inner: bytes, max_literal: int = 1 << 20) -> bytes:
    signer = load_public_key(alice.identity.public_key)
    return open_signed(
        seipd_v1(inner, SESSION_KEY), signer, session_key=SESSION_KEY, max_literal=max_literal
    )


@pytest.fixture(scope="module")
def packets(alice: Person) -> dict[int, bytes]:
    """Bodies of the OPS, Literal and Signature packets of a signed b"hello"."""
    return dict(signed_literal_packets(alice.key, b"hello", SESSION_KEY))


def test_the_packets_as_written_open_with_new_or_old_headers(
    alice: Person, packets: dict[int, bytes]
) -> None:
    """The control: the check refuses shapes, not this one (old headers are legal)."""
    for frame in (new, old):
        assert opened(alice, b"".join(frame(t, packets[t]) for t in (OPS, LITERAL, SIG))) == (
            b"hello"
        )


SHAPES: dict[str, Callable[[dict[int, bytes]], bytes]] = {
    "compressed literal": lambda p: (
        (new(OPS, p[OPS]) + new(COMPRESSED, b"\x02" + zlib.compress(new(LITERAL, p[LITERAL]))))
        + new(SIG, p[SIG])
    ),
    "compressed, old header": lambda p: (
        (new(OPS, p[OPS]) + old(COMPRESSED, b"\x02" + zlib.compress(new(LITERAL, p[LITERAL]))))
        + new(SIG, p[SIG])
    ),
    "compressed, partial lengths": lambda p: (
        new(OPS, p[OPS])
        + partial(COMPRESSED, b"\x00" + new(LITERAL, p[LITERAL]) + bytes(2000), 9)
        + new(SIG, p[SIG])
    ),
    "everything compressed": lambda p: new(
        COMPRESSED,
        b"\x01" + zlib.compress(b"".join(new(t, p[t]) for t in (OPS, LITERAL, SIG)))[2:-4],
    ),
    "marker first": lambda p: (
        new(MARKER, b"PGP") + b"".join(new(t, p[t]) for t in (OPS, LITERAL, SIG))
    ),
    "padding last": lambda p: (
        b"".join(new(t, p[t]) for t in (OPS, LITERAL, SIG)) + new(PADDING, bytes(16))
    ),
    "second literal": lambda p: b"".join(new(t, p[t]) for t in (OPS, LITERAL, LITERAL, SIG)),
    "second signature": lambda p: b"".join(new(t, p[t]) for t in (OPS, LITERAL, SIG, SIG)),
    "signature first": lambda p: new(SIG, p[SIG]) + new(LITERAL, p[LITERAL]),
    "no one-pass signature": lambda p: new(LITERAL, p[LITERAL]) + new(SIG, p[SIG]),
    "trailing byte": lambda p: b"".join(new(t, p[t]) for t in (OPS, LITERAL, SIG)) + b"\x00",
    "indeterminate old length": lambda p: (
        new(OPS, p[OPS]) + bytes([0x80 | LITERAL << 2 | 3]) + p[LITERAL] + new(SIG, p[SIG])
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_anything_but_one_pass_signed_literal_is_refused(
    alice: Person, packets: dict[int, bytes], shape: str
) -> None:
    with pytest.raises(crypto.DecryptionError):
        opened(alice, SHAPES[shape](packets))


class PanicException(BaseException):
    """Named like pyo3's (which pyo3 does not export): how a Rust panic in rPGP arrives."""


def test_a_library_panic_is_refused_like_any_bad_message(
    alice: Person, packets: dict[int, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Well-formed packets pass our own check, so rPGP gets them; if it panics (a bug
    # reachable by hostile bytes), the reader still ends in DecryptionError, and the
    # server's PKESK check in InvalidFraming, not in a BaseException that escapes
    # every ``except Exception`` as a crash.
    def panic(*_args: object) -> None:
        raise PanicException("called `Option::unwrap()` on a `None` value")

    good = b"".join(new(t, packets[t]) for t in (OPS, LITERAL, SIG))
    monkeypatch.setattr("hygieia.crypto._opening.Message.from_bytes", panic)
    with pytest.raises(crypto.DecryptionError):
        opened(alice, good)
    monkeypatch.setattr("openpgp.packet.Packet.from_bytes", panic)
    with pytest.raises(crypto.InvalidFraming):
        crypto.pkesk_key_id(new(1, b"\x03" + bytes(9)))


def test_interrupts_still_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt), refused_as(crypto.DecryptionError):
        raise KeyboardInterrupt


def test_literal_length_is_summed_over_partial_chunks(alice: Person) -> None:
    """The bound counts every chunk of a partially framed literal, not the first."""
    data = os.urandom(3000)
    p = dict(signed_literal_packets(alice.key, data, SESSION_KEY))

    def inner(body: bytes) -> bytes:
        return new(OPS, p[OPS]) + partial(LITERAL, body, 9) + new(SIG, p[SIG])

    assert opened(alice, inner(p[LITERAL]), max_literal=3000) == data
    with pytest.raises(crypto.DecryptionError):
        opened(alice, inner(p[LITERAL]), max_literal=2999)


def _peak(run: Callable[[], object]) -> tuple[int, float]:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(crypto.DecryptionError):
            run()
        return tracemalloc.get_traced_memory()[1], time.perf_counter() - t0
    finally:
        tracemalloc.stop()


def test_one_byte_partial_chunks_in_a_segment_are_refused_cheaply(alice: Person) -> None:
    """A segment's literal cut into 1-byte partial chunks (legal to RFC 9580 after a
    512-byte first one) is refused before anything walks it chunk by chunk.

    Failed before: the check listed one span per chunk (a 4 MiB segment cost 280 MB
    and 2 s of CPU before rPGP even started) and then opened the segment.
    """
    data = struct.pack(">8sII", b"HYGSEG01", 0, 1) + bytes(MIB)
    p = dict(signed_literal_packets(alice.key, data, SESSION_KEY))
    literal = partial(LITERAL, p[LITERAL], 0, first_power=9)
    segment = seipd_v1(new(OPS, p[OPS]) + literal + new(SIG, p[SIG]), SESSION_KEY)
    assert len(segment) - 6 < crypto.max_segment_packet()
    peak, seconds = _peak(
        lambda: list(
            crypto.open_segments(
                io.BytesIO(segment),
                session_key=SESSION_KEY,
                signer_public_key=alice.identity.public_key,
            )
        )
    )
    assert peak < 16 * MIB  # 2 MiB of segment; 1-byte chunks used to cost ~70 bytes each
    assert seconds < 1.0


def test_one_byte_partial_chunks_in_a_sealed_message_are_refused_cheaply(
    alice: Person,
) -> None:
    """A hostile server needs no key to frame sealed metadata's SEIPD in 1-byte chunks.

    Failed before: the outer packet's spans were listed (75 MB for a 1 MiB message)
    before the MDC was checked.
    """
    message = crypto.seal_message(
        b'{"v":1}', recipients=[alice.identity.public_key], signer=alice.key
    )
    _, _, pkesk_end = read_packet(message)
    body = os.urandom(MAX_MESSAGE_SIZE - 2048)
    forged = message[:pkesk_end] + partial(18, b"\x01" + body, 0, first_power=9)
    assert len(forged) < MAX_MESSAGE_SIZE * 2 + 64 * 1024
    peak, seconds = _peak(
        lambda: crypto.open_message(
            forged[: MAX_MESSAGE_SIZE + 64 * 1024],
            key=alice.key,
            signer_public_key=alice.identity.public_key,
        )
    )
    assert peak < 8 * MIB
    assert seconds < 1.0


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: overwrite, delete, insert, truncate."""
    out = bytearray(data)
    for kind, position, value in edits:
        if not out:
            break
        i = position % len(out)
        if kind == 0:
            out[i] = value
        elif kind == 1:
            del out[i : i + 1 + value % 16]
        elif kind == 2:
            out[i:i] = bytes([value]) * (1 + value % 4)
        else:
            del out[i:]
    return bytes(out)


EDITS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(which=st.sampled_from([OPS, LITERAL, SIG]), edits=EDITS, old_headers=st.booleans())
def test_fuzz_mutated_packets_inside_a_valid_mdc(
    alice: Person, packets: dict[int, bytes], which: int, edits: list, old_headers: bool
) -> None:
    """Mutated OPS, literal or signature bodies, correctly encrypted: nothing but
    DecryptionError escapes (rPGP parses these after the check)."""
    bodies = dict(packets)
    bodies[which] = _mutate(bodies[which], edits)
    frame = old if old_headers else new
    inner = b"".join(frame(t, bodies[t]) for t in (OPS, LITERAL, SIG))
    with contextlib.suppress(crypto.DecryptionError):
        assert opened(alice, inner) == b"hello"


@FUZZ
@given(edits=EDITS)
def test_fuzz_mutated_sealed_messages(alice: Person, sealed: bytes, edits: list) -> None:
    """Mutated PKESK and SEIPD framing and bytes: only DecryptionError escapes."""
    try:
        got = crypto.open_message(
            _mutate(sealed, edits), key=alice.key, signer_public_key=alice.identity.public_key
        )
    except crypto.DecryptionError:
        return
    assert got == b'{"v":1}'


@FUZZ
@given(data=st.binary(max_size=512))
def test_fuzz_random_bytes(alice: Person, data: bytes) -> None:
    assert_unreadable(alice, data, data, SESSION_KEY)


@pytest.fixture(scope="module")
def sealed(alice: Person) -> bytes:
    return crypto.seal_message(b'{"v":1}', recipients=[alice.identity.public_key], signer=alice.key)
