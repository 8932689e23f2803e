"""Test helpers around OpenPGP keys: gpg-made keys and the plaintext secret scalars.

``secret_material`` decrypts the secret MPIs of a locked key so the zero-knowledge test
can search for them byte for byte; it reuses the crypto package's S2K/CFB primitives.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from hygieia.crypto import _relock


def dearmor(armored: str) -> bytes:
    lines = armored.strip().splitlines()
    body = []
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


def gpg(home: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GNUPGHOME": str(home)}
    return subprocess.run(
        ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", *args],
        env=env,
        input=input,
        capture_output=True,
        timeout=120,
    )


_HOMES: list[Path] = []


def gpg_home(path: Path) -> Path:
    """A throwaway GNUPGHOME; its gpg-agent is stopped after the test (tests/conftest.py)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    _HOMES.append(path)
    return path


def stop_gpg_agents() -> None:
    """Stop the agents that gpg started for the homes made by :func:`gpg_home`."""
    while _HOMES:
        home = _HOMES.pop()
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True,
            timeout=30,
            check=False,
        )


def gpg_unlocked_identity(home: Path, email: str) -> tuple[str, str]:
    """(public, UNLOCKED secret) armored keys in the right algorithms, made by gpg."""
    gpg_home(home)
    gpg(home, "--passphrase", "", "--quick-gen-key", f"<{email}>", "ed25519", "cert,sign", "never")
    fpr = gpg(home, "--with-colons", "--list-keys", email).stdout.decode()
    fingerprint = next(line.split(":")[9] for line in fpr.splitlines() if line.startswith("fpr"))
    gpg(home, "--passphrase", "", "--quick-add-key", fingerprint, "cv25519", "encr", "never")
    public = gpg(home, "--armor", "--export", email).stdout.decode()
    secret = gpg(home, "--passphrase", "", "--armor", "--export-secret-keys", email).stdout.decode()
    return public, secret
