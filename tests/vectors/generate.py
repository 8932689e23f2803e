"""Regenerate the known-answer vectors in this folder from ``hygieia.crypto``.

Run ``python -m tests.vectors.generate`` after a deliberate format change only;
the Python tests (tests/crypto) and the browser tests (OpenPGP.js/hash-wasm)
both recompute every value here. Byte strings are standard base64 with padding,
each repeated as ``*_hex`` for reading.

``record_metadata.json`` holds sealed OpenPGP messages, which are randomised (a fresh
key, session keys, ECDH ephemerals), so regenerating changes their bytes; what both
readers must conclude from each one (bound, legacy, mismatch, invalid) does not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any

from hygieia.client import kit as kits
from hygieia.client.sdk import Account, RecordItem
from hygieia.crypto import (
    DEFAULT_KDF,
    SEGMENT_SIZE,
    KdfParams,
    derive_keys,
    derive_recovery_keys,
    generate_identity,
    is_record_id,
    make_pkesk,
    new_recovery_code,
    parse_recovery_code,
    seal_message,
    seal_record_metadata,
    seal_segments,
    seal_session_key_envelope,
    unlock,
    vault_passphrase,
    wrap_vault_key,
)
from hygieia.ipfs import CarWriter, FileImporter, parse_cid

HERE = Path(__file__).parent


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def both(name: str, data: bytes) -> dict[str, str]:
    return {name: b64(data), f"{name}_hex": data.hex()}


def seq(start: int, n: int) -> bytes:
    return bytes((start + i) % 256 for i in range(n))


FULLWIDTH_HYGIEIA = "".join(chr(0xFEE0 + ord(c)) for c in "hygieia")

KDF_CASES: list[tuple[str, str, bytes, KdfParams]] = [
    ("ascii-small", "correct horse battery staple", seq(0, 16), KdfParams(m=8192, t=1, p=1)),
    ("non-ascii", "pässwörd ☃ 医療記録", seq(16, 16), KdfParams(m=8192, t=2, p=1)),
    # NFKC: full-width letters and the "ﬁ" ligature normalise to plain ASCII.
    ("nfkc", FULLWIDTH_HYGIEIA + " ﬁle", seq(32, 16), KdfParams(m=8192, t=1, p=2)),
    ("empty", "", seq(48, 16), KdfParams(m=8192, t=1, p=1)),
    ("default-params", "correct horse battery staple", seq(64, 16), KdfParams()),
]


def kdf_vectors() -> dict[str, Any]:
    cases = []
    for name, password, salt, params in KDF_CASES:
        keys = derive_keys(password, salt, params)
        normalised = unicodedata.normalize("NFKC", password).encode("utf-8")
        cases.append(
            {
                "name": name,
                "password": password,
                **both("password_nfkc_utf8", normalised),
                **both("salt", salt),
                "kdf": params.to_dict(),
                **both("master", keys.master),
                **both("auth_key", keys.auth_key),
                **both("wrap_key", keys.wrap_key),
            }
        )
    return {
        "description": "protocol §1: master = Argon2id(NFKC(password), salt, kdf) (32 bytes); "
        "auth_key/wrap_key = HKDF-SHA256(master, salt=none, info='hygieia/auth'|'hygieia/wrap')",
        "cases": cases,
    }


def vault_vectors(kdf: dict[str, Any]) -> dict[str, Any]:
    cases = []
    for i, case in enumerate(kdf["cases"][:3]):
        wrap_key = base64.b64decode(case["wrap_key"])
        vault_key = seq(100 + i, 32)
        nonce = seq(200 + i, 12)
        wrapped = wrap_vault_key(vault_key, wrap_key, nonce=nonce)
        cases.append(
            {
                "name": f"under wrap_key of kdf case {case['name']!r}",
                **both("key", wrap_key),
                **both("vault_key", vault_key),
                **both("nonce", nonce),
                **both("wrapped", wrapped),
                "passphrase": vault_passphrase(vault_key),
            }
        )
    good = base64.b64decode(cases[0]["wrapped"])
    flipped = bytearray(good)
    flipped[-1] ^= 1
    invalid = [
        ("tag bit flipped", bytes(flipped)),
        ("version byte 0x02", b"\x02" + good[1:]),
        ("truncated by one byte", good[:-1]),
        ("one byte appended", good + b"\x00"),
        ("empty", b""),
    ]
    return {
        "description": "protocol §1 vault key: wrapped = 0x01 || nonce(12) || "
        "AES-256-GCM(key, nonce, vault_key, aad='hygieia/vault-key/v1'); passphrase = "
        "lowercase hex of vault_key. 'invalid' entries must fail to unwrap under cases[0].key",
        "aad": "hygieia/vault-key/v1",
        "cases": cases,
        "invalid": [{"name": name, **both("wrapped", data)} for name, data in invalid],
    }


def recovery_vectors() -> dict[str, Any]:
    cases = []
    for i in range(3):
        code_bytes = seq(40 * i + 7, 20)
        code = new_recovery_code(code_bytes=code_bytes)
        salt = seq(150 + i, 16)
        keys = derive_recovery_keys(code_bytes, salt)
        compact = code.replace("-", "")
        variants = [code, code.lower(), " ".join(code.split("-")), compact, f"  {compact}\n"]
        assert all(parse_recovery_code(v) == code_bytes for v in variants)
        cases.append(
            {
                **both("code_bytes", code_bytes),
                "code": code,
                "also_parses": variants[1:],
                **both("recovery_salt", salt),
                **both("recovery_wrap", keys.wrap_key),
                **both("recovery_auth", keys.auth_key),
            }
        )
    return {
        "description": "protocol §1 recovery code: base32 (RFC 4648, no padding) of 20 bytes in "
        "8 groups of 4 joined by '-'; parsing drops '-' and whitespace and upper-cases. "
        "recovery_wrap/auth = HKDF-SHA256(code_bytes, salt=recovery_salt, "
        "info='hygieia/recovery-wrap'|'hygieia/recovery-auth')",
        "cases": cases,
        "malformed": [
            "",
            "AAAA-AAAA",
            "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAA1",
            "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAA",
            "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAA=",
            "AAAA_AAAA_AAAA_AAAA_AAAA_AAAA_AAAA_AAAA",
        ],
    }


RECORD_A = "3f0c8a52-1b7e-4c9d-9a61-2d5e8f4b7c10"
RECORD_B = "9b2d4e6f-8a1c-4e3b-b5d7-0f9e8d7c6b5a"


def _fields(title: str, cid: str, digest: bytes) -> dict[str, Any]:
    return {
        "title": title,
        "type": "lab",
        "date": "2025-03-14",
        "provider": "City Lab",
        "tags": ["blood"],
        "filename": "record.pdf",
        "media_type": "application/pdf",
        "size": 1234,
        "sha256": digest.hex(),
        "cid": cid,
        "segments": 1,
        "segment_size": SEGMENT_SIZE,
    }


def record_metadata_cases() -> list[dict[str, Any]]:
    """Everything about the sealed-metadata vectors but the sealed bytes (deterministic)."""
    fields_a = _fields(
        "Blood count", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", seq(1, 32)
    )
    fields_b = _fields(
        "Scan", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4", seq(2, 32)
    )
    v2_a = {"v": 2, "id": RECORD_A, **fields_a}
    v1_a = {"v": 1, **fields_a}

    def case(name: str, literal: Any, expect: str, **out: Any) -> dict[str, Any]:
        return {"name": name, "record_id": RECORD_A, "literal": literal, "expect": expect, **out}

    return [
        case("bound, opened under its own id", v2_a, "bound", metadata=v2_a),
        case(
            "record B's metadata served for record A (swapped, moved or resurrected)",
            {"v": 2, "id": RECORD_B, **fields_b},
            "mismatch",
            found=RECORD_B,
        ),
        case("legacy version 1, no id: opens, flagged unbound", v1_a, "legacy", metadata=v1_a),
        case(
            "version 2 naming the id in upper case (ids compare as strings)",
            {**v2_a, "id": RECORD_A.upper()},
            "mismatch",
            found=None,
        ),
        case("version 2 without an id", {"v": 2, **fields_a}, "invalid"),
        case("version 2 with a number for an id", {**v2_a, "id": 7}, "invalid"),
        case("version 1 with an id (never written)", {**v2_a, "v": 1}, "invalid"),
        case("unknown version 3", {**v2_a, "v": 3}, "invalid"),
        case("version true (not a number)", {**v1_a, "v": True}, "invalid"),
        case("not a JSON object", [2, RECORD_A], "invalid"),
    ]


RECORD_METADATA_DESCRIPTION = (
    "protocol §3 binding: sealed metadata version 2 is "
    '{"v":2,"id":<record id>,...}; opened for record_id it must name exactly that id '
    "(expect 'bound'), else the reader refuses it as another record's ('mismatch', "
    "'found' = the id it names if well formed); version 1 (no id) opens as 'legacy' "
    "(shown unbound); anything else is 'invalid' (the opaque decryption error). Each "
    "'sealed' is signed by and encrypted to signer; 'literal' is its plaintext"
)


def record_metadata_vectors() -> dict[str, Any]:
    """The cases sealed for a fresh key: OpenPGP randomises, so each run differs."""
    vault_key = seq(170, 32)
    ident = generate_identity("vectors@example.org", vault_key)
    key = unlock(ident.locked_secret_key, vault_key)
    pub = ident.public_key
    cases = []
    for case in record_metadata_cases():
        literal = case["literal"]
        if isinstance(literal, dict) and literal.get("v") == 2 and is_record_id(literal.get("id")):
            # What a client writes goes through the client's recipe.
            fields = {k: v for k, v in literal.items() if k not in ("v", "id")}
            sealed = seal_record_metadata(
                fields, record_id=literal["id"], recipients=[pub], signer=key
            )
        else:
            data = json.dumps(literal, ensure_ascii=False).encode("utf-8")
            sealed = seal_message(data, recipients=[pub], signer=key)
        cases.append({**case, "sealed": b64(sealed)})
    return {
        "description": RECORD_METADATA_DESCRIPTION,
        "signer": {
            "public_key": pub,
            "locked_secret_key": ident.locked_secret_key,
            **both("vault_key", vault_key),
        },
        "cases": cases,
    }


KIT_PASSWORD = "recovery kit vector password 2026"
KIT_EMAIL = "kit-vectors@example.org"
# (id, created_at, file name, media type, plaintext, metadata version), newest first.
_PDF = b"%PDF-1.4\n% Hygieia recovery kit vector\n" + seq(0, 2000) + b"\n%%EOF\n"
KIT_RECORDS: list[tuple[str, str, str, str, bytes, int]] = [
    (
        "5d2c7e1a-0b94-4f3e-8a6d-1c9b2e7f4a30",
        "2026-03-04T05:06:07Z",
        "report.pdf",
        "application/pdf",
        _PDF,
        2,
    ),
    (
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "2026-02-03T04:05:06Z",
        "one.bin",
        "application/octet-stream",
        b"\x2a",
        2,
    ),
    (
        "0f1e2d3c-4b5a-4968-b7a6-958473625140",
        "2026-01-02T03:04:05Z",
        "empty.txt",
        "text/plain",
        b"",
        2,
    ),
    (
        "7c6b5a49-3827-4160-a5f4-e3d2c1b0a998",
        "2025-12-01T02:03:04Z",
        "legacy.txt",
        "text/plain",
        b"sealed before records named their id\n",
        1,
    ),
]

RECOVERY_KIT_DESCRIPTION = (
    "protocol §6 recovery kit: 'kit' is a kit of a fixed account (default KDF) whose "
    "'password' and 'recovery_code' each unlock it; 'car_b64' is a CARv1 holding every "
    "record's ciphertext blocks (roots = the record CIDs); a reader lists 'expected' (kit "
    "order, newest first: id, title, size and sha256 of the plaintext, bound = metadata "
    "version 2) and opens each record to plaintext with that sha256. OpenPGP randomises, "
    "so regenerating changes the sealed bytes, not what readers conclude"
)


def recovery_kit_vectors() -> dict[str, Any]:
    """A kit with four small records (one legacy), its secrets, content CAR and listing."""
    import io

    salt, recovery_salt = seq(210, 16), seq(230, 16)
    vault_key = seq(40, 32)
    code_bytes = seq(90, 20)
    code = new_recovery_code(code_bytes=code_bytes)
    keys = derive_keys(KIT_PASSWORD, salt, DEFAULT_KDF)
    rkeys = derive_recovery_keys(code_bytes, recovery_salt)
    ident = generate_identity(KIT_EMAIL, vault_key)
    signer = unlock(ident.locked_secret_key, vault_key)
    pub = ident.public_key
    items: list[RecordItem] = []
    expected: list[dict[str, Any]] = []
    contents: list[tuple[str, bytes]] = []
    for record_id, created_at, name, media_type, plaintext, version in KIT_RECORDS:
        session_key = seq(len(items) + 1, 32)
        sealed = b"".join(
            seal_segments(
                io.BytesIO(plaintext), session_key=session_key, signer=signer, size=len(plaintext)
            )
        )
        importer = FileImporter(lambda _cid, _block: None)
        importer.write(sealed)
        cid = str(importer.finish())
        digest = hashlib.sha256(plaintext).hexdigest()
        fields = {
            "title": f"Vector {name}",
            "type": "lab" if name.endswith(".pdf") else "document",
            "date": created_at[:10],
            "provider": "Vector Clinic",
            "tags": ["vector"],
            "filename": name,
            "media_type": media_type,
            "size": len(plaintext),
            "sha256": digest,
            "cid": cid,
            "segments": 1,
            "segment_size": SEGMENT_SIZE,
        }
        if version == 2:
            sealed_meta = seal_record_metadata(
                fields, record_id=record_id, recipients=[pub], signer=signer
            )
        else:
            literal = json.dumps({"v": 1, **fields}, ensure_ascii=False).encode("utf-8")
            sealed_meta = seal_message(literal, recipients=[pub], signer=signer)
        items.append(
            RecordItem(
                id=record_id,
                cid=cid,
                size=len(sealed),
                segments=1,
                created_at=created_at,
                pkesk=make_pkesk(session_key, pub),
                sealed_metadata=sealed_meta,
                envelope=seal_session_key_envelope(
                    session_key, owner_public_key=pub, signer=signer
                ),
            )
        )
        contents.append((cid, sealed))
        expected.append(
            {
                "id": record_id,
                "title": fields["title"],
                "size": len(plaintext),
                "sha256": digest,
                "bound": version == 2,
            }
        )
    account = Account(
        id="00000000-0000-4000-8000-00000000c0de",
        email=KIT_EMAIL,
        fingerprint=ident.fingerprint,
        encryption_key_id=ident.encryption_key_id,
        public_key=pub,
        locked_secret_key=ident.locked_secret_key,
        wrapped_vault_key=wrap_vault_key(vault_key, keys.wrap_key, nonce=seq(1, 12)),
        kdf=DEFAULT_KDF.to_dict(),
        salt=salt,
        recovery_salt=recovery_salt,
        recovery_wrapped_vault_key=wrap_vault_key(vault_key, rkeys.wrap_key, nonce=seq(2, 12)),
        created_at="2025-11-30T00:00:00Z",
    )
    kit = kits.kit_from(
        "https://vault.example.org", account, items, created_at="2026-03-05T00:00:00Z"
    )
    car = io.BytesIO()
    writer = CarWriter(car, [parse_cid(cid) for cid, _ in contents])
    for cid, sealed in contents:
        writer.add_file([sealed], expected=parse_cid(cid))
    return {
        "description": RECOVERY_KIT_DESCRIPTION,
        "password": KIT_PASSWORD,
        "recovery_code": code,
        **both("vault_key", vault_key),
        "kit": json.loads(kit.to_json()),
        "car_b64": b64(car.getvalue()),
        "expected": expected,
    }


def build() -> dict[str, dict[str, Any]]:
    """The deterministic vectors (a test checks the files are exactly these)."""
    kdf = kdf_vectors()
    return {
        "kdf.json": kdf,
        "vault_wrap.json": vault_vectors(kdf),
        "recovery.json": recovery_vectors(),
    }


def build_sealed() -> dict[str, dict[str, Any]]:
    """The vectors holding randomised OpenPGP messages (checked case by case instead)."""
    return {
        "record_metadata.json": record_metadata_vectors(),
        "recovery_kit.json": recovery_kit_vectors(),
    }


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name, data in {**build(), **build_sealed()}.items():
        (HERE / name).write_text(dump(data), encoding="utf-8")


if __name__ == "__main__":
    main()
