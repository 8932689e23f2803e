"""The vault without its server, through the CLI, with the real js-ipfs RPC server:
records stored through a server on the js-ipfs store open byte-identical with
``hygieia offline get`` once that server is stopped, and ``hygieia kit restore`` moves
the vault onto fresh servers (PostgreSQL and SQLite) from js-ipfs and from a CAR file:
same ids, same CIDs, the same password, every record byte-identical."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client import kit as kits
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.encoding import to_b64
from tests.support.accounts import TEST_KDF
from tests.support.cli import Cli
from tests.support.databases import MigratedTemplates
from tests.support.server import running_server
from tests.support.tripwire import tripwire

pytestmark = [pytest.mark.ipfs, pytest.mark.postgres]

PW = "kit ipfs test password 73"
EMAIL = "kit-ipfs@example.org"


def files(tmp_path: Path) -> dict[str, bytes]:
    pdf = b"%PDF-1.7\n" + os.urandom(300_000) + b"\n%%EOF\n"
    return {
        "empty.txt": b"",
        "one.bin": b"\x00",
        "report.pdf": pdf,
        "scan.dcm": os.urandom(9 * 1024 * 1024 + 5),  # three segments, ten blocks
    }


def check_vault(cli: Cli, expected: dict[str, tuple[str, str, bytes]], tmp_path: Path) -> None:
    """Logged in with PW: the same ids and CIDs, each record byte-identical."""
    listed = json.loads(cli.run("ls", "--json", password=PW).stdout)
    assert {r["id"]: r["cid"] for r in listed} == {i: c for i, (_, c, _) in expected.items()}
    assert [r["id"] for r in listed] == list(expected)[::-1]  # the same order, newest first
    for rid, (_name, _cid, body) in expected.items():
        out = tmp_path / f"check-{rid}"
        cli.run("get", rid, "-o", str(out), password=PW)
        assert out.read_bytes() == body
        out.unlink()


def test_offline_get_and_restore(
    ipfs_api: str, db_templates: MigratedTemplates, tmp_path: Path
) -> None:
    bodies = files(tmp_path)
    expected: dict[str, tuple[str, str, bytes]] = {}
    kit_path = tmp_path / "kit.json"
    with running_server(tmp_path / "old", STORE="kubo", IPFS_API=ipfs_api) as url:
        cli = Cli(server=url, home=tmp_path / "home", data_dir=tmp_path / "old")
        with HygieiaClient(url) as api:
            code = acct.signup(api, EMAIL, PW, kdf=TEST_KDF).recovery_code
        cli.run("login", EMAIL, password=PW)
        for name, body in bodies.items():
            (tmp_path / name).write_bytes(body)
            rid, cid = cli.run("put", str(tmp_path / name), password=PW).stdout.split()
            expected[rid] = (name, cid, body)
        cli.run("kit", "export", "-o", str(kit_path))
        car = tmp_path / "vault.car"
        cli.run("export", "car", "-o", str(car))

    # The old server is stopped; nothing may call its URL (now a tripwire).
    with tripwire() as wire:
        cli.server = wire.url
        for i, (rid, (name, _cid, body)) in enumerate(expected.items()):
            out = tmp_path / "offline" / name
            out.parent.mkdir(exist_ok=True)
            # Every other one with the recovery code instead of the password.
            args = ("offline", "get", rid, "--kit", str(kit_path), "--ipfs-api", ipfs_api)
            if i % 2:
                proc = cli.run(*args, "-o", str(out), password=PW)
            else:
                proc = cli.run(*args, "-o", str(out), HYGIEIA_RECOVERY_CODE=code)
            assert "verified" in proc.stdout
            assert out.read_bytes() == body
        # The cached kit is the default; with -o omitted the sealed file name is used.
        rid = next(iter(expected))
        proc = cli.run("offline", "get", rid, "--ipfs-api", ipfs_api, password=PW)
        assert "empty.txt" in proc.stdout
        # Exactly one source.
        proc = cli.run("offline", "get", rid, password=PW, check=False)
        assert proc.returncode != 0 and "exactly one of" in proc.stderr
        assert wire.hits == 0

    # Restore onto a fresh server on PostgreSQL from js-ipfs, keeping the recovery code.
    with (
        db_templates.database("postgres", tmp_path) as pg_url,
        running_server(tmp_path / "new-pg", DATABASE_URL=pg_url) as url2,
    ):
        cli2 = Cli(server=url2, home=tmp_path / "home2", data_dir=tmp_path / "new-pg")
        restore = ("kit", "restore", "--kit", str(kit_path), "--server", url2)
        proc = cli2.run(*restore, "--ipfs-api", ipfs_api, password=PW, HYGIEIA_RECOVERY_CODE=code)
        assert "4 record(s) uploaded" in proc.stdout and "New recovery code" not in proc.stdout
        # Resumable: run again, everything is there already.
        proc = cli2.run(*restore, "--ipfs-api", ipfs_api, password=PW, HYGIEIA_RECOVERY_CODE=code)
        assert "already there, logged in" in proc.stdout and "0 record(s) uploaded" in proc.stdout
        cli2.run("logout")
        cli2.run("login", EMAIL, password=PW)
        check_vault(cli2, expected, tmp_path)
        # The old recovery code is this server's too.
        kit = kits.read_kit(kit_path)
        rkeys = crypto.derive_recovery_keys(
            crypto.parse_recovery_code(code), kit.account.recovery_salt
        )
        with HygieiaClient(url2) as api:
            api.recover(EMAIL, to_b64(rkeys.auth_key))

    # And onto another fresh server (SQLite) from the old server's `hygieia export car`,
    # with a new recovery code.
    with running_server(tmp_path / "new-sqlite") as url3:
        cli3 = Cli(server=url3, home=tmp_path / "home3", data_dir=tmp_path / "new-sqlite")
        proc = cli3.run(
            "kit", "restore", "--kit", str(kit_path), "--server", url3, "--car", str(car),
            password=PW,
        )  # fmt: skip
        assert "New recovery code" in proc.stdout and "old recovery code" in proc.stdout
        new_code = proc.stdout.rsplit("\n", 2)[-2].strip()
        crypto.parse_recovery_code(new_code)
        check_vault(cli3, expected, tmp_path)
        with HygieiaClient(url3) as api:
            salt = api.prelogin(EMAIL).recovery_salt
            assert salt != kit.account.recovery_salt
            fresh = crypto.derive_recovery_keys(crypto.parse_recovery_code(new_code), salt)
            api.recover(EMAIL, to_b64(fresh.auth_key))
            with pytest.raises(ApiError) as refused:
                api.recover(EMAIL, to_b64(rkeys.auth_key))  # the old code, on the new server
            assert refused.value.code == "invalid_recovery_code"
