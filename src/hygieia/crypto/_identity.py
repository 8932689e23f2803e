"""OpenPGP identities in the one profile every tool reads (protocol §2).

v4 Ed25519-legacy primary (certify + sign) and a cv25519 ECDH subkey, SEIPDv1
only, AES-256, SHA-256/512, no compression; both secret packets locked with the
vault key's hex as passphrase (usage 254, AES-256, iterated+salted SHA-256,
count byte 96, a fresh salt and IV per packet). Also the server-side check of
uploaded keys (:func:`inspect_keys`), which needs no passphrase.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

import openpgp
from openpgp.composed import (
    EncryptionCaps,
    KeyType,
    MessageBuilder,
    SecretKeyParamsBuilder,
    SignedPublicKey,
    SignedSecretKey,
    SubkeyParamsBuilder,
)
from openpgp.packet import PublicSubkey, SecretSubkey
from openpgp.types import S2kParams, StringToKey

from ._errors import CryptoError, DecryptionError, InvalidKeyMaterial, refused_as
from ._relock import relock_secret_key_packets
from ._vault import vault_passphrase

__all__ = [
    "MAX_ARMORED_KEY_SIZE",
    "Identity",
    "KeyInfo",
    "UnlockedKey",
    "export_secret_key",
    "generate_identity",
    "inspect_keys",
    "load_public_key",
    "public_key_info",
    "unlock",
]

MAX_ARMORED_KEY_SIZE = 64 * 1024
VAULT_S2K_COUNT_BYTE = 96
_PUBLIC_BLOCK = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_PRIVATE_BLOCK = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
_EMAIL = re.compile(r"[^<>\s@]+@[^<>\s@]+")
_Key = TypeVar("_Key", SignedPublicKey, SignedSecretKey)
_Subkey: TypeAlias = PublicSubkey | SecretSubkey
# (key id, fingerprint, public packet body, X25519 scalar) of the encryption subkey
DecryptionKey: TypeAlias = tuple[bytes, bytes, bytes, bytes]


@dataclass(frozen=True, slots=True)
class Identity:
    """A freshly generated key: armored public key and vault-locked secret key."""

    public_key: str
    locked_secret_key: str
    fingerprint: str  # 40 upper-case hex digits (primary key)
    encryption_key_id: str  # 16 upper-case hex digits (cv25519 subkey)

    def __repr__(self) -> str:
        return f"Identity(fingerprint={self.fingerprint!r})"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the server learns from a validated key pair."""

    fingerprint: str
    encryption_key_id: str
    encryption_fingerprint: str


class UnlockedKey:
    """A parsed secret key together with a passphrase proven to unlock it.

    Opaque on purpose: pass it to ``seal_*``/``open_*``; it never prints secrets.
    """

    __slots__ = ("_decryption", "_passphrase", "_secret")

    def __init__(self, secret: SignedSecretKey, passphrase: str) -> None:
        self._secret = secret
        self._passphrase = passphrase
        # The encryption subkey unlocked once, filled in by ._opening on first use.
        self._decryption: DecryptionKey | None = None

    @property
    def fingerprint(self) -> str:
        return self._secret.fingerprint.upper()

    @property
    def public_key(self) -> str:
        """The armored public key (for verifying what this key signs)."""
        return self._secret.to_public_key().to_armored()

    def __repr__(self) -> str:
        return f"UnlockedKey(fingerprint={self.fingerprint!r})"


def _s2k() -> S2kParams:
    # A new object per key packet: an S2kParams fixes its salt and IV when built,
    # and sharing one would lock both packets with the same key and IV.
    return S2kParams.cfb("aes256", StringToKey.iterated("sha256", VAULT_S2K_COUNT_BYTE))


def generate_secret_key(
    user_id: str, passphrase: str, primary: KeyType, subkey: KeyType
) -> SignedSecretKey:
    """A v4 key of the profile's shape (certify + sign primary, one encryption subkey).

    The algorithms are parameters so tests can make keys of the wrong ones;
    :func:`generate_identity` passes the profile's.
    """
    return (
        SecretKeyParamsBuilder()
        .version(4)
        .key_type(primary)
        .can_certify(True)
        .can_sign(True)
        .primary_user_id(user_id)
        .passphrase(passphrase)
        .s2k(_s2k())
        .feature_seipd_v1(True)
        .feature_seipd_v2(False)
        .preferred_symmetric_algorithms(["aes256"])
        .preferred_hash_algorithms(["sha256", "sha512"])
        .preferred_compression_algorithms(["uncompressed"])
        .subkey(
            SubkeyParamsBuilder()
            .version(4)
            .key_type(subkey)
            .can_encrypt(EncryptionCaps.all())
            .passphrase(passphrase)
            .s2k(_s2k())
            .build()
        )
        .generate()
    )


