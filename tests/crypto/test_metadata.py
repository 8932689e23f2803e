"""Sealed record metadata bound to the record id (protocol §3, "Binding"; issue 9,
finding 13): the shared vectors, and the recipes' own checks."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto
from tests.support.identities import Person

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "record_metadata.json"
A = "3f0c8a52-1b7e-4c9d-9a61-2d5e8f4b7c10"
B = "9b2d4e6f-8a1c-4e3b-b5d7-0f9e8d7c6b5a"


def verdict(sealed: bytes, record_id: str, key: crypto.UnlockedKey, signer: str) -> dict[str, Any]:
    try:
        meta = crypto.open_record_metadata(
            sealed, record_id=record_id, key=key, signer_public_key=signer
        )
    except crypto.RecordMismatch as exc:
        assert record_id in str(exc)
        return {"expect": "mismatch", "found": exc.found}
    except crypto.DecryptionError:
        return {"expect": "invalid"}
    return {"expect": "bound" if crypto.metadata_is_bound(meta) else "legacy", "metadata": meta}


def test_vectors() -> None:
    """Failed before: metadata carried no id, so every case opened alike (the swapped
    record's included) or was refused as an unknown version."""
    vec = json.loads(VECTORS.read_text())
    signer = vec["signer"]
    key = crypto.unlock(signer["locked_secret_key"], base64.b64decode(signer["vault_key"]))
    assert {c["expect"] for c in vec["cases"]} == {"bound", "legacy", "mismatch", "invalid"}
    for case in vec["cases"]:
        got = verdict(
            base64.b64decode(case["sealed"]), case["record_id"], key, signer["public_key"]
        )
        want = {k: case[k] for k in ("expect", "found", "metadata") if k in case}
        assert got == want, case["name"]
        # The plaintext is what the vector says it is.
        raw = crypto.open_message(
            base64.b64decode(case["sealed"]), key=key, signer_public_key=signer["public_key"]
        )
        assert json.loads(raw) == case["literal"], case["name"]


def test_vector_file_is_what_the_generator_writes() -> None:
    """Everything but the (randomised) sealed bytes and key matches the generator."""
    from tests.vectors import generate

    vec = json.loads(VECTORS.read_text())
    assert vec["description"] == generate.RECORD_METADATA_DESCRIPTION
    unsealed = [{k: v for k, v in c.items() if k != "sealed"} for c in vec["cases"]]
    assert unsealed == generate.record_metadata_cases()


def test_round_trip_and_mismatch(alice: Person, bob: Person) -> None:
    fields = {"title": "Blood count", "cid": "bafy", "tags": ["lab"]}
    pub = alice.identity.public_key
    sealed = crypto.seal_record_metadata(fields, record_id=A, recipients=[pub], signer=alice.key)
    meta = crypto.open_record_metadata(sealed, record_id=A, key=alice.key, signer_public_key=pub)
    assert meta == {"v": 2, "id": A, **fields}
    assert crypto.metadata_is_bound(meta)
    with pytest.raises(crypto.RecordMismatch) as exc:
        crypto.open_record_metadata(sealed, record_id=B, key=alice.key, signer_public_key=pub)
    assert (exc.value.expected, exc.value.found) == (B, A)
    assert f"record {A}'s sealed metadata for record {B}" in str(exc.value)
    # A mismatch is still a decryption failure to callers that only know that one.
    assert isinstance(exc.value, crypto.DecryptionError)
    # Signed by somebody else: opaque, whatever id it names.
    with pytest.raises(crypto.DecryptionError) as opaque:
        crypto.open_record_metadata(
            sealed, record_id=A, key=alice.key, signer_public_key=bob.identity.public_key
        )
    assert not isinstance(opaque.value, crypto.RecordMismatch)


def test_seal_refuses_bad_ids_and_reserved_fields(alice: Person) -> None:
    pub = alice.identity.public_key
    for bad in (A.upper(), A.replace("-", ""), str(uuid.uuid1()), "", "x" * 36, f"{A}\n"):
        with pytest.raises(ValueError):
            crypto.seal_record_metadata({}, record_id=bad, recipients=[pub], signer=alice.key)
    for reserved in ({"v": 1}, {"id": A}):
        with pytest.raises(ValueError):
            crypto.seal_record_metadata(reserved, record_id=A, recipients=[pub], signer=alice.key)


def test_new_record_ids() -> None:
    ids = {crypto.new_record_id() for _ in range(200)}
    assert len(ids) == 200
    pattern = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(pattern.match(i) and crypto.is_record_id(i) for i in ids)
    assert not crypto.is_record_id(None)
    assert not crypto.is_record_id(A.upper())
    assert not crypto.is_record_id(str(uuid.uuid1()))
