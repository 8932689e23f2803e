"""Issue 10's promise, end to end through the CLI: the vault outlives its server.

Records go up through a server on the js-ipfs store; a second, independent IPFS node
(Helia) pins them over bitswap. Then the server and js-ipfs are stopped and the
server's data directory is deleted: with only the cached recovery kit and Helia's
trustless gateway, ``hygieia offline ls`` shows every title and ``hygieia offline get``
writes every record byte-identical — with the password, and again with the recovery
code. A gateway that lies (a flipped byte, another block, a CAR cut short, a missing
block) is refused with a clear error and nothing is written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient
from hygieia.ipfs import decode_dag_pb
from tests.support.accounts import TEST_KDF
from tests.support.cli import Cli
from tests.support.helia_node import HeliaNode, running_helia
from tests.support.ipfs_server import running_ipfs
from tests.support.server import running_server
from tests.support.tamper_gateway import Tamper, running_tamper_gateway
from tests.support.tripwire import tripwire

pytestmark = [pytest.mark.ipfs]

PW = "server gone test password 19"
EMAIL = "gone@example.org"
MIB = 1024 * 1024


@dataclass
class Record:
    id: str
    cid: str
    title: str
    name: str
    body: bytes


@dataclass
class Vault:
    cli: Cli
    code: str
    helia: HeliaNode
    records: list[Record]
    work: Path


def bodies() -> dict[str, tuple[str, bytes]]:
    """file name -> (title, bytes): the issue's four kinds of record."""
    return {
        "empty.txt": ("Empty note", b""),
        "one.bin": ("One byte", b"\x7f"),
        "report.pdf": ("Blood count 2026", b"%PDF-1.7\n" + os.urandom(700_000) + b"\n%%EOF\n"),
        "scan.dcm": ("MRI knee", os.urandom(9 * MIB + 123)),  # three segments, ten blocks
    }


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    work = tmp_path_factory.mktemp("gone")
    data_dir = work / "server-data"
    with running_helia(work / "helia") as helia:
        records: list[Record] = []
        with running_ipfs(work / "js-ipfs") as ipfs_api:
            with running_server(data_dir, STORE="kubo", IPFS_API=ipfs_api) as url:
                cli = Cli(server=url, home=work / "home", data_dir=data_dir)
                with HygieiaClient(url) as api:
                    code = acct.signup(api, EMAIL, PW, kdf=TEST_KDF).recovery_code
                cli.run("login", EMAIL, password=PW)
                for name, (title, body) in bodies().items():
                    path = work / name
                    path.write_bytes(body)
                    proc = cli.run("put", str(path), "--title", title, password=PW)
                    rid, cid = proc.stdout.split()
                    records.append(Record(rid, cid, title, name, body))
                    path.unlink()
            # The second node fetches every record over bitswap from js-ipfs.
            helia.connect_to(ipfs_api)
            for record in records:
                helia.pin(record.cid)
        # Server and js-ipfs are stopped; the server's data goes too.
        shutil.rmtree(data_dir)
        yield Vault(cli=cli, code=code, helia=helia, records=records, work=work)


UNLOCKS = ["password", "recovery-code"]


def secret(vault: Vault, unlock: str) -> tuple[str | None, dict[str, Any]]:
    """What unlocks the kit: ``(password, environment)`` for :meth:`Cli.run`."""
    if unlock == "password":
        return PW, {}
    return None, {"HYGIEIA_RECOVERY_CODE": vault.code}


def test_offline_ls_shows_every_title_with_the_server_and_its_data_gone(vault: Vault) -> None:
    assert not (vault.work / "server-data").exists()
    with tripwire() as wire:
        vault.cli.server = wire.url
        for unlock in UNLOCKS:
            password, env = secret(vault, unlock)
            ls = ("offline", "ls")
            listed = json.loads(vault.cli.run(*ls, "--json", password=password, **env).stdout)
            titles = {r["id"]: r["title"] for r in listed}
            assert titles == {r.id: r.title for r in vault.records}
            shown = vault.cli.run(*ls, password=password, **env).stdout
            assert all(r.title in shown for r in vault.records)
        assert wire.hits == 0


