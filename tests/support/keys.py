"""Test helpers around OpenPGP keys: gpg-made keys and the plaintext secret scalars.

``secret_material`` decrypts the secret MPIs of a locked key so the zero-knowledge test
can search for them byte for byte; it reuses the crypto package's S2K/CFB primitives.
"""

from __future__ import annotations

import base64
from pathlib import Path

from hygieia.crypto import _relock
from tests.support.gpg import Gpg


def dearmor(armored: str) -> bytes:
    lines = armored.strip().splitlines()
    body: list[str] = []
    started = False
    for line in lines:
        if line.startswith("-----BEGIN"):
            started = True
            continue
        if not started:
            continue
        if line.startswith("-----END") or line.startswith("="):
            break
        if ":" in line and not body:
            continue  # armor header
        if line.strip():
            body.append(line.strip())
    return base64.b64decode("".join(body))


def secret_material(locked_armored: str, passphrase: str) -> list[bytes]:
    """The unlocked secret MPIs (with checksum stripped) of every secret packet."""
    out = []
    for tag, body in _relock._split_packets(dearmor(locked_armored)):
        if tag not in (5, 7):
            continue
        pos = _relock._public_part_end(body)
        salt, count = body[pos + 4 : pos + 12], body[pos + 12]
        iv, sealed = body[pos + 13 : pos + 29], body[pos + 29 :]
        key = _relock.s2k_iterated_sha256(passphrase.encode(), salt, count)
        plain = _relock._cfb(key, iv, sealed, encrypt=False)
        secret = plain[:-20]
        # Each MPI: 2-byte bit count + value; keep the raw scalar values.
        i = 0
        while i < len(secret):
            bits = int.from_bytes(secret[i : i + 2], "big")
            n = (bits + 7) // 8
            out.append(secret[i + 2 : i + 2 + n])
            i += 2 + n
    return out


def gpg_unlocked_identity(home: Path, email: str) -> tuple[str, str]:
    """(public, UNLOCKED secret) armored keys in the right algorithms, made by gpg."""
    gpg = Gpg(home)
    gpg.ok("--quick-gen-key", f"<{email}>", "ed25519", "cert,sign", "never", passphrase="")
    fingerprint = gpg.fingerprint(email)
    gpg.ok("--quick-add-key", fingerprint, "cv25519", "encr", "never", passphrase="")
    public = gpg.ok("--armor", "--export", email).decode()
    secret = gpg.ok("--armor", "--export-secret-keys", email, passphrase="").decode()
    return public, secret
