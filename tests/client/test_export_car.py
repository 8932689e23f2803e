"""``hygieia export car`` against a live server, checked by an independent CAR reader and
by a real IPFS node (js-ipfs ``dag/import``, then ``cat`` and ``block/get``)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from hygieia.client import vault_car
from hygieia.client.records import RecordVerificationError
from hygieia.client.sdk import HygieiaClient
from hygieia.crypto import SEGMENT_SIZE
from tests.support.cli import Cli
from tests.support.tamper import TamperingTransport

PW = "export car password 31"
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# -- an independent CARv1 reader (no hygieia code) ------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _cbor(buf: bytes, pos: int) -> tuple[Any, int]:
    """The subset of CBOR a CAR header uses: maps, arrays, text, bytes, uints, tag 42."""
    head = buf[pos]
    major, info = head >> 5, head & 0x1F
    pos += 1
    if info < 24:
        arg = info
    else:
        width = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        arg = int.from_bytes(buf[pos : pos + width], "big")
        pos += width
    if major == 0:
        return arg, pos
    if major in (2, 3):
        raw = buf[pos : pos + arg]
        return (raw if major == 2 else raw.decode()), pos + arg
    if major == 4:
        items = []
        for _ in range(arg):
            item, pos = _cbor(buf, pos)
            items.append(item)
        return items, pos
    if major == 5:
        out = {}
        for _ in range(arg):
            key, pos = _cbor(buf, pos)
            out[key], pos = _cbor(buf, pos)
        return out, pos
    if major == 6 and arg == 42:
        value, pos = _cbor(buf, pos)
        return ("cid", value[1:]), pos  # drop the 0x00 multibase prefix
    raise AssertionError(f"unexpected CBOR head {head:#x}")


def read_car(data: bytes) -> tuple[list[bytes], dict[bytes, bytes]]:
    """``(roots, {binary cid: block})``; every block's sha2-256 checked."""
    length, pos = _varint(data, 0)
    header, end = _cbor(data, pos)
    assert end == pos + length and header["version"] == 1
    roots = [cid for kind, cid in header["roots"] if kind == "cid"]
    pos = end
    blocks: dict[bytes, bytes] = {}
    while pos < len(data):
        length, pos = _varint(data, pos)
        section = data[pos : pos + length]
        assert len(section) == length, "truncated section"
        version, p = _varint(section, 0)
        codec, p = _varint(section, p)
        mh_code, p = _varint(section, p)
        mh_len, p = _varint(section, p)
        assert (version, mh_code, mh_len) == (1, 0x12, 32) and codec in (0x55, 0x70)
        cid, block = section[: p + 32], section[p + 32 :]
        assert hashlib.sha256(block).digest() == cid[-32:]
        assert cid not in blocks, "a block written twice"
        blocks[cid] = block
        pos += length
    return roots, blocks


def b32_to_binary(cid: str) -> bytes:
    body = cid[1:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


# -- the tests ------------------------------------------------------------------------


def put(cli: Cli, path: Path) -> tuple[str, str]:
    out = cli.run("put", str(path), password=PW).stdout.strip().split()
    return out[0], out[1]


@pytest.mark.ipfs
@SQLITE_ONLY
def test_export_car_imports_into_a_real_node(cli: Cli, tmp_path: Path, ipfs_api: str) -> None:
    cli.new_account("car@example.org", PW)
    files = {
        "empty.bin": b"",
        "one.bin": b"\x01",
        "multi.bin": os.urandom(SEGMENT_SIZE + 3 * 1024 * 1024 + 5),  # several segments
    }
    records = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        records[name] = put(cli, tmp_path / name)

    target = tmp_path / "out" / "vault.car"
    target.parent.mkdir()
    done = cli.run("export", "car", "-o", str(target))
    assert "vault.car: 3 records, " in done.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["vault.car"]  # no temp file left

    raw: dict[str, bytes] = {}
    for name, (rid, _) in records.items():
        cli.run("get", rid, "--raw", "-o", str(tmp_path / f"{name}.raw"), password=PW)
        raw[name] = (tmp_path / f"{name}.raw").read_bytes()
    total = sum(len(r) for r in raw.values())
    assert f"{total} bytes of ciphertext" in done.stdout

    roots, blocks = read_car(target.read_bytes())
    assert sorted(roots) == sorted(b32_to_binary(cid) for _, cid in records.values())
    assert all(root in blocks for root in roots)

    with target.open("rb") as fh:
        answer = httpx.post(
            f"{ipfs_api}/api/v0/dag/import", files={"file": ("vault.car", fh)}, timeout=120
        )
    answer.raise_for_status()
    pinned = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
    assert len([p for p in pinned if "Root" in p and not p["Root"].get("PinErrorMsg")]) == 3
    for name, (_, cid) in records.items():
        cat = httpx.post(f"{ipfs_api}/api/v0/cat", params={"arg": cid}, timeout=120)
        assert cat.status_code == 200 and cat.content == raw[name], name
        block = httpx.post(f"{ipfs_api}/api/v0/block/get", params={"arg": cid}, timeout=60)
        assert block.content == blocks[b32_to_binary(cid)]


@SQLITE_ONLY
def test_export_of_an_empty_vault_and_errors(cli: Cli, tmp_path: Path) -> None:
    cli.new_account("empty-car@example.org", PW)
    target = tmp_path / "empty.car"
    done = cli.run("export", "car", "-o", str(target))
    assert "empty.car: 0 records, 0 bytes of ciphertext" in done.stdout
    roots, blocks = read_car(target.read_bytes())
    assert len(roots) == 1 and blocks == {roots[0]: b""}  # go-car needs a root
    bad = cli.run("export", "car", "-o", str(tmp_path / "no" / "dir.car"), check=False)
    assert bad.returncode == 1 and "No such file or directory" in bad.stderr


@SQLITE_ONLY
def test_a_server_answering_other_bytes_aborts_the_export(cli: Cli, tmp_path: Path) -> None:
    """A record's content that doesn't re-import to its CID stops the export, and the
    partial file is removed."""
    cli.new_account("lying@example.org", PW)
    for i in range(3):
        (tmp_path / f"f{i}").write_bytes(os.urandom(1000 + i))
        put(cli, tmp_path / f"f{i}")
    token = json.loads((cli.home / "session.json").read_text())["token"]
    seen: list[str] = []

    def flip_second(request: httpx.Request, body: bytes) -> bytes | None:
        if not request.url.path.endswith("/content"):
            return None
        seen.append(request.url.path)
        if len(seen) != 2:
            return None
        return body[:-1] + bytes([body[-1] ^ 1])

    target = tmp_path / "vault.car"
    transport = TamperingTransport(flip_second)
    with (
        HygieiaClient(cli.server, token=token, transport=transport) as api,
        pytest.raises(RecordVerificationError, match="does not match its CID"),
    ):
        vault_car.export_car(api, target)
    assert len(seen) == 2
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".hygieia")] == []
