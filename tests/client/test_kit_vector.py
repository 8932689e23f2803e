"""The recovery kit vector (tests/vectors/recovery_kit.json) and strict kit reading:
both secrets open it, every record opens from the vector's CAR, and a kit altered in
any checked way is refused with a clear reason (no server anywhere)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto
from hygieia.client import kit as kits
from hygieia.client.kdf_policy import KdfRefused
from hygieia.client.records import RecordVerificationError
from hygieia.ipfs import open_block_source

VECTOR = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "recovery_kit.json").read_text("utf-8")
)


def kit_text(data: dict[str, Any] | None = None) -> str:
    return json.dumps(VECTOR["kit"] if data is None else data)


@pytest.fixture(scope="module")
def opened() -> kits.OpenedKit:
    return kits.unlock_kit(kits.parse_kit(kit_text()), password=VECTOR["password"])


def test_vector_kit_is_written_as_the_spec_says() -> None:
    kit = kits.parse_kit(kit_text())
    text = kit.to_json()
    assert text.startswith('{\n  "format": "hygieia-recovery-kit",\n  "version": 1,\n')
    assert json.loads(text) == VECTOR["kit"]


@pytest.mark.parametrize("secret", ["password", "recovery_code"])
def test_vector_lists_with_either_secret(secret: str, tmp_path: Path) -> None:
    kit = kits.parse_kit(kit_text())
    opened = kits.unlock_kit(kit, **{secret: VECTOR[secret]})
    assert opened.vault_key == base64.b64decode(VECTOR["vault_key"])
    listed = kits.list_kit(opened)
    got = [
        {
            "id": r.id,
            "title": r.meta["title"],
            "size": r.meta["size"],
            "sha256": r.meta["sha256"],
            "bound": r.bound,
        }
        for r in listed
    ]
    assert got == VECTOR["expected"]
    car = tmp_path / "vault.car"
    car.write_bytes(base64.b64decode(VECTOR["car_b64"]))
    with open_block_source(car=car) as source:
        for want in VECTOR["expected"]:
            out = tmp_path / want["id"]
            kits.get_offline(opened, want["id"], source, out)
            assert hashlib.sha256(out.read_bytes()).hexdigest() == want["sha256"]


def test_wrong_secrets_fail_opaquely() -> None:
    kit = kits.parse_kit(kit_text())
    with pytest.raises(crypto.DecryptionError):
        kits.unlock_kit(kit, password="not the password at all 1")
    with pytest.raises(crypto.DecryptionError):
        kits.unlock_kit(kit, recovery_code="AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA")


def altered(change: Any) -> str:
    data = copy.deepcopy(VECTOR["kit"])
    change(data)
    return kit_text(data)


def _set(path: str, value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("format", "something-else"), "not a recovery kit"),
        (_set("version", 2), "kit version 2 is not one this client reads"),
        (_set("version", "1"), "kit version '1' is not one"),
        (_set("surprise", True), "unknown field surprise"),
        (_set("account.note", "x"), "unknown field account.note"),
        (_set("records.0.extra", 1), "unknown field records.0.extra"),
        (lambda d: d["account"].pop("salt"), "missing field account.salt"),
        (lambda d: d["records"][0].pop("pkesk"), "missing field records.0.pkesk"),
        (_set("account.salt", base64.b64encode(b"x" * 15).decode()), "account.salt"),
        (_set("records.0.pkesk", "not base64!"), "records.0.pkesk"),
        (_set("records.0.pkesk", base64.b64encode(b"x" * 1025).decode()), "records.0.pkesk"),
        (_set("records.0.id", "NOT-AN-ID"), "records.0.id"),
        (_set("records.0.cid", "bafy-not-a-cid"), "records.0.cid"),
        (_set("records.0.size", -1), "records.0.size"),
        (_set("records.1.id", VECTOR["kit"]["records"][0]["id"]), "a record id appears twice"),
    ],
)
def test_malformed_kits_are_refused(change: Any, message: str) -> None:
    with pytest.raises(kits.KitError, match="(?i)" + message.replace(".", r"\.")):
        kits.parse_kit(altered(change))


def test_not_json_and_too_big() -> None:
    with pytest.raises(kits.KitError, match="not JSON"):
        kits.parse_kit("{")
    with pytest.raises(kits.KitError, match="not a recovery kit"):
        kits.parse_kit("[]")


def test_wrong_fingerprint_is_refused() -> None:
    kit = kits.parse_kit(altered(_set("account.fingerprint", "A" * 40)))
    with pytest.raises(kits.KitError, match=r"fingerprint .* is not its public key's"):
        kits.unlock_kit(kit, password=VECTOR["password"])


def test_another_accounts_key_is_refused() -> None:
    other = crypto.generate_identity("other@example.org", bytes(32))
    kit = kits.parse_kit(altered(_set("account.public_key", other.public_key)))
    with pytest.raises(kits.KitError, match=r"keys are unusable|fingerprint"):
        kits.unlock_kit(kit, password=VECTOR["password"])


def test_kdf_below_the_floor_is_refused_before_deriving() -> None:
    weak = {"alg": "argon2id", "v": 19, "m": 8192, "t": 1, "p": 1}
    kit = kits.parse_kit(altered(_set("account.kdf", weak)))
    with pytest.raises(KdfRefused, match="weaker key derivation"):
        kits.unlock_kit(kit, password=VECTOR["password"], floor=crypto.DEFAULT_KDF)
    huge = {**weak, "m": 1 << 30}
    kit = kits.parse_kit(altered(_set("account.kdf", huge)))
    with pytest.raises(KdfRefused, match="unsupported"):
        kits.unlock_kit(kit, password=VECTOR["password"])


def test_swapped_metadata_and_cids_are_refused(opened: kits.OpenedKit) -> None:
    records = VECTOR["kit"]["records"]

    def swap_meta(d: dict[str, Any]) -> None:
        d["records"][0]["sealed_metadata"] = records[1]["sealed_metadata"]

    def swap_cid(d: dict[str, Any]) -> None:
        d["records"][0]["cid"] = records[1]["cid"]

    for change, found in ((swap_meta, "another record's"), (swap_cid, "another")):
        kit = kits.parse_kit(altered(change))
        with pytest.raises(kits.KitError, match=f"record {records[0]['id']}: .*{found}"):
            kits.list_kit(
                kits.OpenedKit(kit, opened.key, opened.vault_key, opened.encryption_key_id)
            )


def test_foreign_signature_is_refused(opened: kits.OpenedKit) -> None:
    """Metadata sealed to the kit's key but signed by another key: not the account's."""
    stranger = crypto.generate_identity("stranger@example.org", bytes(range(32)))
    signer = crypto.unlock(stranger.locked_secret_key, bytes(range(32)))
    rec = VECTOR["kit"]["records"][0]
    forged = crypto.seal_record_metadata(
        {"title": "forged", "cid": rec["cid"], "sha256": "00" * 32},
        record_id=rec["id"],
        recipients=[VECTOR["kit"]["account"]["public_key"]],
        signer=signer,
    )
    kit = kits.parse_kit(
        altered(_set("records.0.sealed_metadata", base64.b64encode(forged).decode()))
    )
    tampered = kits.OpenedKit(kit, opened.key, opened.vault_key, opened.encryption_key_id)
    with pytest.raises(kits.KitError, match="not this account's"):
        kits.list_kit(tampered)


def test_tampered_content_writes_nothing(opened: kits.OpenedKit, tmp_path: Path) -> None:
    car = bytearray(base64.b64decode(VECTOR["car_b64"]))
    car[-5] ^= 0x01  # inside the last block: the last record's
    path = tmp_path / "bad.car"
    path.write_bytes(bytes(car))
    *good, bad = VECTOR["expected"]
    with open_block_source(car=path) as source:
        for want in good:
            kits.get_offline(opened, want["id"], source, tmp_path / want["id"])
        with pytest.raises(RecordVerificationError, match="content_invalid"):
            kits.get_offline(opened, bad["id"], source, tmp_path / bad["id"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["bad.car", *(w["id"] for w in good)]
    )
