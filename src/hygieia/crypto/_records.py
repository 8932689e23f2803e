"""Record encryption in segments (protocol §3).

A record's plaintext is cut into segments; segment *i* of *n* is the signed
literal ``b"HYGSEG01" || u32be(i) || u32be(n) || chunk`` inside one SEIPDv1
packet (AES-256) under the record's session key, with a fixed five-octet length
header, so that ``cat pkesk.bin seg_i | gpg -d`` opens each one and every client
works with one segment in memory at a time. The session key reaches each reader
as a v3 PKESK for their cv25519 subkey.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

import openpgp
from openpgp.composed import MessageBuilder, SignedPublicKey

from ._errors import DecryptionError, InvalidFraming, InvalidKeyMaterial, refused_as
from ._framing import (
    MAX_SEGMENT_OVERHEAD,
    SEGMENT_SIZE,
    fixed_header,
    iter_packets,
    max_segment_packet,
    read_exactly,
    read_packet,
)
from ._identity import UnlockedKey, load_public_key
from ._opening import open_signed, session_key_from_pkesk

__all__ = [
    "MAX_SEGMENT_OVERHEAD",
    "SEGMENT_HEADER",
    "SEGMENT_SIZE",
    "SESSION_KEY_SIZE",
    "make_pkesk",
    "max_segment_packet",
    "message_recipients",
    "new_session_key",
    "open_segments",
    "pkesk_key_id",
    "seal_segments",
    "segment_count",
]

SESSION_KEY_SIZE = 32
SEGMENT_HEADER = b"HYGSEG01"
_HEADER = struct.Struct(">8sII")
_TAG_SEIPD = 18
_TAG_PKESK = 1


def new_session_key() -> bytes:
    """A fresh random AES-256 session key."""
    return os.urandom(SESSION_KEY_SIZE)


def segment_count(size: int, segment_size: int = SEGMENT_SIZE) -> int:
    """How many segments a plaintext of ``size`` bytes becomes (an empty file: one)."""
    if size < 0 or segment_size <= 0:
        raise ValueError("size must be >= 0 and segment_size > 0")
    return max(1, -(-size // segment_size))


def _check_session_key(session_key: bytes) -> None:
    if len(session_key) != SESSION_KEY_SIZE:
        raise ValueError("session key must be 32 bytes")


def _seal_one(plaintext: bytes, session_key: bytes, signer: UnlockedKey) -> bytes:
    return _seal_built(MessageBuilder.from_bytes("", plaintext), session_key, signer)


def _seal_built(message: MessageBuilder, session_key: bytes, signer: UnlockedKey) -> bytes:
    """``message`` signed, in one SEIPDv1 packet under ``session_key``, fixed-length framed.

    Apart from :func:`_seal_one`, only the forgery helpers of the tests build on this
    (with a compressed ``message``), so what they forge is sealed exactly as records are.
    """
    packet = (
        message.seipd_v1("aes256")
        .set_session_key(session_key)
        .sign(signer._secret, signer._passphrase, "sha256")
        .to_vec()
    )
    # rPGP frames large packets with partial lengths; re-frame with a fixed length.
    tag, body, end = read_packet(packet)
    if tag != _TAG_SEIPD or end != len(packet):
        raise RuntimeError("unexpected output from the OpenPGP library")  # pragma: no cover
    return fixed_header(_TAG_SEIPD, len(body)) + body


def seal_segments(
    source: BinaryIO,
    *,
    session_key: bytes,
    signer: UnlockedKey,
    size: int,
    segment_size: int = SEGMENT_SIZE,
) -> Iterator[bytes]:
    """Encrypt ``size`` bytes from ``source``; yield one segment packet at a time.

    ``ValueError`` if the source holds fewer or more than ``size`` bytes (checked
    as it is read, so the error may come after some segments were yielded).
    """
    _check_session_key(session_key)
    total = segment_count(size, segment_size)
    return _seal_segments(source, session_key, signer, size, segment_size, total)


def _seal_segments(
    source: BinaryIO,
    session_key: bytes,
    signer: UnlockedKey,
    size: int,
    segment_size: int,
    total: int,
) -> Iterator[bytes]:
    for index in range(total):
        want = min(segment_size, size - index * segment_size)
        chunk = read_exactly(source, want)
        if len(chunk) != want:
            raise ValueError("source is shorter than size")
        yield _seal_one(_HEADER.pack(SEGMENT_HEADER, index, total) + chunk, session_key, signer)
        del chunk
    if source.read(1):
        raise ValueError("source is longer than size")


def open_segments(
    source: BinaryIO,
    *,
    signer_public_key: str,
    session_key: bytes | None = None,
    pkesk: bytes | None = None,
    key: UnlockedKey | None = None,
    max_packet: int | None = None,
    segment_size: int = SEGMENT_SIZE,
) -> Iterator[bytes]:
    """Decrypt and verify a record's segments; yield each plaintext chunk in order.

    Pass either ``session_key``, or ``pkesk`` (the reader's PKESK) with ``key``
    (the reader's unlocked key). Every segment must be signed by
    ``signer_public_key``, carry the right index and total, hold no compressed
    packet, and hold exactly ``segment_size`` bytes of chunk (at most that for the
    last one); a segment whose literal is longer is refused before rPGP reads it.
    Anything wrong (tampering, a dropped, duplicated, reordered or foreign
    segment, truncation) raises :class:`DecryptionError`, possibly after earlier
    chunks were yielded, so callers must discard their output when it does (as
    with ``gpg -d``).
    """
    if (session_key is None) == (pkesk is None and key is None):
        raise ValueError("pass either session_key, or pkesk and key")
    if session_key is not None:
        _check_session_key(session_key)
    elif pkesk is None or key is None:
        raise ValueError("pkesk and key go together")
    if segment_size <= 0:
        raise ValueError("segment_size must be > 0")
    try:
        signer = load_public_key(signer_public_key)
    except InvalidKeyMaterial:
        raise DecryptionError() from None
    limit = max_packet if max_packet is not None else max_segment_packet(segment_size)
    return _open_segments(source, signer, session_key, pkesk, key, limit, segment_size)


def _open_segments(
    source: BinaryIO,
    signer: SignedPublicKey,
    session_key: bytes | None,
    pkesk: bytes | None,
    key: UnlockedKey | None,
    limit: int,
    segment_size: int,
) -> Iterator[bytes]:
    expected_total: int | None = None
    index = 0
    try:
        if session_key is None:
            assert pkesk is not None and key is not None
            tag, body, end = read_packet(pkesk)
            if tag != _TAG_PKESK or end != len(pkesk):
                raise DecryptionError()
            session_key = session_key_from_pkesk([body], key)
        for packet in iter_packets(source, max_packet=limit):
            plaintext = open_signed(
                packet, signer, session_key=session_key, max_literal=_HEADER.size + segment_size
            )
            if len(plaintext) < _HEADER.size:
                raise DecryptionError()
            magic, got_index, total = _HEADER.unpack_from(plaintext)
            if expected_total is None:
                expected_total = total
            if magic != SEGMENT_HEADER or got_index != index or total != expected_total:
                raise DecryptionError()
            if index >= total:
                raise DecryptionError()
            chunk_size = len(plaintext) - _HEADER.size
            # Every segment but the last is full; only the first may be empty (empty file).
            short = chunk_size != segment_size and (index != total - 1 or chunk_size == 0 < index)
            if chunk_size > segment_size or short:
                raise DecryptionError()
            index += 1
            yield plaintext[_HEADER.size :]
    except InvalidFraming:
        raise DecryptionError() from None
    if expected_total is None or index != expected_total:
        raise DecryptionError()


def make_pkesk(session_key: bytes, public_key_armored: str) -> bytes:
    """A v3 PKESK (binary packet) of ``session_key`` for the key's cv25519 subkey."""
    _check_session_key(session_key)
    recipient = load_public_key(public_key_armored)
    packet = openpgp.util.encrypt_session_key_to_recipient(
        session_key,
        recipient.public_subkeys[0],
        version="seipd-v1",
        symmetric_algorithm="aes256",
    )
    return packet.to_bytes()


def pkesk_key_id(pkesk: bytes) -> str:
    """The recipient key id (16 upper-case hex) named by a v3 PKESK packet."""
    try:
        tag, _, end = read_packet(pkesk)
    except InvalidFraming:
        raise InvalidFraming("not a PKESK packet") from None
    if tag != _TAG_PKESK or end != len(pkesk):
        raise InvalidFraming("not a single PKESK packet")
    with refused_as(lambda: InvalidFraming("not a PKESK packet")):
        value = openpgp.packet.Packet.from_bytes(pkesk).value
    if not isinstance(value, openpgp.packet.PublicKeyEncryptedSessionKey) or value.version != 3:
        raise InvalidFraming("not a v3 PKESK packet")
    key_id = value.recipient_key_id
    if key_id is None or len(key_id) != 16:
        raise InvalidFraming("PKESK names no recipient")
    return key_id.upper()


def message_recipients(message: bytes) -> list[str]:
    """The key ids (16 upper-case hex) a sealed message is encrypted to, in order.

    The message must be one or more v3 PKESKs and then one SEIPDv1 packet, nothing
    after it (what :func:`~._messages.seal_message` writes): else :class:`InvalidFraming`.
    For the server, which can check whom sealed metadata is for, never what it says.
    """
    ids: list[str] = []
    offset = 0
    while offset < len(message):
        tag, body, end = read_packet(message, offset)
        if tag == _TAG_PKESK:
            ids.append(pkesk_key_id(message[offset:end]))
        elif tag == _TAG_SEIPD and ids and end == len(message) and body[:1] == b"\x01":
            return ids
        else:
            raise InvalidFraming("not a message of PKESKs and one SEIPDv1 packet")
        offset = end
    raise InvalidFraming("message without an encrypted packet")
