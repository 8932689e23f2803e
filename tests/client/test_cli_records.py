"""Records through the CLI against a real server, on SQLite and PostgreSQL, with the
embedded store and with the real IPFS RPC server: put, ls and its filters, get, rm, and
a get that refuses a corrupted record. (Stock-gpg recovery: test_cli_stock_gpg.py.)"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tests.support.cli import Cli

PW = "records cli password 77"


def pdf_like(size: int = 300_000) -> bytes:
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    body = os.urandom(size - len(head) - 6)
    return head + body + b"%%EOF\n"


def put(cli: Cli, path: Path, *args: str) -> tuple[str, str]:
    out = cli.run("put", str(path), *args, password=PW).stdout.strip().split()
    return out[0], out[1]


def test_round_trip(store_cli: Cli, tmp_path: Path) -> None:
    cli = store_cli
    cli.new_account("rt@example.org", PW)
    files = {
        "empty.bin": b"",
        "one.bin": b"\x42",
        "report.pdf": pdf_like(),
        "big.bin": os.urandom(50 * 1024 * 1024),
    }
    ids = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        rid, cid = put(cli, tmp_path / name, "--title", f"title {name}", "--type", "lab")
        assert re.fullmatch(r"baf[a-z2-7]+", cid)
        ids[name] = (rid, cid)
    listing = json.loads(cli.run("ls", "--json", password=PW).stdout)
    assert {item["filename"] for item in listing} == set(files)
    for item in listing:
        assert {"id", "cid", "title", "type", "date", "size", "filename"} <= set(item)
        assert item["size"] == len(files[item["filename"]])
        assert (item["id"], item["cid"]) == ids[item["filename"]]
    for name, (rid, _) in ids.items():
        out = tmp_path / f"got-{name}"
        cli.run("get", rid, "-o", str(out), password=PW)
        assert out.read_bytes() == files[name], name
    cli.run("rm", ids["one.bin"][0])
    gone = cli.run("get", ids["one.bin"][0], "-o", str(tmp_path / "x"), password=PW, check=False)
    assert gone.returncode == 1 and "not_found" in gone.stderr
    assert not (tmp_path / "x").exists()


def test_ls_filters(cli: Cli, tmp_path: Path) -> None:
    cli.new_account("ls@example.org", PW)
    for name, args in {
        "cbc.pdf": [
            "--type",
            "lab",
            "--tag",
            "blood",
            "--date",
            "2024-03-01",
            "--provider",
            "City Lab",
        ],
        "xray.png": ["--type", "imaging", "--tag", "chest", "--date", "2025-01-15"],
        "letter.txt": [
            "--type",
            "letter",
            "--tag",
            "blood",
            "--date",
            "2026-06-30",
            "--title",
            "Discharge letter",
        ],
    }.items():
        (tmp_path / name).write_bytes(name.encode())
        put(cli, tmp_path / name, *args)

    def names(*args: str) -> set[str]:
        return {
            i["filename"] for i in json.loads(cli.run("ls", "--json", *args, password=PW).stdout)
        }

    assert names("--type", "lab") == {"cbc.pdf"}
    assert names("--tag", "blood") == {"cbc.pdf", "letter.txt"}
    assert names("--since", "2025-01-01") == {"xray.png", "letter.txt"}
    assert names("--until", "2025-01-15", "--since", "2025-01-15") == {"xray.png"}
    assert names("--search", "discharge") == {"letter.txt"}
    assert names("--search", "city lab") == {"cbc.pdf"}
    assert names("--search", "letter discharge") == {"letter.txt"}  # words, any order
    assert names("--search", "IMAGING") == {"xray.png"}  # the type too, as the web app
    table = cli.run("ls", password=PW).stdout
    assert "Discharge letter" in table
    # The last column: good copies of the server's stores (one store here).
    assert {line.rsplit("\t", 1)[1] for line in table.splitlines()} == {"1/1"}
    bad = cli.run("ls", "--since", "yesterday", password=PW, check=False)
    # A usage error, refused before any prompt or request.
    assert bad.returncode == 2 and "expected a date, YYYY-MM-DD" in bad.stderr


def test_get_refuses_a_file_whose_signature_fails(cli: Cli, tmp_path: Path) -> None:
    """The server's stored blob is corrupted on disk: get fails and writes nothing."""
    cli.new_account("corrupt@example.org", PW)
    (tmp_path / "a.txt").write_bytes(b"important lab value: 42\n" * 1000)
    rid, cid = put(cli, tmp_path / "a.txt")
    blocks = [p for p in (cli.data_dir / "blocks" / "blocks").rglob(f"*{cid}*") if p.is_file()]
    assert blocks, "blob not found on disk"
    for block in blocks:
        raw = bytearray(block.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        block.write_bytes(bytes(raw))
    target = tmp_path / "out.txt"
    proc = cli.run("get", rid, "-o", str(target), password=PW, check=False)
    assert proc.returncode != 0
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".hygieia")] == []
