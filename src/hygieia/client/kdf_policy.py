"""Which KDF parameters and salts the client will derive a password with.

Whatever the server answers (prelogin, ``/me``) is untrusted: a hostile or compromised
server that gets a client to derive ``auth_key`` with cheap parameters, or with a salt
of its choosing, can guess the password offline from what the client then sends
(security review, finding 5). So the client

- refuses parameters outside the bounds of :class:`~hygieia.crypto.KdfParams` (a server
  can't make it allocate a gigabyte more than it bargained for) and salts of the wrong
  size;
- refuses parameters weaker than its **floor**, ``crypto.DEFAULT_KDF``;
- remembers, per server and account, the parameters and salt of its last successful
  login (:class:`KnownKdf`) and refuses weaker ones ever after, and a changed salt unless
  told to accept it. An account's salt never changes (the server refuses another, see
  docs/security.md), so another salt means a re-created account or a lying server, which
  could otherwise hand every account one salt and amortise its dictionary over them all.

The floor can be lowered only from this machine's environment, never by a server:
``HYGIEIA_INSECURE_KDF_FLOOR=m=8192,t=1`` — for test suites and benchmarks that make
accounts with cheap parameters, never for real accounts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hygieia import crypto
from hygieia.client.private_files import RememberedJson
from hygieia.encoding import from_b64, to_b64

__all__ = [
    "KDF_FLOOR_ENV",
    "KdfRefused",
    "KnownKdf",
    "Remembered",
    "kdf_floor",
    "vet_kdf",
]

#: Test/benchmark-only knob (see the module docstring). Read from the environment of
#: the client process only; nothing a server sends can change it.
KDF_FLOOR_ENV = "HYGIEIA_INSECURE_KDF_FLOOR"


class KdfRefused(Exception):
    """The server asked for key derivation this client won't do; nothing was sent."""


@dataclass(frozen=True)
class Remembered:
    """An account's KDF parameters and salt as of its last successful use here."""

    kdf: crypto.KdfParams
    salt: bytes


def kdf_floor() -> crypto.KdfParams:
    """The weakest parameters this client accepts: ``DEFAULT_KDF`` unless lowered by
    :data:`KDF_FLOOR_ENV` (``m=KIB,t=PASSES``)."""
    raw = os.environ.get(KDF_FLOOR_ENV, "").strip()
    if not raw:
        return crypto.DEFAULT_KDF
    try:
        fields = dict(part.split("=", 1) for part in raw.replace(" ", "").split(","))
        if not fields or set(fields) - {"m", "t"}:
            raise ValueError("only m and t")
        return crypto.KdfParams(
            m=int(fields.get("m", crypto.DEFAULT_KDF.m)),
            t=int(fields.get("t", crypto.DEFAULT_KDF.t)),
        )
    except ValueError as exc:
        raise KdfRefused(f"{KDF_FLOOR_ENV} must look like m=8192,t=1 (KiB, passes)") from exc


def vet_kdf(
    kdf: Any,
    salt: bytes,
    *,
    floor: crypto.KdfParams,
    remembered: Remembered | None,
    accept_new_salt: bool = False,
) -> Remembered:
    """Check what a server asks the password to be derived with; refuse with
    :class:`KdfRefused` before anything is derived, let alone sent."""
    try:
        params = crypto.KdfParams.from_dict(kdf)
    except (ValueError, TypeError, KeyError) as exc:
        raise KdfRefused(f"the server asks for unsupported KDF parameters: {exc}") from exc
    if not isinstance(salt, bytes) or len(salt) != crypto.SALT_SIZE:
        size = len(salt) if isinstance(salt, bytes) else "non-byte"
        raise KdfRefused(f"the server sent a {size}-byte salt (accounts have {crypto.SALT_SIZE})")
    salt_bytes = salt
    if not params.at_least(floor):
        raise KdfRefused(
            f"the server asks for weaker key derivation (Argon2id m={params.m} KiB, "
            f"t={params.t}) than this client accepts (m ≥ {floor.m}, t ≥ {floor.t}); "
            "nothing derived from your password was sent"
        )
    if remembered is not None:
        if not params.at_least(remembered.kdf):
            raise KdfRefused(
                f"the server asks for weaker key derivation (m={params.m} KiB, t={params.t}) "
                f"than this account used here before (m={remembered.kdf.m}, "
                f"t={remembered.kdf.t}); nothing derived from your password was sent"
            )
        if salt_bytes != remembered.salt and not accept_new_salt:
            raise KdfRefused(
                "the server presents another salt for this account than last time "
                "(salts never change: the account was re-created, or the server is "
                "trying to weaken your password's protection); nothing derived from "
                "your password was sent. If you know the account was re-created, log "
                "in with --accept-new-salt"
            )
    return Remembered(kdf=params, salt=salt_bytes)


class KnownKdf(RememberedJson):
    """What this client remembers per (server, account): a JSON file, mode 0600, or
    memory only (``path=None``).

    The file holds no secret (the server hands parameters and salt to anyone who asks
    for the email), only what keeps the next login from being downgraded; unreadable,
    it must not turn into "nothing known": that is the downgrade.
    """

    error = KdfRefused

    def get(self, server: str, email: str) -> Remembered | None:
        entry = self._entry(server, email)
        if entry is None:
            return None
        if not isinstance(entry, Mapping):
            raise KdfRefused(f"the entry for {email} in {self.path} is damaged")
        try:
            return Remembered(
                kdf=crypto.KdfParams.from_dict(entry["kdf"]),
                salt=from_b64(entry["salt"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KdfRefused(f"the entry for {email} in {self.path} is damaged") from exc

    def put(self, server: str, email: str, known: Remembered) -> None:
        self._store(server, email, {"kdf": known.kdf.to_dict(), "salt": to_b64(known.salt)})

    def forget(self, server: str, email: str) -> None:
        """The account is gone (deleted): a new one under the email has its own salt."""
        self._store(server, email, None)
