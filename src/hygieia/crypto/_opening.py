"""Opening signed, encrypted messages: the packet check that runs before rPGP.

Every sealed thing Hygieia reads (a record segment, sealed metadata, a
session-key envelope) is one SEIPDv1 packet whose decrypted contents must be
exactly One-Pass Signature, Literal Data, Signature (protocol §3). The record
format has no compression, but rPGP inflates a Compressed Data packet while it
decrypts, before a signature is checked and without any size limit (a 626-byte
forgery became 400 MiB), and rpgp-py offers no option to refuse compression or to
look at the decrypted packets first. So this module decrypts the SEIPDv1 packet
itself (AES-256-CFB and the SHA-1 modification detection code, RFC 4880 §5.13),
refuses any other packet sequence and any literal longer than the caller allows,
and only then hands the packet to rPGP, which decrypts and verifies it again as
before: the check here can only refuse, never accept on rPGP's behalf.

Why the session key is unwrapped by hand too: rpgp-py decrypts a PKESK only as
part of decrypting the whole message, which is the step that must not run first.
The profile's PKESK is a v3 ECDH packet for a legacy cv25519 subkey (RFC 9580
§5.1.4, §11.5): X25519, a SHA-256 KDF and AES key unwrap, all from
``cryptography``; the subkey's secret scalar comes from the locked key with the
re-lock code's S2K (:mod:`._relock`).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from openpgp.composed import Message, SignedPublicKey, SignedSecretKey

from ._errors import DecryptionError, InvalidFraming, InvalidKeyMaterial, refused_as
from ._framing import packet_spans, read_packet
from ._identity import DecryptionKey, UnlockedKey
from ._relock import unlock_secret_part

__all__ = ["open_signed", "session_key_from_pkesk"]

_TAG_PKESK, _TAG_SIG, _TAG_OPS, _TAG_LITERAL, _TAG_SEIPD = 1, 2, 4, 11, 18
_TAG_SECRET_SUBKEY = 7
# The only packet sequence a reader accepts inside the encryption: no Compressed
# Data (tag 8), no second signature, nothing else a writer of the format never emits.
_SIGNED_LITERAL = (_TAG_OPS, _TAG_LITERAL, _TAG_SIG)
_ALGO_ECDH = 18
_SYM_AES256 = 9
_SESSION_KEY_SIZE = 32
_BLOCK = 16
_MDC = b"\xd3\x14"  # new-format header of the 20-byte Modification Detection Code packet
_KDF_HASHES = {8: "sha256", 9: "sha384", 10: "sha512"}
_KEK_SIZES = {7: 16, 8: 24, 9: 32}


def _seipd_plaintext(body: bytes, session_key: bytes) -> bytes:
    """The packets inside a SEIPDv1 body, after its MDC checked out (else DecryptionError).

    The MDC is compared before anything is parsed, so how a forgery fails says
    nothing about its plaintext.
    """
    if len(body) < 1 + _BLOCK + 2 + 22 or body[0] != 1:
        raise DecryptionError()
    decryptor = Cipher(algorithms.AES256(session_key), CFB(bytes(_BLOCK))).decryptor()
    plain = decryptor.update(memoryview(body)[1:]) + decryptor.finalize()
    digest = hashlib.sha1(memoryview(plain)[:-20]).digest()  # noqa: S324 (RFC 4880 MDC)
    if not hmac.compare_digest(digest, plain[-20:]) or plain[-22:-20] != _MDC:
        raise DecryptionError()
    return plain[_BLOCK + 2 : -22]


def _check_signed_literal(packets: bytes, max_literal: int) -> None:
    """Refuse anything but OPS, Literal, Signature, or a literal over ``max_literal`` bytes."""
    tags: list[int] = []
    pos = 0
    try:
        while pos < len(packets) and len(tags) < len(_SIGNED_LITERAL):
            tag, spans, pos = packet_spans(packets, pos, old_format=True)
            tags.append(tag)
            if tag == _TAG_LITERAL:
                # format, file-name length, file name, 4-byte date, then the data
                size = sum(stop - start for start, stop in spans)
                first_start, first_stop = spans[0]
                if first_stop - first_start < 2:
                    raise DecryptionError()
                if size - 6 - packets[first_start + 1] > max_literal:
                    raise DecryptionError()
    except InvalidFraming:
        raise DecryptionError() from None
    if tuple(tags) != _SIGNED_LITERAL or pos != len(packets):
        raise DecryptionError()


def open_signed(
    message: bytes,
    signer: SignedPublicKey,
    *,
    max_literal: int,
    session_key: bytes | None = None,
    key: UnlockedKey | None = None,
) -> bytes:
    """The literal data of ``message``, checked, decrypted and verified; else DecryptionError.

    ``message`` is zero or more PKESKs and one SEIPDv1 packet. Pass the
    ``session_key``, or the reader's unlocked ``key`` to take it from the PKESK
    for that key. The decrypted packets must be one-pass signed literal data (no
    compression) of at most ``max_literal`` bytes, signed once by ``signer``.
    The one place where a sealed message is opened.
    """
    pkesks, seipd_start, seipd_body = _split_message(message)
    if session_key is None:
        if key is None:
            raise ValueError("pass session_key or key")
        session_key = session_key_from_pkesk(pkesks, key)
    _check_signed_literal(_seipd_plaintext(seipd_body, session_key), max_literal)
    with refused_as(DecryptionError):
        opened = Message.from_bytes(message[seipd_start:]).decrypt_with_session_key(
            session_key, "aes256"
        )
        if opened.signature_count() != 1 or opened.one_pass_signature_count() != 1:
            raise DecryptionError()
        data = opened.as_data_vec()
        opened.verify(signer)
    if len(data) > max_literal:  # rPGP read the literal measured above; belt and braces
        raise DecryptionError()
    return data


def _split_message(message: bytes) -> tuple[list[bytes], int, bytes]:
    """``(PKESK bodies, offset of the SEIPD packet, its body)``; DecryptionError otherwise."""
    pkesks: list[bytes] = []
    pos = 0
    try:
        while True:
            start = pos
            tag, body, pos = read_packet(message, pos, old_format=True)
            if tag == _TAG_SEIPD and pos == len(message):
                return pkesks, start, body
            if tag != _TAG_PKESK:
                raise DecryptionError()
            pkesks.append(body)
    except InvalidFraming:
        raise DecryptionError() from None


def session_key_from_pkesk(pkesks: list[bytes], key: UnlockedKey) -> bytes:
    """The AES-256 session key from the v3 PKESK (body) addressed to ``key``'s subkey."""
    if key._decryption is None:
        try:
            key._decryption = _decryption_key(key._secret, key._passphrase.encode())
        except (InvalidKeyMaterial, DecryptionError, InvalidFraming, ValueError, IndexError):
            raise DecryptionError() from None
    key_id, fingerprint, public, scalar = key._decryption
    for body in pkesks:
        if len(body) > 10 and body[0] == 3 and body[1:9] == key_id and body[9] == _ALGO_ECDH:
            return _unwrap(body[10:], public, scalar, fingerprint)
    raise DecryptionError()


