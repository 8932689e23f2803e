"""``hygieia kit export``, the cached kit and ``hygieia offline ls`` through the CLI
against a real ``hygieia serve``; the offline commands with that server stopped and the
server URL pointing at a port that records connections."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from hygieia.client import account as acct
from hygieia.client import kit as kits
from hygieia.client.sdk import HygieiaClient
from tests.support.accounts import TEST_KDF
from tests.support.cli import Cli
from tests.support.server import running_server
from tests.support.tripwire import tripwire

PW = "kit cli test password 41"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cached_ids(cli: Cli) -> list[str]:
    path = cli.home / "kit.json"
    assert mode(path) == 0o600
    return [r.id for r in kits.read_kit(path).records]


def test_kit_export_cache_and_offline_ls(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    with running_server(data_dir) as url:
        cli = Cli(server=url, home=tmp_path / "home", data_dir=data_dir)
        with HygieiaClient(url) as api:
            code = acct.signup(api, "kit-cli@example.org", PW, kdf=TEST_KDF).recovery_code
        cli.run("login", "kit-cli@example.org", password=PW)
        files = {}
        for name, body in (("a.pdf", b"%PDF-1.4 a"), ("b.txt", b"bee"), ("c.txt", b"")):
            (tmp_path / name).write_bytes(body)
            rid, _cid = cli.run(
                "put", str(tmp_path / name), "--title", f"Title {name}", password=PW
            ).stdout.split()
            files[rid] = name
        ids = list(files)
        assert cached_ids(cli) == ids[::-1]  # newest first, after each put

        cli.run("rm", ids[1], password=PW)
        assert cached_ids(cli) == [ids[2], ids[0]]

        (cli.home / "kit.json").unlink()  # ls rewrites it whole
        cli.run("ls", password=PW)
        assert cached_ids(cli) == [ids[2], ids[0]]

        # A cache that can't be written warns; the command itself succeeds.
        (cli.home / "kit.json").unlink()
        (cli.home / "kit.json").mkdir()
        proc = cli.run("ls", password=PW)
        assert "warning: the cached recovery kit" in proc.stderr and ids[0] in proc.stdout
        (cli.home / "kit.json").rmdir()

        exported = tmp_path / "export" / "kit.json"
        exported.parent.mkdir()
        proc = cli.run("kit", "export", "-o", str(exported))
        assert str(exported) in proc.stdout
        assert "nothing the server doesn't already hold" in proc.stdout
        assert "no plaintext metadata" in proc.stdout
        assert "keep it private" in proc.stdout
        assert mode(exported) == 0o600
        text = exported.read_text()
        assert text.startswith('{\n  "format": "hygieia-recovery-kit",\n  "version": 1,')
        assert "Title a.pdf" not in text and "a.pdf" not in text  # sealed, never plain
        kit = json.loads(text)
        assert [r["id"] for r in kit["records"]] == [ids[2], ids[0]]
        assert kit["server"] == url

    # The server is gone; its URL and HYGIEIA_SERVER now lead to a port that counts calls.
    with tripwire() as wire:
        cli.server = wire.url
        listed = json.loads(
            cli.run("offline", "ls", "--kit", str(exported), "--json", password=PW).stdout
        )
        assert [(r["id"], r["title"], r["bound"]) for r in listed] == [
            (ids[2], "Title c.txt", True),
            (ids[0], "Title a.pdf", True),
        ]
        # The cached kit by default, unlocked with the recovery code.
        proc = cli.run("offline", "ls", "--search", "pdf", HYGIEIA_RECOVERY_CODE=code)
        assert proc.stdout.split("\t")[0] == ids[0] and "Title a.pdf" in proc.stdout
        assert ids[2] not in proc.stdout
        # A wrong secret, a missing kit: clear errors.
        bad = cli.run("offline", "ls", password="wrong password here 1", check=False)
        assert bad.returncode == 1 and "wrong password" in bad.stderr
        missing = cli.run("offline", "ls", "--kit", str(tmp_path / "none.json"), check=False)
        assert missing.returncode == 1 and "no kit at" in missing.stderr
        assert wire.hits == 0


def test_tampered_kit_is_refused_by_the_cli(tmp_path: Path) -> None:
    vector = json.loads(
        (Path(__file__).resolve().parents[1] / "vectors" / "recovery_kit.json").read_text()
    )
    cli = Cli(server="http://127.0.0.1:9", home=tmp_path / "home", data_dir=tmp_path)
    kit = vector["kit"]
    genuine = kit["account"]["fingerprint"]
    kit["account"]["fingerprint"] = "B" * 40
    path = tmp_path / "kit.json"
    path.write_text(json.dumps(kit))
    proc = cli.run("offline", "ls", "--kit", str(path), password=vector["password"], check=False)
    assert proc.returncode == 1
    assert "recovery kit refused" in proc.stderr and "fingerprint" in proc.stderr
    kit["account"]["fingerprint"] = genuine
    kit["unexpected"] = 1
    path.write_text(json.dumps(kit))
    proc = cli.run("offline", "ls", "--kit", str(path), password=vector["password"], check=False)
    assert proc.returncode == 1 and "unknown field unexpected" in proc.stderr
