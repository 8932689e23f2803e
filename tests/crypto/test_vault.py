from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "vault_wrap.json").read_text())


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vault_wrap_vectors(case: dict[str, Any]) -> None:
    key, vault_key = base64.b64decode(case["key"]), base64.b64decode(case["vault_key"])
    wrapped = crypto.wrap_vault_key(vault_key, key, nonce=base64.b64decode(case["nonce"]))
    assert wrapped == base64.b64decode(case["wrapped"]) == bytes.fromhex(case["wrapped_hex"])
    assert len(wrapped) == 61
    assert crypto.unwrap_vault_key(wrapped, key) == vault_key
    assert crypto.vault_passphrase(vault_key) == case["passphrase"]


def test_wrap_keys_come_from_kdf_vectors() -> None:
    kdf = json.loads((Path(__file__).parents[1] / "vectors" / "kdf.json").read_text())
    wrap_keys = {c["wrap_key"] for c in kdf["cases"]}
    assert all(c["key"] in wrap_keys for c in VECTORS["cases"])


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_vault_wrap_invalid_vectors(case: dict[str, Any]) -> None:
    key = base64.b64decode(VECTORS["cases"][0]["key"])
    with pytest.raises(crypto.DecryptionError):
        crypto.unwrap_vault_key(base64.b64decode(case["wrapped"]), key)


def test_roundtrip_random_nonce() -> None:
    vault_key, key = crypto.new_vault_key(), crypto.new_vault_key()
    first, second = crypto.wrap_vault_key(vault_key, key), crypto.wrap_vault_key(vault_key, key)
    assert first != second
    assert crypto.unwrap_vault_key(first, key) == crypto.unwrap_vault_key(second, key) == vault_key


def test_wrong_key_and_every_flipped_byte_fail() -> None:
    vault_key, key = crypto.new_vault_key(), crypto.new_vault_key()
    wrapped = crypto.wrap_vault_key(vault_key, key)
    with pytest.raises(crypto.DecryptionError):
        crypto.unwrap_vault_key(wrapped, crypto.new_vault_key())
    with pytest.raises(crypto.DecryptionError):
        crypto.unwrap_vault_key(wrapped, b"short")
    for i in range(len(wrapped)):
        bad = bytearray(wrapped)
        bad[i] ^= 0x80
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap_vault_key(bytes(bad), key)


def test_argument_validation() -> None:
    with pytest.raises(ValueError):
        crypto.wrap_vault_key(b"x" * 31, bytes(32))
    with pytest.raises(ValueError):
        crypto.wrap_vault_key(bytes(32), bytes(32), nonce=b"n" * 11)
    with pytest.raises(ValueError):
        crypto.vault_passphrase(b"x")
    assert crypto.vault_passphrase(bytes(range(32))) == bytes(range(32)).hex()
