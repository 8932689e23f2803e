"""Small signed-and-encrypted OpenPGP messages: sealed metadata and key envelopes.

A sealed message is a standard binary OpenPGP message (one PKESK per recipient,
SEIPDv1/AES-256, a one-pass-signed literal, no compression) that ``gpg -d``
opens; readers refuse anything else inside it, compression above all. The
session-key envelope is such a message to the record's owner whose literal is
``{"v":1,"alg":"aes256","key":"<base64>"}``: sharing opens it instead of taking a
PKESK apart, which rPGP can't do (research/openpgp.md).
"""

from __future__ import annotations

import base64
import binascii
import json

from openpgp.composed import MessageBuilder

from ._errors import DecryptionError, InvalidKeyMaterial
from ._identity import UnlockedKey, load_public_key
from ._opening import open_signed
from ._records import SESSION_KEY_SIZE

__all__ = [
    "EMERGENCY_PURPOSE",
    "MAX_MESSAGE_SIZE",
    "open_emergency_vault_key",
    "open_message",
    "open_session_key_envelope",
    "seal_emergency_vault_key",
    "seal_message",
    "seal_session_key_envelope",
]

MAX_MESSAGE_SIZE = 1024 * 1024


def seal_message(data: bytes, *, recipients: list[str], signer: UnlockedKey) -> bytes:
    """Sign ``data`` with ``signer`` and encrypt it to every armored public key."""
    if not recipients:
        raise ValueError("at least one recipient is required")
    if len(data) > MAX_MESSAGE_SIZE:
        raise ValueError("message too large; use segments")
    keys = [load_public_key(armored) for armored in recipients]
    builder = (
        MessageBuilder.from_bytes("", data)
        .seipd_v1("aes256")
        .sign(signer._secret, signer._passphrase, "sha256")
    )
    for key in keys:
        builder = builder.encrypt_to_key(key.public_subkeys[0])
    return builder.to_vec()


def open_message(msg: bytes, *, key: UnlockedKey, signer_public_key: str) -> bytes:
    """Decrypt with ``key`` and verify the one signature by ``signer_public_key``.

    The decrypted packets must be a one-pass signed literal without compression
    (checked before anything is inflated: :mod:`._opening`).
    """
    if len(msg) > MAX_MESSAGE_SIZE + 64 * 1024:
        raise DecryptionError()
    try:
        signer = load_public_key(signer_public_key)
    except InvalidKeyMaterial:
        raise DecryptionError() from None
    return open_signed(msg, signer, key=key, max_literal=MAX_MESSAGE_SIZE)


def seal_session_key_envelope(
    session_key: bytes, *, owner_public_key: str, signer: UnlockedKey
) -> bytes:
    """The owner's sealed copy of a record's session key (protocol §3)."""
    if len(session_key) != SESSION_KEY_SIZE:
        raise ValueError("session key must be 32 bytes")
    body = {"v": 1, "alg": "aes256", "key": base64.b64encode(session_key).decode("ascii")}
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return seal_message(data, recipients=[owner_public_key], signer=signer)


def open_session_key_envelope(
    envelope: bytes, *, key: UnlockedKey, signer_public_key: str
) -> bytes:
    """The session key from an envelope; :class:`DecryptionError` if anything is off."""
    data = open_message(envelope, key=key, signer_public_key=signer_public_key)
    try:
        body = json.loads(data)
        if (
            not isinstance(body, dict)
            or body.get("v") != 1
            or body.get("alg") != "aes256"
            or not isinstance(body.get("key"), str)
        ):
            raise DecryptionError()
        session_key = base64.b64decode(body["key"], validate=True)
    except (ValueError, binascii.Error):
        raise DecryptionError() from None
    if len(session_key) != SESSION_KEY_SIZE:
        raise DecryptionError()
    return session_key


EMERGENCY_PURPOSE = "hygieia/emergency-vault-key"
_VAULT_KEY_SIZE = 32


def seal_emergency_vault_key(
    vault_key: bytes, *, contact_email: str, contact_public_key: str, signer: UnlockedKey
) -> bytes:
    """The owner's vault key for an emergency contact (protocol §8): signed by the owner,
    encrypted to the contact only, naming the owner's fingerprint and the contact."""
    if len(vault_key) != _VAULT_KEY_SIZE:
        raise ValueError("vault key must be 32 bytes")
    body = {
        "v": 1,
        "purpose": EMERGENCY_PURPOSE,
        "owner": signer.fingerprint,
        "contact": contact_email,
        "key": base64.b64encode(vault_key).decode("ascii"),
    }
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return seal_message(data, recipients=[contact_public_key], signer=signer)


def open_emergency_vault_key(
    sealed: bytes,
    *,
    key: UnlockedKey,
    owner_public_key: str,
    owner_fingerprint: str,
    contact_email: str,
) -> bytes:
    """The vault key from :func:`seal_emergency_vault_key`'s message, signed by
    ``owner_public_key`` and naming that owner and ``contact_email``;
    :class:`DecryptionError` if anything is off."""
    data = open_message(sealed, key=key, signer_public_key=owner_public_key)
    try:
        body = json.loads(data)
        if (
            not isinstance(body, dict)
            or body.get("v") != 1
            or body.get("purpose") != EMERGENCY_PURPOSE
            or not isinstance(body.get("owner"), str)
            or body["owner"].upper() != owner_fingerprint.upper()
            or not isinstance(body.get("contact"), str)
            or body["contact"].strip().lower() != contact_email.strip().lower()
            or not isinstance(body.get("key"), str)
        ):
            raise DecryptionError()
        vault_key = base64.b64decode(body["key"], validate=True)
    except (ValueError, binascii.Error):
        raise DecryptionError() from None
    if len(vault_key) != _VAULT_KEY_SIZE:
        raise DecryptionError()
    return vault_key
