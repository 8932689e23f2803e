"""Decoy public keys: byte for byte what rPGP makes, stable, with no known decryption key."""

from __future__ import annotations

import hashlib

import pytest
from openpgp.composed import KeyType, SignedPublicKey

from hygieia import crypto
from hygieia.crypto import _decoy
from hygieia.crypto._identity import generate_secret_key, load_public_key

P = 2**255 - 19


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i < len(data):
        tag, first = data[i] & 0x3F, data[i + 1]
        if first < 192:
            length, header = first, 2
        else:
            length, header = ((first - 192) << 8) + data[i + 2] + 192, 3
        out.append((tag, data[i + header : i + header + length]))
        i += header + length
    return out


def _real_key_and_seed() -> tuple[SignedPublicKey, bytes]:
    """A key of the profile, unlocked so its Ed25519 seed can be read back."""
    for _ in range(10):
        secret = generate_secret_key(
            "<alice@example.org>",
            None,  # type: ignore[arg-type]  # no passphrase: the seed is in clear
            KeyType.ed25519_legacy(),
            KeyType.ecdh("curve25519"),
        )
        public = secret.to_public_key()
        # rPGP dates its self-signatures "now", the key at build time: retry if the
        # second ticked between the two.
        if public.details.users[0].signatures[0].created() == public.created_at:
            break
    tag, body = _packets(secret.to_bytes())[0]
    assert tag == 5
    public_len = len(_packets(public.to_bytes())[0][1])
    assert body[public_len] == 0  # s2k usage 0: not encrypted
    bits = int.from_bytes(body[public_len + 1 : public_len + 3], "big")
    seed = body[public_len + 3 : public_len + 3 + (bits + 7) // 8].rjust(32, b"\x00")
    return public, seed


def test_decoy_packets_are_byte_identical_to_rpgp() -> None:
    """Rebuilt from a real key's seed, point and time, the bytes are rPGP's exactly.

    So a decoy is told from a real key by nothing in its structure.
    """
    real, seed = _real_key_and_seed()
    raw = real.to_bytes()
    subkey = next(body for tag, body in _packets(raw) if tag == 14)
    point = subkey[1 + 4 + 1 + 1 + 10 + 2 + 1 :][:32]  # ver, time, algo, OID, MPI bits, 0x40
    assert _decoy._build(seed, point, "alice@example.org", real.created_at) == raw


def test_decoy_is_stable_valid_and_per_email() -> None:
    seed = hashlib.sha256(b"some server secret and an email").digest()
    a = crypto.decoy_public_key(seed, "ghost@example.org", 1_780_000_000)
    assert crypto.decoy_public_key(seed, "ghost@example.org", 1_780_000_000).public_key == (
        a.public_key
    )
    key = load_public_key(a.public_key)  # the server's own check of uploaded keys
    assert key.fingerprint.upper() == a.fingerprint
    assert key.created_at == 1_780_000_000
    assert key.details.users[0].id == "<ghost@example.org>"
    other = crypto.decoy_public_key(hashlib.sha256(b"x").digest(), "ghost@example.org", 1)
    assert other.fingerprint != a.fingerprint
    with pytest.raises(ValueError):
        crypto.decoy_public_key(b"short", "ghost@example.org", 1)


def test_decoy_encryption_point_is_a_curve_point_of_prime_order() -> None:
    """On the curve (not its twist) and in the prime-order subgroup, like real keys."""
    for i in range(20):
        u = int.from_bytes(_decoy._hash_to_curve25519(bytes([i]) * 32), "little")
        assert 0 < u < P
        rhs = (u**3 + 486662 * u * u + u) % P
        assert pow(rhs, (P - 1) // 2, P) == 1  # a square: the point is on the curve
        assert _order_divides_l(u)


def _order_divides_l(u: int) -> bool:
    """[l]P is the identity (x-only Montgomery ladder), l the prime subgroup order."""
    order = 2**252 + 27742317777372353535851937790883648493
    x1, x2, z2, x3, z3 = u, 1, 0, u, 1
    swap = 0
    for t in reversed(range(order.bit_length())):
        bit = (order >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + 121665 * e) % P
    if swap:
        x2, z2 = x3, z3
    return z2 == 0


def _hash_id_of_first_signature(armored: str) -> int:
    raw = SignedPublicKey.from_armor(armored)[0].to_bytes()
    sig = next(body for tag, body in _packets(raw) if tag == 2)
    return sig[3]


def test_decoys_come_in_both_clients_layouts() -> None:
    """Half rPGP's layout (SHA-256), half OpenPGP.js's (SHA-512 and salt notations).

    Failed before: every decoy had rPGP's layout, so a key made in the web app
    (OpenPGP.js) was certainly a real account's. Each layout parses, verifies and
    keeps the fingerprint its primary key gives (tests/browser/test_decoy.py proves
    the OpenPGP.js layout byte for byte).
    """
    layouts: dict[int, list[bytes]] = {}
    for i in range(16):
        seed = hashlib.sha256(bytes([i])).digest()
        decoy = crypto.decoy_public_key(seed, "ghost@example.org", 1_780_000_000)
        key = load_public_key(decoy.public_key)
        assert key.fingerprint.upper() == decoy.fingerprint
        layouts.setdefault(_hash_id_of_first_signature(decoy.public_key), []).append(seed)
        again = crypto.decoy_public_key(seed, "ghost@example.org", 1_780_000_000)
        assert again.public_key == decoy.public_key
    assert set(layouts) == {8, 10}  # SHA-256 (rPGP) and SHA-512 (OpenPGP.js)
    assert min(len(seeds) for seeds in layouts.values()) >= 3
