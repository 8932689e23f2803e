"""The stock-tools route of docs/protocol.md §6, run verbatim: the kit vector opened with
its recovery code by jq, coreutils, openssl, curl and gpg alone, the ciphertext from a
real IPFS node's gateway (js-ipfs, the vector's CAR imported into it)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.gpg import doc_script

pytestmark = pytest.mark.ipfs

VECTOR = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "recovery_kit.json").read_text("utf-8")
)


def gateway_of(api: str, car: Path) -> str:
    """Import ``car`` into the node at ``api``; its HTTP gateway's URL."""
    with car.open("rb") as fh:
        resp = httpx.post(f"{api}/api/v0/dag/import", files={"file": fh}, timeout=60)
    resp.raise_for_status()
    resp = httpx.post(f"{api}/api/v0/config", params={"arg": "Addresses.Gateway"}, timeout=10)
    resp.raise_for_status()
    port = resp.json()["Value"].rsplit("/", 1)[1]
    return f"http://127.0.0.1:{port}"


def run(
    script: Path, kit: Path, record_id: str, out: Path, **env: str
) -> subprocess.CompletedProcess[bytes]:
    child = {k: v for k, v in os.environ.items() if not k.startswith(("HYGIEIA_", "GNUPG"))}
    return subprocess.run(
        ["bash", str(script), str(kit), record_id, str(out)],
        env={**child, **env},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_kit_opens_with_stock_tools(ipfs_api: str, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    doc_script("gpg-recipe", tools / "open-record.sh")
    script = doc_script("kit-recipe", tools / "kit-open.sh")
    car = tmp_path / "vault.car"
    car.write_bytes(base64.b64decode(VECTOR["car_b64"]))
    gateway = gateway_of(ipfs_api, car)
    kit = tmp_path / "kit.json"
    kit.write_text(json.dumps(VECTOR["kit"]))
    env = {"IPFS_GATEWAY": gateway, "HYGIEIA_RECOVERY_CODE": VECTOR["recovery_code"]}
    for want in VECTOR["expected"]:
        out = tmp_path / f"{want['id']}.out"
        proc = run(script, kit, want["id"], out, **env)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want["sha256"]
        assert want["title"] in proc.stderr.decode()

    # A wrong recovery code: refused, nothing written.
    rid = VECTOR["expected"][0]["id"]
    out = tmp_path / "wrong.out"
    wrong = {**env, "HYGIEIA_RECOVERY_CODE": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH"}
    assert run(script, kit, rid, out, **wrong).returncode != 0
    # Another record's sealed metadata under this id: refused, nothing written.
    swapped = json.loads(json.dumps(VECTOR["kit"]))
    swapped["records"][0]["sealed_metadata"] = swapped["records"][1]["sealed_metadata"]
    kit.write_text(json.dumps(swapped))
    proc = run(script, kit, rid, out, **env)
    assert proc.returncode != 0 and b"is not record" in proc.stderr
    assert not out.exists() and not Path(f"{out}.part").exists()
