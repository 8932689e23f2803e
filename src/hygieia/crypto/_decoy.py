"""Decoy public keys: what a key lookup answers for an email that has no account.

A lookup must not tell whether an email has an account (security review, finding 3),
so an unknown email gets a public key that looks like the ones our clients make
(protocol §2: v4 Ed25519-legacy primary, cv25519 ECDH subkey) and is the same on every
lookup. The two clients write different self-signatures: the CLI's rPGP signs with
SHA-256 and its own subpackets, the web app's OpenPGP.js with SHA-512, other
subpackets and a random salt notation. A decoy takes one of the two layouts, chosen
by its seed, byte for byte as that library writes it: a decoy in one layout only would
give away every account made with the other client. Neither library generates keys
from a seed, hence the packets are written by hand here; tests rebuild a real key of
each library from its seed and demand identical bytes (tests/crypto/test_decoy.py,
tests/browser/test_decoy.py).

The encryption subkey has **no known secret**: its point comes from hashing the seed
onto the curve (Elligator 2, RFC 9380), so nobody, the server included, can read what
a client might encrypt to a decoy. The primary key's seed, which the server derives
from its own secret, only signs the decoy's own binding signatures.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from openpgp.composed import SignedPublicKey

__all__ = ["DecoyKey", "decoy_public_key"]

_ED25519_OID = bytes.fromhex("2b06010401da470f01")  # 1.3.6.1.4.1.11591.15.1
_CV25519_OID = bytes.fromhex("2b060104019755010501")  # 1.3.6.1.4.1.3029.1.5.1
_ECDH_KDF = bytes.fromhex("03010807")  # SHA-256, AES-128: what rPGP writes
_P = 2**255 - 19
_A = 486662


class DecoyKey:
    """An armored decoy public key and its fingerprint (40 upper-case hex digits)."""

    __slots__ = ("fingerprint", "public_key")

    def __init__(self, public_key: str, fingerprint: str) -> None:
        self.public_key = public_key
        self.fingerprint = fingerprint


def _packet(tag: int, body: bytes) -> bytes:
    """A new-format packet header, as rPGP writes one for ``body``."""
    n = len(body)
    if n < 192:
        length = bytes([n])
    elif n < 8384:
        n -= 192
        length = bytes([(n >> 8) + 192, n & 0xFF])
    else:
        length = b"\xff" + struct.pack(">I", n)
    return bytes([0xC0 | tag]) + length + body


def _mpi(data: bytes) -> bytes:
    stripped = data.lstrip(b"\x00")
    bits = len(stripped) * 8 - (8 - stripped[0].bit_length()) if stripped else 0
    return struct.pack(">H", bits) + stripped


def _subpacket(kind: int, body: bytes) -> bytes:
    return bytes([len(body) + 1, kind]) + body


def _key_hash_prefix(body: bytes) -> bytes:
    return b"\x99" + struct.pack(">H", len(body)) + body


_HASHES = {8: hashlib.sha256, 10: hashlib.sha512}


def _signature(
    signer: Ed25519PrivateKey,
    sig_type: int,
    signed: bytes,
    hashed: bytes,
    unhashed: bytes,
    hash_id: int = 8,
) -> bytes:
    """A v4 EdDSA-legacy signature packet body over ``signed`` (SHA-256 or SHA-512)."""
    header = bytes([4, sig_type, 22, hash_id]) + struct.pack(">H", len(hashed)) + hashed
    trailer = b"\x04\xff" + struct.pack(">I", len(header))
    digest = _HASHES[hash_id](signed + header + trailer).digest()
    raw = signer.sign(digest)
    return (
        header
        + struct.pack(">H", len(unhashed))
        + unhashed
        + digest[:2]
        + _mpi(raw[:32])
        + _mpi(raw[32:])
    )


def _keys(seed: bytes, encryption_point: bytes, created: int) -> tuple[bytes, bytes, bytes]:
    """(primary key body, its v4 fingerprint, encryption subkey body): alike in both layouts."""
    ed_public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    when = struct.pack(">I", created)
    primary = (
        b"\x04" + when + b"\x16" + bytes([len(_ED25519_OID)]) + _ED25519_OID
        + _mpi(b"\x40" + ed_public)
    )  # fmt: skip
    fingerprint = hashlib.sha1(_key_hash_prefix(primary)).digest()  # noqa: S324 - OpenPGP v4
    subkey = (
        b"\x04" + when + b"\x12" + bytes([len(_CV25519_OID)]) + _CV25519_OID
        + _mpi(b"\x40" + encryption_point) + _ECDH_KDF
    )  # fmt: skip
    return primary, fingerprint, subkey


def _user_id_signed(primary: bytes, user_id: bytes) -> bytes:
    return _key_hash_prefix(primary) + b"\xb4" + struct.pack(">I", len(user_id)) + user_id


def _transferable(
    signer: Ed25519PrivateKey,
    primary: bytes,
    user_id: bytes,
    cert: bytes,
    subkey: bytes,
    binding_hashed: bytes,
    binding_unhashed: bytes,
    hash_id: int,
) -> bytes:
    """The packets of a transferable public key, in the order both layouts write them:
    primary key, user id, its certification, subkey, and the subkey's binding signature
    (made here from the layout's subpackets)."""
    binding = _signature(
        signer,
        0x18,
        _key_hash_prefix(primary) + _key_hash_prefix(subkey),
        binding_hashed,
        binding_unhashed,
        hash_id,
    )
    return (
        _packet(6, primary)
        + _packet(13, user_id)
        + _packet(2, cert)
        + _packet(14, subkey)
        + _packet(2, binding)
    )


def _build_openpgpjs(
    seed: bytes, encryption_point: bytes, email: str, created: int, salts: tuple[bytes, bytes]
) -> bytes:
    """The transferable public key as the web app's ``generateIdentity`` writes it
    (OpenPGP.js 6, PGP_CONFIG); ``salts`` are the 32-byte salt notations of the two
    self-signatures, random in OpenPGP.js."""
    signer = Ed25519PrivateKey.from_private_bytes(seed)
    primary, fingerprint, subkey = _keys(seed, encryption_point, created)
    key_id = fingerprint[-8:]
    user_id = f"<{email}>".encode()
    critical_time = _subpacket(0x82, struct.pack(">I", created))

    def salt(value: bytes) -> bytes:
        name = b"salt@notations.openpgpjs.org"
        return _subpacket(20, bytes(4) + struct.pack(">HH", len(name), len(value)) + name + value)

    issuer_fpr = _subpacket(33, b"\x04" + fingerprint)
    cert_hashed = (
        critical_time
        + _subpacket(11, b"\x09\x07")  # AES-256, AES-128
        + _subpacket(16, key_id)
        + salt(salts[0])
        + _subpacket(21, b"\x08\x0a\x0e\x0c")  # SHA-256, SHA-512, SHA3-256, SHA3-512
        + _subpacket(22, b"\x00\x02\x01")  # uncompressed, zlib, zip
        + _subpacket(25, b"\x01")  # primary user id
        + _subpacket(0x9B, b"\x03")  # key flags (critical): certify + sign
        + _subpacket(30, b"\x01")  # SEIPDv1
        + issuer_fpr
    )
    cert = _signature(signer, 0x13, _user_id_signed(primary, user_id), cert_hashed, b"", 10)
    binding_hashed = (
        critical_time
        + _subpacket(16, key_id)
        + salt(salts[1])
        + _subpacket(0x9B, b"\x0c")  # key flags (critical): encrypt
        + issuer_fpr
    )
    return _transferable(signer, primary, user_id, cert, subkey, binding_hashed, b"", 10)


def _build(seed: bytes, encryption_point: bytes, email: str, created: int) -> bytes:
    """The transferable public key, as rPGP's ``generate_identity`` profile writes it."""
    signer = Ed25519PrivateKey.from_private_bytes(seed)
    primary, fingerprint, subkey = _keys(seed, encryption_point, created)
    when = struct.pack(">I", created)
    key_id = fingerprint[-8:]
    user_id = f"<{email}>".encode()
    issuer_fpr = _subpacket(33, b"\x04" + fingerprint)
    cert_hashed = (
        _subpacket(2, when)
        + issuer_fpr
        + _subpacket(27, b"\x03")  # certify + sign
        + _subpacket(30, b"\x01")  # SEIPDv1
        + _subpacket(11, b"\x09")  # AES-256
        + _subpacket(21, b"\x08\x0a")  # SHA-256, SHA-512
        + _subpacket(22, b"\x00")  # uncompressed
        + _subpacket(39, b"")  # no AEAD preferences
        + _subpacket(25, b"\x01")  # primary user id
    )
    issuer = _subpacket(16, key_id)  # unhashed
    cert = _signature(signer, 0x13, _user_id_signed(primary, user_id), cert_hashed, issuer)
    binding_hashed = _subpacket(2, when) + _subpacket(27, b"\x0c") + issuer_fpr
    return _transferable(signer, primary, user_id, cert, subkey, binding_hashed, issuer, 8)


def _hash_to_curve25519(data: bytes) -> bytes:
    """A Curve25519 u-coordinate in the prime-order subgroup with no known logarithm.

    Elligator 2 (RFC 9380 §6.7.1, Z = 2) onto the curve, then three doublings to clear
    the cofactor 8, like every real X25519 public key.
    """
    wide = hashlib.sha512(b"hygieia/decoy-encryption-point\x00" + data).digest()
    u = int.from_bytes(wide, "little") % _P
    tv1 = 2 * u * u % _P
    if tv1 == _P - 1:
        tv1 = 0
    x1 = (-_A * pow(1 + tv1, _P - 2, _P)) % _P
    gx1 = (x1 * x1 * x1 + _A * x1 * x1 + x1) % _P
    x = x1 if pow(gx1, (_P - 1) // 2, _P) in (0, 1) else (-x1 - _A) % _P
    for _ in range(3):  # x(2P) = (x^2 - 1)^2 / (4x(x^2 + Ax + 1))
        num = (x * x - 1) ** 2 % _P
        den = 4 * x * (x * x + _A * x + 1) % _P
        x = num * pow(den, _P - 2, _P) % _P if den else 0
    return x.to_bytes(32, "little")


def decoy_public_key(seed: bytes, email: str, created: int) -> DecoyKey:
    """The decoy key for ``email``: a function of ``seed`` (32 secret bytes, derived by
    the caller from a server secret and the email) and the creation time alone."""
    if len(seed) != 32:
        raise ValueError("seed must be 32 bytes")
    primary_seed = hashlib.sha256(b"hygieia/decoy-primary\x00" + seed).digest()
    point = _hash_to_curve25519(seed)
    if hashlib.sha256(b"hygieia/decoy-layout\x00" + seed).digest()[0] & 1:
        # Half the decoys look made in the browser, half by the CLI.
        salts = hashlib.sha512(b"hygieia/decoy-salts\x00" + seed).digest()
        raw = _build_openpgpjs(primary_seed, point, email, created, (salts[:32], salts[32:]))
    else:
        raw = _build(primary_seed, point, email, created)
    key = SignedPublicKey.from_bytes(raw)
    key.verify_bindings()  # never hand out a key rPGP itself would reject
    return DecoyKey(public_key=key.to_armored(), fingerprint=key.fingerprint.upper())
