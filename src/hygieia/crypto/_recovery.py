"""Recovery codes: 20 random bytes shown once, as 8 groups of 4 base32 characters.

The code is high-entropy (160 bits), so HKDF (no slow KDF) turns it into the key
that wraps the vault key a second time and into the verifier the server hashes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from ._kdf import hkdf_sha256

__all__ = [
    "RECOVERY_CODE_BYTES",
    "RecoveryKeys",
    "derive_recovery_keys",
    "format_recovery_code",
    "new_recovery_code",
    "parse_recovery_code",
]

RECOVERY_CODE_BYTES = 20
_CODE_CHARS = 32
_ALPHABET = re.compile(r"[A-Z2-7]{32}")
_SEPARATORS = re.compile(r"[-\s]")


@dataclass(frozen=True, slots=True, repr=False)
class RecoveryKeys:
    wrap_key: bytes
    auth_key: bytes

    def __repr__(self) -> str:
        return "RecoveryKeys(<secret>)"


def format_recovery_code(code_bytes: bytes) -> str:
    """Render 20 bytes as ``XXXX-XXXX-…`` (RFC 4648 base32, no padding)."""
    if len(code_bytes) != RECOVERY_CODE_BYTES:
        raise ValueError("recovery code must be 20 bytes")
    text = base64.b32encode(code_bytes).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, _CODE_CHARS, 4))


def new_recovery_code(*, code_bytes: bytes | None = None) -> str:
    """A fresh recovery code (``code_bytes`` only for test vectors)."""
    return format_recovery_code(
        os.urandom(RECOVERY_CODE_BYTES) if code_bytes is None else code_bytes
    )


def parse_recovery_code(text: str) -> bytes:
    """Drop ``-``/whitespace, upper-case, decode; ``ValueError`` if malformed."""
    compact = _SEPARATORS.sub("", text).upper()
    if not _ALPHABET.fullmatch(compact):
        raise ValueError("recovery code must be 32 base32 characters")
    try:
        return base64.b32decode(compact)
    except binascii.Error as exc:  # unreachable after the regex, kept as a guard
        raise ValueError("recovery code must be 32 base32 characters") from exc


def derive_recovery_keys(code_bytes: bytes, salt: bytes) -> RecoveryKeys:
    """HKDF-SHA256 keyed by the code, salted with the account's ``recovery_salt``.

    ``salt`` is the 16-byte ``recovery_salt`` chosen at sign-up (protocol §1).
    """
    if len(code_bytes) != RECOVERY_CODE_BYTES:
        raise ValueError("recovery code must be 20 bytes")
    if len(salt) != 16:
        raise ValueError("recovery salt must be 16 bytes")
    return RecoveryKeys(
        wrap_key=hkdf_sha256(code_bytes, salt=salt, info=b"hygieia/recovery-wrap"),
        auth_key=hkdf_sha256(code_bytes, salt=salt, info=b"hygieia/recovery-auth"),
    )
