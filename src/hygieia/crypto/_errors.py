"""Exceptions raised by :mod:`hygieia.crypto`.

Anything that fails to decrypt or verify raises the single opaque
:class:`DecryptionError` (as ``cryptography.fernet.InvalidToken`` does), so that
callers cannot build an oracle out of the different ways a ciphertext can be bad.
Key material that a server can check without any secret raises
:class:`InvalidKeyMaterial` with a stable ``reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

KeyMaterialReason = Literal["invalid_key", "unlocked_secret_key", "key_mismatch"]


class CryptoError(Exception):
    """Base class of every error raised by :mod:`hygieia.crypto`."""


class DecryptionError(CryptoError):
    """A ciphertext, signature or passphrase did not check out (deliberately opaque)."""

    def __init__(self, message: str = "decryption or verification failed") -> None:
        super().__init__(message)


class RecordMismatch(DecryptionError):
    """Sealed metadata that opened and verified, but belongs to another record.

    Not opaque, unlike its base: the metadata is genuine (the owner signed it), so the
    only thing learnt is that the server served it under the wrong id, and the user
    should be told exactly that. ``expected`` is the id asked for; ``found`` the id the
    metadata names (None if it isn't a well-formed id).
    """

    def __init__(self, expected: str, found: str | None = None) -> None:
        whose = f"record {found}'s" if found else "another record's"
        super().__init__(
            f"the server sent {whose} sealed metadata for record {expected} "
            "(records swapped, moved or resurrected): refused"
        )
        self.expected = expected
        self.found = found


class InvalidKeyMaterial(CryptoError):
    """Uploaded OpenPGP key material is unusable; ``reason`` is machine-readable."""

    reason: KeyMaterialReason

    def __init__(self, reason: KeyMaterialReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidFraming(CryptoError):
    """A byte stream is not a well-formed sequence of record segments or packets."""


def _is_library_panic(exc: BaseException) -> bool:
    # rPGP is Rust: a panic inside it (a bug reached by hostile input) comes back as
    # pyo3's PanicException, which derives from BaseException, not Exception, so an
    # ``except Exception`` lets it through as a crash (a 500 on the server). pyo3 does
    # not export the class, so it is known by its name.
    return type(exc).__name__ == "PanicException"


@contextmanager
def refused_as(error: Callable[[], CryptoError]) -> Iterator[None]:
    """Run library code on untrusted bytes: our own errors pass, anything the library
    raises (a Rust panic included) becomes ``error()``; interrupts still interrupt."""
    try:
        yield
    except CryptoError:
        raise
    except Exception:
        raise error() from None
    except BaseException as exc:
        if _is_library_panic(exc):
            raise error() from None
        raise