def generate_identity(email: str, vault_key: bytes) -> Identity:
    """Generate a key pair for ``email`` (user id ``<email>``), locked with ``vault_key``."""
    if not _EMAIL.fullmatch(email):
        raise ValueError("email must look like local@domain")
    secret = generate_secret_key(
        f"<{email}>",
        vault_passphrase(vault_key),
        KeyType.ed25519_legacy(),
        KeyType.ecdh("curve25519"),
    )
    salts = [secret.primary_secret_s2k(), *secret.secret_subkey_s2ks()]
    if len({(s.iv, s.string_to_key.salt if s.string_to_key else None) for s in salts}) != 2:
        raise RuntimeError("OpenPGP library reused an S2K salt/IV")  # pragma: no cover
    return Identity(
        public_key=secret.to_public_key().to_armored(),
        locked_secret_key=secret.to_armored(),
        fingerprint=secret.fingerprint.upper(),
        encryption_key_id=secret.secret_subkeys[0].key.key_id.upper(),
    )


def _armored_text(value: object, what: str) -> str:
    if isinstance(value, bytes | bytearray):
        if len(value) > MAX_ARMORED_KEY_SIZE:
            raise InvalidKeyMaterial("invalid_key", f"{what} is too large")
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidKeyMaterial("invalid_key", f"{what} is not ASCII armor") from None
    if not isinstance(value, str):
        raise InvalidKeyMaterial("invalid_key", f"{what} must be ASCII-armored text")
    if len(value) > MAX_ARMORED_KEY_SIZE:
        raise InvalidKeyMaterial("invalid_key", f"{what} is too large")
    if not value.isascii():
        raise InvalidKeyMaterial("invalid_key", f"{what} is not ASCII armor")
    return value


def _parse_one(
    armored: object, parse: Callable[[str], tuple[list[_Key], object]], what: str, other: str
) -> _Key:
    """The one key of kind ``what`` in ``armored`` with valid bindings; else InvalidKeyMaterial.

    ``other`` is the armor line of the other kind, refused by name: swapped
    arguments are the likeliest mistake and deserve a clear message.
    """
    text = _armored_text(armored, what)
    if other in text:
        kind = "public" if what == "secret key" else "secret"
        raise InvalidKeyMaterial("invalid_key", f"a {kind} key was given where the {what} belongs")
    # The library raises assorted errors (or panics) on hostile input.
    with refused_as(lambda: InvalidKeyMaterial("invalid_key", f"{what} could not be parsed")):
        keys, _ = parse(text)
        if len(keys) != 1:
            raise InvalidKeyMaterial("invalid_key", f"expected exactly one {what}")
        key = keys[0]
        key.verify_bindings()
    return key


def load_public_key(armored: object) -> SignedPublicKey:
    """Parse one armored public key of the profile; :class:`InvalidKeyMaterial` otherwise."""
    key = _parse_one(armored, SignedPublicKey.from_armor_many, "public key", _PRIVATE_BLOCK)
    _check_profile(key, [s.key for s in key.public_subkeys])
    return key


def _load_secret_key(armored: object) -> SignedSecretKey:
    key = _parse_one(armored, SignedSecretKey.from_armor_many, "secret key", _PUBLIC_BLOCK)
    if key.public_subkey_count:
        raise InvalidKeyMaterial("invalid_key", "secret key has public-only subkeys")
    _check_profile(key, [s.key for s in key.secret_subkeys])
    return key


def _check_profile(primary: _Key, subkeys: Sequence[_Subkey]) -> None:
    if (
        primary.version != 4
        or primary.public_key_algorithm != "eddsa-legacy"
        or primary.public_params.curve != "ed25519"
    ):
        raise InvalidKeyMaterial("invalid_key", "primary key must be v4 Ed25519 (legacy EdDSA)")
    if [(s.version, s.public_key_algorithm, s.public_params.curve) for s in subkeys] != [
        (4, "ecdh", "curve25519")
    ]:
        raise InvalidKeyMaterial("invalid_key", "expected exactly one v4 cv25519 ECDH subkey")