def _decryption_key(secret: SignedSecretKey, passphrase: bytes) -> DecryptionKey:
    """(key id, fingerprint, public packet body, X25519 scalar) of the cv25519 subkey."""
    subkey = secret.secret_subkeys[0].key
    data = secret.to_bytes()
    pos = 0
    while pos < len(data):
        tag, body, pos = read_packet(data, pos, old_format=True, partial=False)
        if tag != _TAG_SECRET_SUBKEY:
            continue
        start, plain = unlock_secret_part(body, passphrase)
        (bits,) = struct.unpack_from(">H", plain)
        value = plain[2 : 2 + (bits + 7) // 8]
        if len(value) > 32:
            raise DecryptionError()
        # Legacy cv25519 keeps the scalar as a big-endian MPI: X25519 wants it reversed.
        scalar = value.rjust(32, b"\0")[::-1]
        return bytes.fromhex(subkey.key_id), bytes.fromhex(subkey.fingerprint), body[:start], scalar
    raise DecryptionError()


def _unwrap(fields: bytes, public: bytes, scalar: bytes, fingerprint: bytes) -> bytes:
    """RFC 9580 §11.5: X25519 with the ephemeral point, KDF, AES key unwrap, checksum."""
    try:
        (bits,) = struct.unpack_from(">H", fields)
        point_end = 2 + (bits + 7) // 8
        point = fields[2:point_end]
        wrapped = fields[point_end + 1 :]
        if len(point) != 33 or point[0] != 0x40 or fields[point_end] != len(wrapped):
            raise DecryptionError()
        # public key body: version, created(4), algorithm, OID, point MPI, KDF params
        oid = public[6 : 7 + public[6]]
        kdf = public[-4:]
        if kdf[0] != 3 or kdf[1] != 1 or kdf[2] not in _KDF_HASHES or kdf[3] not in _KEK_SIZES:
            raise DecryptionError()
        shared = X25519PrivateKey.from_private_bytes(scalar).exchange(
            X25519PublicKey.from_public_bytes(point[1:])
        )
        param = oid + bytes([_ALGO_ECDH]) + kdf + b"Anonymous Sender    " + fingerprint
        kek = hashlib.new(_KDF_HASHES[kdf[2]], b"\0\0\0\1" + shared + param).digest()
        padded = aes_key_unwrap(kek[: _KEK_SIZES[kdf[3]]], wrapped)
    except (InvalidUnwrap, ValueError, IndexError, struct.error):
        raise DecryptionError() from None
    pad = padded[-1]
    plain = padded[:-pad]
    if not 1 <= pad <= 8 or padded[-pad:] != bytes([pad]) * pad or len(plain) < 3:
        raise DecryptionError()
    algorithm, session_key, checksum = plain[0], plain[1:-2], plain[-2:]
    if algorithm != _SYM_AES256 or len(session_key) != _SESSION_KEY_SIZE:
        raise DecryptionError()
    if int.from_bytes(checksum, "big") != sum(session_key) & 0xFFFF:
        raise DecryptionError()
    return session_key
