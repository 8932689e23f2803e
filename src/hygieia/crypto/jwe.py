"""SMART Health Link files: compact JWE, ``alg: dir``, ``enc: A256GCM`` (SHL spec,
"Encrypting and Decrypting Files"; docs/protocol.md §9).

The JOSE work is joserfc's; this module only fixes the profile. Hygieia writes
``{"alg":"dir","enc":"A256GCM","cty":…}`` and never compresses. As a reader it accepts
what other SHL implementations write: no ``cty``, a ``kid``, other header parameters it
does not know, and ``zip: DEF`` (raw DEFLATE, inflated by joserfc up to its 250 KiB
cap). Any other ``alg``/``enc``, a bad tag, a malformed string: one opaque
:class:`DecryptionError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from ._errors import DecryptionError

__all__ = [
    "LINK_KEY_SIZE",
    "decrypt_link_file",
    "encrypt_link_file",
    "new_link_key",
    "protected_header",
]

LINK_KEY_SIZE = 32
ALG, ENC = "dir", "A256GCM"


def new_link_key() -> bytes:
    """A fresh SHL key: 32 random bytes (the link's ``key`` is its base64url)."""
    return secrets.token_bytes(LINK_KEY_SIZE)


def _registry(max_bytes: int, *, strict: bool) -> jwe.JWERegistry:
    registry = jwe.JWERegistry(algorithms=[ALG, ENC, "DEF"], strict_check_header=strict)
    # joserfc's default bound is 64 KiB of ciphertext; a linked PDF is far larger.
    registry.max_ciphertext_length = max_bytes
    return registry


def _key(key: bytes) -> OctKey:
    if len(key) != LINK_KEY_SIZE:
        raise ValueError("a link key is 32 bytes")
    return OctKey.import_key(key)


def encrypt_link_file(plaintext: bytes, *, key: bytes, content_type: str) -> str:
    """``plaintext`` as a compact JWE under ``key`` (a new random IV every time)."""
    header = {"alg": ALG, "enc": ENC, "cty": content_type}
    registry = _registry(max(len(plaintext) + 1024, 65536), strict=True)
    return jwe.encrypt_compact(header, plaintext, _key(key), registry=registry)


def protected_header(token: str) -> dict[str, Any]:
    """The JWE's protected header (not authenticated until decrypted)."""
    try:
        first = token.split(".", 1)[0]
        raw = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4))
        header = json.loads(raw)
    except (ValueError, binascii.Error):
        raise DecryptionError() from None
    if not isinstance(header, dict):
        raise DecryptionError()
    return header


def decrypt_link_file(
    token: str | bytes, *, key: bytes, max_bytes: int
) -> tuple[bytes, str | None]:
    """The plaintext of a link file and its ``cty`` (None when the writer set none)."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise DecryptionError() from None
    token = token.strip()
    if len(token) > max_bytes * 4 // 3 + 4096:
        raise DecryptionError()
    header = protected_header(token)
    if header.get("alg") != ALG or header.get("enc") != ENC:
        raise DecryptionError()
    try:
        result = jwe.decrypt_compact(
            token, _key(key), registry=_registry(max_bytes + 1024, strict=False)
        )
    except (JoseError, ValueError, TypeError):
        raise DecryptionError() from None
    if result.plaintext is None or len(result.plaintext) > max_bytes:
        raise DecryptionError()
    cty = result.protected.get("cty")
    return result.plaintext, cty if isinstance(cty, str) else None