@pytest.mark.parametrize("car", [False, True], ids=["raw-blocks", "car"])
@pytest.mark.parametrize("unlock", UNLOCKS)
def test_offline_get_from_the_second_node_is_byte_identical(
    vault: Vault, unlock: str, car: bool
) -> None:
    password, env = secret(vault, unlock)
    out_dir = vault.work / f"out-{unlock}-{car}"
    out_dir.mkdir()
    source = ["--gateway", vault.helia.gateway_url] + (["--gateway-car"] if car else [])
    with tripwire() as wire:
        vault.cli.server = wire.url
        for record in vault.records:
            out = out_dir / record.name
            args = ("offline", "get", record.id, *source, "-o", str(out))
            vault.cli.run(*args, password=password, **env)
            assert out.read_bytes() == record.body
        assert wire.hits == 0


def _scan(vault: Vault) -> Record:
    return next(r for r in vault.records if r.name == "scan.dcm")


def _leaf_and_other(vault: Vault) -> tuple[str, bytes]:
    """A leaf CID inside the multi-block record, and a valid block of another record."""
    scan = _scan(vault)
    leaf = str(decode_dag_pb(vault.helia.get_block(scan.cid)).links[3])
    pdf = next(r for r in vault.records if r.name == "report.pdf")
    return leaf, vault.helia.get_block(pdf.cid)


LIES = {
    "flipped byte in a leaf": ("raw", lambda leaf, other: Tamper("flip", cid=leaf)),
    "another record's block": (
        "raw",
        lambda leaf, other: Tamper("substitute", cid=leaf, block=other),
    ),
    "block missing": ("raw", lambda leaf, other: Tamper("drop", cid=leaf)),
    "CAR cut short": ("car", lambda leaf, other: Tamper("truncate", format="car", keep=3)),
    "CAR cut inside a block": (
        "car",
        lambda leaf, other: Tamper("truncate", format="car", keep=2, cut_inside=True),
    ),
    "flipped byte in a CAR": ("car", lambda leaf, other: Tamper("flip", cid=leaf, format="car")),
}


@pytest.mark.parametrize("lie", LIES)
def test_a_lying_gateway_is_refused_and_nothing_is_written(vault: Vault, lie: str) -> None:
    kind, make = LIES[lie]
    leaf, other = _leaf_and_other(vault)
    scan = _scan(vault)
    out = vault.work / "lies" / lie.replace(" ", "-") / "scan.dcm"
    out.parent.mkdir(parents=True)
    with running_tamper_gateway(vault.helia.gateway_url) as gw:
        gw.add(make(leaf, other))
        args = ["--gateway", gw.url] + (["--gateway-car"] if kind == "car" else [])
        proc = vault.cli.run(
            "offline", "get", scan.id, *args, "-o", str(out), password=PW, check=False
        )
        assert gw.tampered, "the lie was never told"
    assert proc.returncode != 0
    message = proc.stderr.lower()
    assert "traceback" not in message
    assert any(w in message for w in ("does not hash", "missing", "invalid", "unavailable"))
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temp file left behind either


def test_kit_restore_onto_a_new_server_from_the_second_node(vault: Vault, tmp_path: Path) -> None:
    """Moving house with the old server gone: the kit plus Helia's gateway re-create the
    account and every record on a fresh server (same ids, same CIDs, same password)."""
    kit_path = vault.cli.home / "kit.json"  # the CLI's cached kit: nothing exported by hand
    with running_server(tmp_path / "new") as url:
        cli = Cli(server=url, home=tmp_path / "home", data_dir=tmp_path / "new")
        restore = ("kit", "restore", "--kit", str(kit_path), "--server", url)
        proc = cli.run(
            *restore, "--gateway", vault.helia.gateway_url, password=PW,
            HYGIEIA_RECOVERY_CODE=vault.code,
        )  # fmt: skip
        assert f"{len(vault.records)} record(s) uploaded" in proc.stdout
        cli.run("logout")
        cli.run("login", EMAIL, password=PW)
        listed = json.loads(cli.run("ls", "--json", password=PW).stdout)
        assert {r["id"]: r["cid"] for r in listed} == {r.id: r.cid for r in vault.records}
        for record in vault.records:
            out = tmp_path / record.name
            cli.run("get", record.id, "-o", str(out), password=PW)
            assert out.read_bytes() == record.body
