"""The vault key: a random data key wrapped by password- or recovery-derived keys.

``wrapped = 0x01 || nonce(12) || AES-256-GCM(key, nonce, vault_key, aad)`` (61 bytes).
Changing the password re-wraps these few bytes; the OpenPGP key locked with the
vault key (as lowercase hex passphrase) changes only with a key rotation, which makes a
new vault key too (docs/protocol.md §12).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import DecryptionError

__all__ = [
    "VAULT_KEY_SIZE",
    "WRAPPED_VAULT_KEY_SIZE",
    "new_vault_key",
    "unwrap_vault_key",
    "vault_passphrase",
    "wrap_vault_key",
]

VAULT_KEY_SIZE = 32
_VERSION = b"\x01"
_NONCE_SIZE = 12
_AAD = b"hygieia/vault-key/v1"
WRAPPED_VAULT_KEY_SIZE = 1 + _NONCE_SIZE + VAULT_KEY_SIZE + 16


def new_vault_key() -> bytes:
    """A fresh random 256-bit vault key."""
    return os.urandom(VAULT_KEY_SIZE)


def wrap_vault_key(vault_key: bytes, key: bytes, *, nonce: bytes | None = None) -> bytes:
    """Wrap ``vault_key`` under the 32-byte ``key`` (``nonce`` only for test vectors)."""
    if len(vault_key) != VAULT_KEY_SIZE or len(key) != 32:
        raise ValueError("vault key and wrapping key must be 32 bytes")
    if nonce is None:
        nonce = os.urandom(_NONCE_SIZE)
    elif len(nonce) != _NONCE_SIZE:
        raise ValueError("nonce must be 12 bytes")
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, vault_key, _AAD)


def unwrap_vault_key(wrapped: bytes, key: bytes) -> bytes:
    """Inverse of :func:`wrap_vault_key`; :class:`DecryptionError` on anything wrong."""
    if len(wrapped) != WRAPPED_VAULT_KEY_SIZE or wrapped[:1] != _VERSION or len(key) != 32:
        raise DecryptionError()
    nonce, body = wrapped[1 : 1 + _NONCE_SIZE], wrapped[1 + _NONCE_SIZE :]
    try:
        return AESGCM(key).decrypt(nonce, body, _AAD)
    except InvalidTag:
        raise DecryptionError() from None


def vault_passphrase(vault_key: bytes) -> str:
    """The OpenPGP passphrase for a vault key: 64 lowercase hex characters."""
    if len(vault_key) != VAULT_KEY_SIZE:
        raise ValueError("vault key must be 32 bytes")
    return vault_key.hex()
