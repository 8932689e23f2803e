from __future__ import annotations

import os
import re
from collections.abc import Callable

import pytest
from openpgp.composed import (
    EncryptionCaps,
    KeyType,
    SecretKeyParamsBuilder,
    SignedSecretKey,
    SubkeyParamsBuilder,
)

from hygieia import crypto
from hygieia.crypto._identity import generate_secret_key
from tests.support.gpg import Gpg
from tests.support.identities import Person, make_person


def s2k_params(armored: str) -> list[tuple[int, str, str, int, bytes, bytes]]:
    key, _ = SignedSecretKey.from_armor(armored)
    out = []
    for s2k in [key.primary_secret_s2k(), *key.secret_subkey_s2ks()]:
        string_to_key = s2k.string_to_key
        assert string_to_key is not None and string_to_key.salt and s2k.iv
        out.append(
            (
                s2k.usage_id,
                str(s2k.symmetric_algorithm),
                str(string_to_key.hash_algorithm),
                int(string_to_key.count or 0),
                string_to_key.salt,
                s2k.iv,
            )
        )
    return out


def test_generate_profile(alice: Person) -> None:
    identity = alice.identity
    assert re.fullmatch(r"[0-9A-F]{40}", identity.fingerprint)
    assert re.fullmatch(r"[0-9A-F]{16}", identity.encryption_key_id)
    assert identity.public_key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert identity.locked_secret_key.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    key, _ = SignedSecretKey.from_armor(identity.locked_secret_key)
    assert key.user_ids == ["<alice@example.org>"]
    self_sig = key.details.users[0].signatures[0]
    features = self_sig.features()
    assert features is not None and features.seipd_v1 and not features.seipd_v2
    assert [str(a) for a in self_sig.preferred_symmetric_algs()] == ["aes256"]
    assert [str(a) for a in self_sig.preferred_hash_algs()] == ["sha256", "sha512"]
    assert [str(a) for a in self_sig.preferred_compression_algs()] == ["uncompressed"]
    info = crypto.inspect_keys(identity.public_key, identity.locked_secret_key)
    assert info.fingerprint == identity.fingerprint
    assert info.encryption_key_id == identity.encryption_key_id
    assert info.encryption_fingerprint.endswith(identity.encryption_key_id)


def test_s2k_salts_and_ivs_differ_per_packet(alice: Person) -> None:
    primary, subkey = s2k_params(alice.identity.locked_secret_key)
    for usage, sym, hash_alg, count, _, _ in (primary, subkey):
        assert (usage, sym, hash_alg, count) == (254, "aes256", "sha256", 96)
    assert primary[4] != subkey[4]  # salt
    assert primary[5] != subkey[5]  # IV


def test_generate_rejects_bad_email() -> None:
    for email in ["", "no-at-sign", "a@b>", "a b@c", "<a@b>"]:
        with pytest.raises(ValueError):
            crypto.generate_identity(email, crypto.new_vault_key())


def test_unlock(alice: Person) -> None:
    key = crypto.unlock(alice.identity.locked_secret_key, alice.vault_key)
    assert key.fingerprint == alice.identity.fingerprint
    assert alice.vault_key.hex() not in repr(key)
    with pytest.raises(crypto.DecryptionError):
        crypto.unlock(alice.identity.locked_secret_key, crypto.new_vault_key())
    with pytest.raises(crypto.DecryptionError):
        crypto.unlock("garbage", alice.vault_key)
    with pytest.raises(crypto.DecryptionError):
        crypto.unlock(alice.identity.public_key, alice.vault_key)


# --- inspect_keys: what the server checks on sign-up -------------------------------------


def unlocked_secret_key() -> SignedSecretKey:
    return (
        SecretKeyParamsBuilder()
        .version(4)
        .key_type(KeyType.ed25519_legacy())
        .can_certify(True)
        .can_sign(True)
        .primary_user_id("<plain@example.org>")
        .subkey(
            SubkeyParamsBuilder()
            .version(4)
            .key_type(KeyType.ecdh("curve25519"))
            .can_encrypt(EncryptionCaps.all())
            .build()
        )
        .generate()
    )


def reason(call: Callable[[], object]) -> str:
    with pytest.raises(crypto.InvalidKeyMaterial) as info:
        call()
    return info.value.reason


def test_inspect_unlocked_secret_key() -> None:
    key = unlocked_secret_key()
    public, secret = key.to_public_key().to_armored(), key.to_armored()
    assert reason(lambda: crypto.inspect_keys(public, secret)) == "unlocked_secret_key"


def test_inspect_key_mismatch(alice: Person, bob: Person) -> None:
    assert (
        reason(
            lambda: crypto.inspect_keys(alice.identity.public_key, bob.identity.locked_secret_key)
        )
        == "key_mismatch"
    )


def test_inspect_swapped_arguments(alice: Person) -> None:
    with pytest.raises(crypto.InvalidKeyMaterial, match="secret key was given") as info:
        crypto.inspect_keys(alice.identity.locked_secret_key, alice.identity.public_key)
    assert info.value.reason == "invalid_key"
    both_public = (alice.identity.public_key, alice.identity.public_key)
    assert reason(lambda: crypto.inspect_keys(*both_public)) == "invalid_key"
    both_secret = (alice.identity.locked_secret_key, alice.identity.locked_secret_key)
    assert reason(lambda: crypto.inspect_keys(*both_secret)) == "invalid_key"


