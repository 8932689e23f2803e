"""Messages a hostile writer could make: compressed, yet validly signed (issue 9, finding 6).

Shared by the Python reader tests (tests/crypto/test_compression.py) and the browser
ones (tests/browser/test_record_format.py). rPGP builds them from a streamed source,
so a bomb of hundreds of MiB costs a fraction of a second and no memory to make.
:func:`seipd_v1` encrypts any packets a holder of the session key cares to write, for
the attacks on the packet check (tests/crypto/test_opening.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct

import pytest
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from openpgp.composed import MessageBuilder

from hygieia import crypto
from hygieia.crypto._framing import fixed_header, read_packet
from hygieia.crypto._identity import load_public_key
from hygieia.crypto._records import _seal_built
from tests.support.identities import Person

__all__ = [
    "assert_unreadable",
    "forged_message",
    "forged_segment",
    "seipd_v1",
    "signed_literal_packets",
]


class _Zeros(io.RawIOBase):
    """``prefix`` then zeros, ``size`` bytes in all, without holding them."""

    def __init__(self, size: int, prefix: bytes = b"") -> None:
        self._left = size
        self._prefix = prefix

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        head = self._prefix[:n]
        buffer[: len(head)] = head
        buffer[len(head) : n] = bytes(n - len(head))
        self._prefix = self._prefix[len(head) :]
        self._left -= n
        return n


def _compressed(size: int, prefix: bytes = b"") -> MessageBuilder:
    """A literal of ``size`` mostly-zero bytes, zlib-compressed (about 1000:1)."""
    source = io.BufferedReader(_Zeros(size, prefix))
    return MessageBuilder.from_reader("", source).compression("zlib")


def forged_message(signer: crypto.UnlockedKey, recipient_public_key: str, size: int) -> bytes:
    """Sealed metadata or an envelope whose literal of ``size`` zeros is compressed."""
    recipient = load_public_key(recipient_public_key)
    return (
        _compressed(size)
        .seipd_v1("aes256")
        .sign(signer._secret, signer._passphrase, "sha256")
        .encrypt_to_key(recipient.public_subkeys[0])
        .to_vec()
    )


def forged_segment(signer: crypto.UnlockedKey, session_key: bytes, chunk: int) -> bytes:
    """Segment 0 of 1 holding ``chunk`` zeros, compressed, with the fixed-length header."""
    header = struct.pack(">8sII", b"HYGSEG01", 0, 1)
    return _seal_built(_compressed(16 + chunk, header), session_key, signer)


def seipd_v1(inner: bytes, session_key: bytes) -> bytes:
    """A SEIPDv1 packet holding ``inner`` (any packets) with a valid MDC, framed fixed.

    What a holder of the session key (a record's writer, or anyone it was shared
    with) can put in front of a reader; only the reader's checks stand in the way.
    """
    prefix = os.urandom(16)
    plain = prefix + prefix[-2:] + inner + b"\xd3\x14"
    plain += hashlib.sha1(plain).digest()  # the RFC 4880 MDC
    encryptor = Cipher(algorithms.AES256(session_key), CFB(bytes(16))).encryptor()
    body = b"\x01" + encryptor.update(plain) + encryptor.finalize()
    return fixed_header(18, len(body)) + body


def signed_literal_packets(
    signer: crypto.UnlockedKey, data: bytes, session_key: bytes
) -> list[tuple[int, bytes]]:
    """``(tag, body)`` of the OPS, Literal and Signature packets rPGP writes for ``data``."""
    message = _seal_built(MessageBuilder.from_bytes("", data), session_key, signer)
    _, body, _ = read_packet(message)
    decryptor = Cipher(algorithms.AES256(session_key), CFB(bytes(16))).decryptor()
    inner = (decryptor.update(body[1:]) + decryptor.finalize())[18:-22]
    packets, pos = [], 0
    while pos < len(inner):
        tag, packet_body, pos = read_packet(inner, pos)
        packets.append((tag, packet_body))
    return packets


def assert_unreadable(reader: Person, message: bytes, segments: bytes, session_key: bytes) -> None:
    """Both Python readers refuse these bytes from ``reader``'s own key: ``message`` as
    sealed metadata or an envelope, ``segments`` as a record's content."""
    with pytest.raises(crypto.DecryptionError):
        crypto.open_message(message, key=reader.key, signer_public_key=reader.identity.public_key)
    with pytest.raises(crypto.DecryptionError):
        list(
            crypto.open_segments(
                io.BytesIO(segments),
                session_key=session_key,
                signer_public_key=reader.identity.public_key,
            )
        )
