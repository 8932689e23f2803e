"""Exceptions raised by :mod:`hygieia.crypto`.

Anything that fails to decrypt or verify raises the single opaque
:class:`DecryptionError` (as ``cryptography.fernet.InvalidToken`` does), so that
callers cannot build an oracle out of the different ways a ciphertext can be bad.
Key material that a server can check without any secret raises
:class:`InvalidKeyMaterial` with a stable ``reason``.
"""

from __future__ import annotations

from typing import Literal

KeyMaterialReason = Literal["invalid_key", "unlocked_secret_key", "key_mismatch"]


class CryptoError(Exception):
    """Base class of every error raised by :mod:`hygieia.crypto`."""


class DecryptionError(CryptoError):
    """A ciphertext, signature or passphrase did not check out (deliberately opaque)."""

    def __init__(self, message: str = "decryption or verification failed") -> None:
        super().__init__(message)


class InvalidKeyMaterial(CryptoError):
    """Uploaded OpenPGP key material is unusable; ``reason`` is machine-readable."""

    reason: KeyMaterialReason

    def __init__(self, reason: KeyMaterialReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidFraming(CryptoError):
    """A byte stream is not a well-formed sequence of record segments or packets."""
