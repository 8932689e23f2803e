"""What the CLI stored opens with stock gpg, by the recipe docs/protocol.md prints:
from the server's raw download and, with the real IPFS RPC server, by CID from IPFS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.support.cli import Cli
from tests.support.gpg import Gpg

PW = "stock gpg cli password 78"
EXPORT_PP = "a separate passphrase for the exported key, 4 gpg"
ROOT = Path(__file__).resolve().parents[2]


def recipe_script(tmp_path: Path) -> Path:
    """The stock-gpg recipe exactly as docs/protocol.md prints it."""
    doc = (ROOT / "docs" / "protocol.md").read_text()
    block = doc.split("<!-- gpg-recipe -->", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "open-record.sh"
    script.write_text(block)
    script.chmod(0o755)
    return script


def run_recipe(
    script: Path, home: Path, record: Path, pkesk: Path, out: Path, passphrase: str
) -> subprocess.CompletedProcess[bytes]:
    # gpg asks for the passphrase; a loopback pinentry via gpg.conf keeps the recipe stock.
    (home / "gpg.conf").write_text(f"pinentry-mode loopback\npassphrase {passphrase}\n")
    return subprocess.run(
        ["bash", str(script), str(record), str(pkesk), str(out)],
        env={**os.environ, "GNUPGHOME": str(home)},
        capture_output=True,
        timeout=300,
    )


def test_stock_gpg_opens_what_the_cli_stored(store_cli: Cli, tmp_path: Path) -> None:
    cli = store_cli
    cli.new_account("gpg-rec@example.org", PW)
    data = os.urandom(9 * 1024 * 1024 + 123)  # three segments
    (tmp_path / "scan.dcm").write_bytes(data)
    rid, cid = cli.run("put", str(tmp_path / "scan.dcm"), password=PW).stdout.split()
    raw = tmp_path / "record.bin"
    cli.run("get", rid, "--raw", "-o", str(raw), password=PW)
    pkesk = tmp_path / "record.bin.pkesk"
    assert pkesk.exists()

    key = tmp_path / "key.asc"
    # The exported key is locked with a passphrase of its own (never the account password).
    cli.run("key", "export", "-o", str(key), password=PW, HYGIEIA_EXPORT_PASSPHRASE=EXPORT_PP)
    gpg = Gpg(tmp_path / "gnupg")
    assert gpg.run("--import", str(key)).returncode == 0
    home = gpg.home
    script = recipe_script(tmp_path)

    out = tmp_path / "record.out"
    proc = run_recipe(script, home, raw, pkesk, out, EXPORT_PP)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == data

    # Straight from the IPFS server by CID, with Hygieia's server out of the picture.
    if cli.store_env and cli.store_env.get("STORE") == "kubo":
        fetched = tmp_path / "from-ipfs.bin"
        with httpx.stream(
            "POST", f"{cli.store_env['IPFS_API']}/api/v0/cat", params={"arg": cid}, timeout=120
        ) as r:
            assert r.status_code == 200
            with open(fetched, "wb") as fh:
                for chunk in r.iter_bytes():
                    fh.write(chunk)
        assert fetched.read_bytes() == raw.read_bytes()
        out2 = tmp_path / "from-ipfs.out"
        proc = run_recipe(script, home, fetched, pkesk, out2, EXPORT_PP)
        assert proc.returncode == 0, proc.stderr
        assert out2.read_bytes() == data

    # A flipped byte: gpg fails, the recipe stops and leaves no output.
    tampered = tmp_path / "tampered.bin"
    blob = bytearray(raw.read_bytes())
    blob[len(blob) // 2] ^= 0x20
    tampered.write_bytes(bytes(blob))
    out3 = tmp_path / "tampered.out"
    proc = run_recipe(script, home, tampered, pkesk, out3, PW)
    assert proc.returncode != 0
    assert not out3.exists() and not (tmp_path / "tampered.out.part").exists()
