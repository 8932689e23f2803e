from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto
from hygieia.crypto import DEFAULT_KDF, KdfParams

VECTORS = Path(__file__).parents[1] / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


def hkdf_reference(ikm: bytes, info: bytes, salt: bytes = b"") -> bytes:
    """RFC 5869 with the stdlib, independent of ``cryptography``."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


FULLWIDTH_HYGIEIA = "".join(chr(0xFEE0 + ord(c)) for c in "hygieia")
CASES = load("kdf.json")["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kdf_vectors(case: dict[str, Any]) -> None:
    salt = base64.b64decode(case["salt"])
    params = KdfParams.from_dict(case["kdf"])
    keys = crypto.derive_keys(case["password"], salt, params)
    assert keys.master == base64.b64decode(case["master"]) == bytes.fromhex(case["master_hex"])
    assert keys.auth_key == base64.b64decode(case["auth_key"])
    assert keys.wrap_key == base64.b64decode(case["wrap_key"])
    assert keys.auth_key == hkdf_reference(keys.master, b"hygieia/auth")
    assert keys.wrap_key == hkdf_reference(keys.master, b"hygieia/wrap")
    assert crypto.derive_master(case["password"], salt, params) == keys.master


def test_vectors_cover_default_params_and_non_ascii() -> None:
    assert any(KdfParams.from_dict(c["kdf"]) == DEFAULT_KDF for c in CASES)
    assert any(not c["password"].isascii() for c in CASES)


def test_vector_files_are_what_the_generator_writes() -> None:
    from tests.vectors import generate

    for name, data in generate.build().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == generate.dump(data), name


def test_nfkc_normalisation() -> None:
    salt = bytes(16)
    small = KdfParams(m=8192, t=1)
    assert crypto.derive_master(FULLWIDTH_HYGIEIA, salt, small) == crypto.derive_master(
        "hygieia", salt, small
    )
    # Composed and decomposed "é" are the same password.
    assert crypto.derive_master("caf\u00e9", salt, small) == crypto.derive_master(
        "cafe\u0301", salt, small
    )


def test_default_params() -> None:
    assert DEFAULT_KDF.to_dict() == {"alg": "argon2id", "v": 19, "m": 47104, "t": 8, "p": 1}
    assert KdfParams.from_dict(DEFAULT_KDF.to_dict()) == DEFAULT_KDF


@pytest.mark.parametrize(
    "bad",
    [
        {"alg": "argon2i", "v": 19, "m": 65536, "t": 3, "p": 1},
        {"alg": "argon2id", "v": 16, "m": 65536, "t": 3, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 4096, "t": 3, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 2**21, "t": 3, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 65536, "t": 0, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 65536, "t": 11, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 65536, "t": 3, "p": 0},
        {"alg": "argon2id", "v": 19, "m": 65536, "t": 3, "p": 5},
        {"alg": "argon2id", "v": 19, "m": 65536, "t": True, "p": 1},
        {"alg": "argon2id", "v": 19, "m": "65536", "t": 3, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 65536.0, "t": 3, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 65536, "t": 3},
        {"alg": "argon2id", "v": 19, "m": 65536, "t": 3, "p": 1, "x": 1},
        [],
        None,
    ],
)
def test_kdf_params_validation(bad: Any) -> None:
    with pytest.raises(ValueError):
        KdfParams.from_dict(bad)


def test_salt() -> None:
    assert len(crypto.new_salt()) == 16
    assert crypto.new_salt() != crypto.new_salt()
    with pytest.raises(ValueError):
        crypto.derive_master("pw", b"short", KdfParams(m=8192, t=1))


def test_derived_keys_repr_hides_secrets() -> None:
    keys = crypto.derive_keys("pw", bytes(16), KdfParams(m=8192, t=1))
    assert keys.master.hex() not in repr(keys)


def test_at_least_compares_memory_and_passes() -> None:
    """The order the clients' KDF floor and the server's minimum use (finding 5)."""
    assert DEFAULT_KDF.at_least(DEFAULT_KDF)
    assert KdfParams(m=DEFAULT_KDF.m * 2).at_least(DEFAULT_KDF)
    assert KdfParams(t=DEFAULT_KDF.t + 1, p=4).at_least(DEFAULT_KDF)
    assert not KdfParams(m=8192, t=1).at_least(DEFAULT_KDF)
    assert not KdfParams(m=DEFAULT_KDF.m - 1).at_least(DEFAULT_KDF)
    assert not KdfParams(t=DEFAULT_KDF.t - 1, m=DEFAULT_KDF.m * 4).at_least(DEFAULT_KDF)
    assert KdfParams(m=8192, t=1).at_least(KdfParams(m=8192, t=1, p=2))  # lanes don't count