def _check_locked(key: SignedSecretKey) -> None:
    for s2k in [key.primary_secret_s2k(), *key.secret_subkey_s2ks()]:
        if s2k.usage_id == 0:
            raise InvalidKeyMaterial("unlocked_secret_key", "secret key is not passphrase-locked")
        string_to_key = s2k.string_to_key
        if (
            s2k.usage_id != 254
            or s2k.symmetric_algorithm != "aes256"
            or string_to_key is None
            or string_to_key.kind != "iterated-salted"
            or string_to_key.hash_algorithm != "sha256"
        ):
            raise InvalidKeyMaterial(
                "invalid_key", "secret key must be locked with AES-256 and iterated SHA-256"
            )


def inspect_keys(public_armored: object, locked_secret_armored: object) -> KeyInfo:
    """Validate a sign-up upload without any passphrase (for the server).

    Raises :class:`InvalidKeyMaterial` with ``reason`` ``invalid_key`` (unparseable,
    wrong profile, swapped arguments, too large), ``unlocked_secret_key`` or
    ``key_mismatch`` (the secret key's public parts differ from the public key).
    """
    public = load_public_key(public_armored)
    secret = _load_secret_key(locked_secret_armored)
    _check_locked(secret)
    public_sub = public.public_subkeys[0].key
    secret_sub = secret.secret_subkeys[0].key
    if (
        public.fingerprint != secret.fingerprint
        or public_sub.fingerprint != secret_sub.fingerprint
        or public.primary_key.to_bytes() != secret.to_public_key().primary_key.to_bytes()
    ):
        raise InvalidKeyMaterial("key_mismatch", "public and secret key do not belong together")
    return KeyInfo(
        fingerprint=public.fingerprint.upper(),
        encryption_key_id=public_sub.key_id.upper(),
        encryption_fingerprint=public_sub.fingerprint.upper(),
    )


def public_key_info(public_armored: object) -> KeyInfo:
    """Fingerprint and encryption subkey of a public key of the profile (no secret needed).

    Clients compute a contact's fingerprint with it instead of believing the server's;
    the server uses it for the subkey of a decoy. :class:`InvalidKeyMaterial` if the key
    does not parse or is not of the profile.
    """
    public = load_public_key(public_armored)
    sub = public.public_subkeys[0].key
    return KeyInfo(
        fingerprint=public.fingerprint.upper(),
        encryption_key_id=sub.key_id.upper(),
        encryption_fingerprint=sub.fingerprint.upper(),
    )


def _prove_unlocks(secret: SignedSecretKey, passphrase: str) -> None:
    """Use both secret packets once: a wrong passphrase fails here, not later."""
    probe = b"hygieia unlock probe"
    public = secret.to_public_key()
    message = (
        MessageBuilder.from_bytes("", probe)
        .seipd_v1("aes256")
        .sign(secret, passphrase, "sha256")
        .encrypt_to_key(public.public_subkeys[0])
        .to_vec()
    )
    decrypted = openpgp.composed.Message.from_bytes(message).decrypt(passphrase, secret)
    if decrypted.as_data_vec() != probe:
        raise DecryptionError()
    decrypted.verify(public)


def unlock_with_passphrase(locked_secret_armored: str, passphrase: str) -> UnlockedKey:
    """Parse a locked secret key and prove ``passphrase`` opens it (else DecryptionError)."""
    try:
        with refused_as(DecryptionError):
            secret = _load_secret_key(locked_secret_armored)
            _check_locked(secret)
            _prove_unlocks(secret, passphrase)
    except CryptoError:
        raise DecryptionError() from None
    return UnlockedKey(secret, passphrase)


def unlock(locked_secret_armored: str, vault_key: bytes) -> UnlockedKey:
    """Unlock an identity's secret key with its vault key (protocol §2)."""
    return unlock_with_passphrase(locked_secret_armored, vault_passphrase(vault_key))


def export_secret_key(
    locked_secret_armored: str,
    vault_key: bytes,
    passphrase: str,
    *,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> str:
    """An armored copy of the secret key locked with ``passphrase`` for stock gpg.

    AES-256, iterated+salted SHA-256 with count byte 255, a fresh salt and IV per
    secret packet. :class:`DecryptionError` if ``vault_key`` doesn't unlock the key.
    """
    if not passphrase:
        raise ValueError("passphrase must not be empty")
    secret = _load_secret_key(locked_secret_armored)
    _check_locked(secret)
    try:
        relocked = relock_secret_key_packets(
            secret.to_bytes(),
            vault_passphrase(vault_key).encode(),
            passphrase.encode("utf-8"),
            randbytes=randbytes,
        )
        exported = SignedSecretKey.from_bytes(relocked)
        exported.verify_bindings()
        _prove_unlocks(exported, passphrase)
    except (InvalidKeyMaterial, DecryptionError):
        raise
    except Exception:
        raise DecryptionError() from None
    return exported.to_armored()