def test_inspect_wrong_algorithms() -> None:
    # The profile's shape, with RFC 9580 Ed25519/X25519 instead of the legacy ids.
    key = generate_secret_key("<new@example.org>", "pw", KeyType.ed25519(), KeyType.x25519())
    public, secret = key.to_public_key().to_armored(), key.to_armored()
    assert reason(lambda: crypto.inspect_keys(public, secret)) == "invalid_key"


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "garbage",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
        os.urandom(300),
        b"\xff\xfe\x00not utf-8",
        "é" * 100,
        "A" * (crypto.MAX_ARMORED_KEY_SIZE + 1),
        b"A" * (crypto.MAX_ARMORED_KEY_SIZE + 1),
        None,
        12,
    ],
    ids=[
        "empty",
        "text",
        "bad-armor",
        "binary",
        "non-utf8",
        "non-ascii",
        "huge",
        "huge-bytes",
        "none",
        "int",
    ],
)
def test_inspect_garbage(alice: Person, junk: object) -> None:
    good_public, good_secret = alice.identity.public_key, alice.identity.locked_secret_key
    assert reason(lambda: crypto.inspect_keys(junk, good_secret)) == "invalid_key"
    assert reason(lambda: crypto.inspect_keys(good_public, junk)) == "invalid_key"


def test_inspect_two_keys_in_one_block(alice: Person, bob: Person) -> None:
    import io

    from openpgp.armor import BlockType, write
    from openpgp.composed import SignedPublicKey

    a, _ = SignedPublicKey.from_armor(alice.identity.public_key)
    b, _ = SignedPublicKey.from_armor(bob.identity.public_key)
    out = io.StringIO()
    write(a.to_bytes() + b.to_bytes(), BlockType.PublicKey, out)
    armored = out.getvalue()
    assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    secret = alice.identity.locked_secret_key
    assert reason(lambda: crypto.inspect_keys(armored, secret)) == "invalid_key"


# --- stock gpg -----------------------------------------------------------------------------


def test_gpg_imports_and_uses_generated_key(alice: Person, gpg_factory: Callable[[], Gpg]) -> None:
    # A wrong passphrase first, in its own home (gpg-agent caches good ones).
    other = gpg_factory()
    other.ok("--import", input=alice.identity.locked_secret_key.encode())
    assert other.run("--sign", input=b"hello", passphrase="0" * 64).returncode != 0
    gpg = gpg_factory()
    passphrase = crypto.vault_passphrase(alice.vault_key)
    gpg.ok("--import", input=alice.identity.locked_secret_key.encode(), passphrase=passphrase)
    listing = gpg.ok("--with-colons", "--list-secret-keys").decode()
    rows = [line.split(":") for line in listing.splitlines()]
    sec = next(r for r in rows if r[0] == "sec")
    ssb = next(r for r in rows if r[0] == "ssb")
    assert sec[3] == "22" and ssb[3] == "18"
    assert sec[16] == "ed25519" and ssb[16] == "cv25519"
    packets = gpg.ok("--list-packets", input=alice.identity.public_key.encode()).decode()
    assert "features: 01" in packets
    assert "version 4, algo 22" in packets and "version 4, algo 18" in packets
    # gpg unlocks the key with the vault key's hex and signs with it.
    signed = gpg.ok("--sign", input=b"hello", passphrase=passphrase)
    assert b"GOODSIG" in gpg.run("--verify", input=signed).stderr


def test_export_secret_key_for_gpg(alice: Person, gpg_factory: Callable[[], Gpg]) -> None:
    exported = crypto.export_secret_key(
        alice.identity.locked_secret_key, alice.vault_key, "correct horse ☃"
    )
    params = s2k_params(exported)
    assert [p[:4] for p in params] == [(254, "aes256", "sha256", 255)] * 2
    assert params[0][4:] != params[1][4:]
    # The vault passphrase no longer opens it; the new one does.
    with pytest.raises(crypto.DecryptionError):
        crypto.unlock(exported, alice.vault_key)
    key = crypto.unlock_with_passphrase(exported, "correct horse ☃")
    assert key.fingerprint == alice.identity.fingerprint
    assert crypto.inspect_keys(alice.identity.public_key, exported).fingerprint == (
        alice.identity.fingerprint
    )

    message = crypto.seal_message(
        b"lab report", recipients=[alice.identity.public_key], signer=alice.key
    )
    gpg = gpg_factory()
    gpg.ok("--import", input=exported.encode())
    # Wrong passphrase first: gpg-agent caches a good one.
    assert gpg.run("--decrypt", input=message, passphrase="wrong").returncode != 0
    result = gpg.run("--decrypt", input=message, passphrase="correct horse ☃")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"lab report"
    assert b"GOODSIG" in result.stderr


def test_export_with_wrong_vault_key(alice: Person) -> None:
    with pytest.raises(crypto.DecryptionError):
        crypto.export_secret_key(alice.identity.locked_secret_key, crypto.new_vault_key(), "pw")


def test_export_is_deterministic_given_randomness(alice: Person) -> None:
    def fixed(n: int) -> bytes:
        return b"\x42" * n

    first = crypto.export_secret_key(
        alice.identity.locked_secret_key, alice.vault_key, "pw", randbytes=fixed
    )
    second = crypto.export_secret_key(
        alice.identity.locked_secret_key, alice.vault_key, "pw", randbytes=fixed
    )
    assert first == second


def test_make_person_fixture_is_independent() -> None:
    assert (
        make_person("c@example.org").identity.fingerprint
        != make_person("c@example.org").identity.fingerprint
    )
