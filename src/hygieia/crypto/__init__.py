"""Hygieia's cryptography: the only package that imports OpenPGP, JOSE and KDF libraries.

Recipes, in the manner of ``cryptography.fernet``: callers never touch rPGP,
argon2 or HKDF directly, and every failure to decrypt or verify raises the one
opaque :class:`DecryptionError`. Formats are specified in ``docs/protocol.md``.
"""

from ._decoy import DecoyKey, decoy_public_key
from ._errors import (
    CryptoError,
    DecryptionError,
    InvalidFraming,
    InvalidKeyMaterial,
    RecordMismatch,
)
from ._framing import SegmentFramingChecker, iter_packets
from ._identity import (
    MAX_ARMORED_KEY_SIZE,
    Identity,
    KeyInfo,
    UnlockedKey,
    export_secret_key,
    generate_identity,
    inspect_keys,
    public_key_info,
    unlock,
    unlock_with_passphrase,
)
from ._kdf import (
    DEFAULT_KDF,
    SALT_SIZE,
    DerivedKeys,
    KdfParams,
    derive_keys,
    derive_master,
    new_salt,
)
from ._messages import (
    open_emergency_vault_key,
    open_message,
    open_session_key_envelope,
    seal_emergency_vault_key,
    seal_message,
    seal_session_key_envelope,
)
from ._metadata import (
    LEGACY_METADATA_VERSION,
    METADATA_VERSION,
    is_record_id,
    metadata_is_bound,
    new_record_id,
    open_record_metadata,
    seal_record_metadata,
)
from ._records import (
    SEGMENT_SIZE,
    make_pkesk,
    max_segment_packet,
    message_recipients,
    new_session_key,
    open_segments,
    pkesk_key_id,
    seal_segments,
    segment_count,
)
from ._recovery import (
    RecoveryKeys,
    derive_recovery_keys,
    new_recovery_code,
    parse_recovery_code,
)
from ._vault import new_vault_key, unwrap_vault_key, vault_passphrase, wrap_vault_key
from ._verifier import dummy_verify, hash_secret, needs_rehash, verify_secret

__all__ = [
    "DEFAULT_KDF",
    "LEGACY_METADATA_VERSION",
    "MAX_ARMORED_KEY_SIZE",
    "METADATA_VERSION",
    "SALT_SIZE",
    "SEGMENT_SIZE",
    "CryptoError",
    "DecoyKey",
    "DecryptionError",
    "DerivedKeys",
    "Identity",
    "InvalidFraming",
    "InvalidKeyMaterial",
    "KdfParams",
    "KeyInfo",
    "RecordMismatch",
    "RecoveryKeys",
    "SegmentFramingChecker",
    "UnlockedKey",
    "decoy_public_key",
    "derive_keys",
    "derive_master",
    "derive_recovery_keys",
    "dummy_verify",
    "export_secret_key",
    "generate_identity",
    "hash_secret",
    "inspect_keys",
    "is_record_id",
    "iter_packets",
    "make_pkesk",
    "max_segment_packet",
    "message_recipients",
    "metadata_is_bound",
    "needs_rehash",
    "new_record_id",
    "new_recovery_code",
    "new_salt",
    "new_session_key",
    "new_vault_key",
    "open_emergency_vault_key",
    "open_message",
    "open_record_metadata",
    "open_segments",
    "open_session_key_envelope",
    "parse_recovery_code",
    "pkesk_key_id",
    "public_key_info",
    "seal_emergency_vault_key",
    "seal_message",
    "seal_record_metadata",
    "seal_segments",
    "seal_session_key_envelope",
    "segment_count",
    "unlock",
    "unlock_with_passphrase",
    "unwrap_vault_key",
    "vault_passphrase",
    "verify_secret",
    "wrap_vault_key",
]
