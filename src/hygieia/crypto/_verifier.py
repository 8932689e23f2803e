"""Server-side slow hashing of client-derived secrets (``auth_key``, ``recovery_auth``).

The client already ran Argon2id over the password, so these inputs are 256-bit
keys; the server hashes them again so that a leaked database row can't be replayed
as a login. :func:`dummy_verify` spends the same time for unknown accounts.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["dummy_verify", "hash_secret", "needs_rehash", "verify_secret"]

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16)


def hash_secret(secret: bytes) -> str:
    """An encoded ``$argon2id$…`` hash of ``secret``."""
    return _HASHER.hash(secret)


def verify_secret(stored_hash: str, secret: bytes) -> bool:
    """True iff ``secret`` matches; never raises on a mismatch or a malformed hash."""
    try:
        return _HASHER.verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True if ``stored_hash`` was made with other parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


# A fixed hash made with the parameters above (tests check they still match), so
# the first unknown-account login costs no more than any other.
_DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$u02Y9ALqwpdfShr5g7oNZw"
    "$QAc70Q4lVeohZcPBtIe/aMx+2XZwBOzBOPN66GFZNCk"
)


def dummy_verify(secret: bytes) -> None:
    """Cost one real verification, for an unknown account (timing equality)."""
    verify_secret(_DUMMY_HASH, secret)
