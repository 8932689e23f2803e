"""CIDs: parse any spelling the stores meet, print one canonical form.

The canonical form is CIDv1, base32 lower-case multibase (``b…``): ``bafk…`` for raw
blocks, ``bafy…`` for dag-pb. Parsing also accepts base58btc CIDv1 (``z…``, as
js-ipfs prints them) and CIDv0 (``Qm…``, which is dag-pb by definition), so CIDs are
compared decoded, never as strings. Only sha2-256 multihashes of raw or dag-pb blocks
are accepted: those are the only blocks Hygieia makes, and anything else is refused
with ``ValueError`` before it can reach a path or a URL.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12

_CODECS = frozenset({RAW, DAG_PB})
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_B32_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_MAX_CID_CHARS = 128  # a sha2-256 CIDv1 is 59 characters in base32


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Read an unsigned LEB128 varint at ``pos``; return ``(value, next_pos)``."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError("invalid base58 character") from None
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * zeros + body


@dataclass(frozen=True, slots=True)
class CID:
    """A parsed CID. ``str(cid)`` is the canonical CIDv1 base32 spelling."""

    codec: int
    digest: bytes  # the sha2-256 digest

    @classmethod
    def for_block(cls, codec: int, block: bytes) -> CID:
        return cls(codec, hashlib.sha256(block).digest())

    @property
    def multihash(self) -> bytes:
        return bytes((SHA2_256, 32)) + self.digest

    @property
    def binary(self) -> bytes:
        """Binary CIDv1 (as it appears in dag-pb links and CAR files)."""
        return b"\x01" + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        return "b" + base64.b32encode(self.binary).decode("ascii").rstrip("=").lower()

    def verify(self, block: bytes) -> bool:
        return hashlib.sha256(block).digest() == self.digest

    @classmethod
    def from_bytes(cls, raw: bytes) -> CID:
        """Parse a binary CID (v1, or a bare v0 multihash)."""
        if len(raw) == 34 and raw[0] == SHA2_256 and raw[1] == 32:
            return cls(DAG_PB, bytes(raw[2:]))
        version, pos = decode_varint(raw, 0)
        if version != 1:
            raise ValueError("unsupported CID version")
        codec, pos = decode_varint(raw, pos)
        if codec not in _CODECS:
            raise ValueError("unsupported CID codec")
        hash_code, pos = decode_varint(raw, pos)
        length, pos = decode_varint(raw, pos)
        if hash_code != SHA2_256 or length != 32:
            raise ValueError("unsupported multihash (only sha2-256)")
        if len(raw) != pos + 32:
            raise ValueError("CID has the wrong length")
        return cls(codec, bytes(raw[pos:]))


def parse_cid(text: str) -> CID:
    """Parse a CID string (CIDv1 base32 or base58btc, or CIDv0); ``ValueError`` if malformed."""
    if not isinstance(text, str):
        raise ValueError("CID must be a string")
    if not 2 <= len(text) <= _MAX_CID_CHARS or not text.isascii():
        raise ValueError("malformed CID")
    if len(text) == 46 and text.startswith("Qm"):
        raw = _b58decode(text)
    elif text[0] in "bB":
        body = text[1:].lower()
        if not set(body) <= _B32_CHARS:
            raise ValueError("malformed CID: invalid base32")
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except ValueError:
            raise ValueError("malformed CID: invalid base32") from None
    elif text[0] == "z":
        raw = _b58decode(text[1:])
    else:
        raise ValueError("malformed CID: unsupported multibase")
    return CID.from_bytes(raw)


def normalize_cid(text: str) -> str:
    """The canonical CIDv1 base32 spelling of any accepted CID string."""
    return str(parse_cid(text))
