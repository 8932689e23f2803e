"""Re-lock a v4 secret key under a new passphrase (RFC 4880 §5.5.3), by hand.

Why by hand: rPGP (the OpenPGP library used here) can read and use a locked
key but has no API to change its passphrase, pysequoia can't set one at all, and
``gpg --passwd`` always writes AES-128/SHA-1 protection (research/openpgp.md).
The secret-key packet format for the one profile Hygieia uses (Ed25519-legacy +
cv25519, S2K usage 254, AES-256, iterated+salted SHA-256) is small: derive the old
S2K key, AES-256-CFB-decrypt the secret MPIs, check the SHA-1 checksum, encrypt
them again under a fresh salt/IV/count. The public part is copied unchanged, so
the self-signatures (which cover only public data) stay valid.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from ._errors import DecryptionError, InvalidFraming, InvalidKeyMaterial
from ._framing import fixed_header, read_packet

__all__ = [
    "EXPORT_S2K_COUNT_BYTE",
    "relock_secret_key_packets",
    "s2k_iterated_sha256",
    "unlock_secret_part",
]

_TAG_SECRET_KEY, _TAG_SECRET_SUBKEY = 5, 7
_ALGO_ECDH, _ALGO_EDDSA_LEGACY = 18, 22
_USAGE_SHA1_CHECK = 254
_SYM_AES256 = 9
_S2K_ITERATED_SALTED = 3
_HASH_SHA256 = 8
EXPORT_S2K_COUNT_BYTE = 255
_PROTECTION = bytes([_USAGE_SHA1_CHECK, _SYM_AES256, _S2K_ITERATED_SALTED, _HASH_SHA256])


def s2k_iterated_sha256(passphrase: bytes, salt: bytes, count_byte: int) -> bytes:
    """RFC 4880 §3.7.1.3 iterated+salted S2K with SHA-256 (32 bytes = one AES-256 key)."""
    count = (16 + (count_byte & 15)) << ((count_byte >> 4) + 6)
    unit = salt + passphrase
    count = max(count, len(unit))
    digest = hashlib.sha256()
    block = unit * max(1, (1 << 16) // len(unit))
    full, rest = divmod(count, len(block))
    for _ in range(full):
        digest.update(block)
    digest.update(block[:rest])
    return digest.digest()


def _cfb(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES256(key), CFB(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _public_part_end(body: bytes) -> int:
    """Offset where the secret part starts, for the two algorithms of our profile."""
    if len(body) < 7 or body[0] != 4:
        raise InvalidKeyMaterial("invalid_key", "not a v4 key packet")
    algo = body[5]
    if algo not in (_ALGO_EDDSA_LEGACY, _ALGO_ECDH):
        raise InvalidKeyMaterial("invalid_key", "unsupported key algorithm")
    pos = 6
    pos += 1 + body[pos]  # curve OID
    bits = int.from_bytes(body[pos : pos + 2], "big")
    pos += 2 + (bits + 7) // 8  # public point MPI
    if algo == _ALGO_ECDH:
        pos += 1 + body[pos]  # KDF parameters
    if pos >= len(body):
        raise InvalidKeyMaterial("invalid_key", "truncated key packet")
    return pos


def unlock_secret_part(body: bytes, passphrase: bytes) -> tuple[int, bytes]:
    """``(offset of the secret part, secret MPIs + SHA-1 checksum)`` of a profile key packet.

    Raises :class:`InvalidKeyMaterial` if the packet is not of the profile and
    :class:`DecryptionError` if ``passphrase`` does not open it (SHA-1 checksum).
    """
    pos = _public_part_end(body)
    if body[pos : pos + 4] != _PROTECTION:
        raise InvalidKeyMaterial("invalid_key", "secret key protection is not the profile's")
    salt, count_byte = body[pos + 4 : pos + 12], body[pos + 12]
    iv, sealed = body[pos + 13 : pos + 29], body[pos + 29 :]
    if len(iv) != 16 or len(sealed) <= 20:
        raise InvalidKeyMaterial("invalid_key", "truncated key packet")
    plain = _cfb(s2k_iterated_sha256(passphrase, salt, count_byte), iv, sealed, encrypt=False)
    secret, checksum = plain[:-20], plain[-20:]
    if not hmac.compare_digest(hashlib.sha1(secret).digest(), checksum):  # noqa: S324 (RFC 4880 format)
        raise DecryptionError()
    return pos, plain


def _relock_body(body: bytes, old: bytes, new: bytes, randbytes: Callable[[int], bytes]) -> bytes:
    pos, plain = unlock_secret_part(body, old)
    new_salt, new_iv = randbytes(8), randbytes(16)
    key = s2k_iterated_sha256(new, new_salt, EXPORT_S2K_COUNT_BYTE)
    return (
        body[:pos]
        + _PROTECTION
        + new_salt
        + bytes([EXPORT_S2K_COUNT_BYTE])
        + new_iv
        + _cfb(key, new_iv, plain, encrypt=True)
    )


def _split_packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) for each packet of a transferable key, old or new header format."""
    packets: list[tuple[int, bytes]] = []
    pos = 0
    try:
        while pos < len(data):
            tag, body, pos = read_packet(data, pos, old_format=True, partial=False)
            packets.append((tag, body))
    except InvalidFraming as exc:
        raise InvalidKeyMaterial("invalid_key", f"malformed key: {exc}") from None
    return packets


def relock_secret_key_packets(
    data: bytes, old: bytes, new: bytes, *, randbytes: Callable[[int], bytes]
) -> bytes:
    """Binary transferable secret key ``data`` with every secret packet re-locked.

    Raises :class:`DecryptionError` if ``old`` is wrong. Output uses new-format
    headers with five-octet lengths (valid for any packet, accepted by every reader).
    """
    out = bytearray()
    for tag, body in _split_packets(data):
        if tag in (_TAG_SECRET_KEY, _TAG_SECRET_SUBKEY):
            body = _relock_body(body, old, new, randbytes)
        out += fixed_header(tag, len(body)) + body
    return bytes(out)
