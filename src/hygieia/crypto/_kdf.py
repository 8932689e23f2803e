"""Password key derivation for zero-knowledge login (protocol §1).

``master = Argon2id(NFKC(password), salt, params)``, then two independent 32-byte
keys are expanded with HKDF-SHA256: ``auth_key`` (sent to the server, which only
stores a slow hash of it) and ``wrap_key`` (wraps the vault key; never leaves the
client).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "DEFAULT_KDF",
    "SALT_SIZE",
    "DerivedKeys",
    "KdfParams",
    "derive_keys",
    "derive_master",
    "hkdf_sha256",
    "new_salt",
]

SALT_SIZE = 16
_KEY_SIZE = 32

# Bounds accepted from the wire: low enough to refuse a downgrade to something
# trivially brute-forced, high enough that a hostile server can't make a client
# allocate absurd memory or spin for minutes.
_M_RANGE = (8192, 1048576)  # KiB
_T_RANGE = (1, 10)
_P_RANGE = (1, 4)


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters as stored per account (``m`` in KiB)."""

    alg: str = "argon2id"
    v: int = 19
    # 46 MiB, 8 passes: ~0.25 s native, memory-hard beyond OWASP's 46 MiB, 1 pass baseline,
    # and a CLI that unlocks a vault stays under 100 MB RSS (bench: login_ms).
    m: int = 47104
    t: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.alg != "argon2id":
            raise ValueError("kdf.alg must be 'argon2id'")
        if _not_int(self.v) or self.v != 19:
            raise ValueError("kdf.v must be 19")
        for name, value, (low, high) in (
            ("m", self.m, _M_RANGE),
            ("t", self.t, _T_RANGE),
            ("p", self.p, _P_RANGE),
        ):
            if _not_int(value) or not low <= value <= high:
                raise ValueError(f"kdf.{name} must be an integer in {low}..{high}")

    def at_least(self, floor: KdfParams) -> bool:
        """Whether guessing a password under these parameters costs at least what it
        costs under ``floor``: as much memory and as many passes (lanes change the
        wall-clock time of one guess, not an attacker's total work)."""
        return self.m >= floor.m and self.t >= floor.t

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> KdfParams:
        """Validate an untrusted mapping (e.g. from JSON); raises ``ValueError``."""
        if not isinstance(data, dict) or set(data) != {"alg", "v", "m", "t", "p"}:
            raise ValueError("kdf must be an object with exactly alg, v, m, t, p")
        return cls(alg=data["alg"], v=data["v"], m=data["m"], t=data["t"], p=data["p"])


def _not_int(value: object) -> bool:
    return not isinstance(value, int) or isinstance(value, bool)


DEFAULT_KDF = KdfParams()


@dataclass(frozen=True, slots=True, repr=False)
class DerivedKeys:
    """The three 32-byte values derived from a password."""

    master: bytes
    auth_key: bytes
    wrap_key: bytes

    def __repr__(self) -> str:
        return "DerivedKeys(<secret>)"


def new_salt() -> bytes:
    """A fresh random 16-byte account salt."""
    return os.urandom(SALT_SIZE)


def hkdf_sha256(ikm: bytes, *, info: bytes, salt: bytes | None = None) -> bytes:
    """HKDF-SHA256 to 32 bytes (RFC 5869); ``salt=None`` means the all-zero salt."""
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_SIZE, salt=salt, info=info).derive(ikm)


def derive_master(password: str, salt: bytes, params: KdfParams = DEFAULT_KDF) -> bytes:
    """Argon2id over the NFKC-normalised UTF-8 password; 32 bytes."""
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes")
    secret = unicodedata.normalize("NFKC", password).encode("utf-8")
    return hash_secret_raw(
        secret=secret,
        salt=salt,
        time_cost=params.t,
        memory_cost=params.m,
        parallelism=params.p,
        hash_len=_KEY_SIZE,
        type=Type.ID,
        version=params.v,
    )


def derive_keys(password: str, salt: bytes, params: KdfParams = DEFAULT_KDF) -> DerivedKeys:
    """``master`` plus ``auth_key``/``wrap_key`` expanded from it (protocol §1)."""
    master = derive_master(password, salt, params)
    return DerivedKeys(
        master=master,
        auth_key=hkdf_sha256(master, info=b"hygieia/auth"),
        wrap_key=hkdf_sha256(master, info=b"hygieia/wrap"),
    )
