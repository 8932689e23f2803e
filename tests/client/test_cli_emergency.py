"""``hygieia emergency`` end to end on both databases: the CLI (subprocesses, one home
per person) against the app served in this process, whose clock the test moves
(``create_app(clock=…)``): a waiting period passes without a sleep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hygieia.config import Settings
from tests.support.cli import Cli
from tests.support.kdf import TEST_KDF_FLOOR
from tests.support.live import LiveApp, live_app

ANN, BOB = "ann@example.org", "bob@example.org"
PW = "emergency cli password 47"


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[LiveApp]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        store="memory",
        kdf_min_memory_kib=TEST_KDF_FLOOR.m,
        kdf_min_passes=TEST_KDF_FLOOR.t,
    )
    with live_app(settings) as app:
        yield app


def _cli(live: LiveApp, tmp_path: Path, name: str) -> Cli:
    return Cli(server=live.url, home=tmp_path / f"home-{name}", data_dir=tmp_path / "data")


def test_emergency_access_cli(live: LiveApp, tmp_path: Path) -> None:
    ann, bob = _cli(live, tmp_path, "ann"), _cli(live, tmp_path, "bob")
    ann.new_account(ANN, PW)
    bob.new_account(BOB, PW)
    files = {"lab.txt": b"haemoglobin 14.1 g/dl\n", "scan.bin": bytes(range(256)) * 4000}
    ids = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        ids[name] = ann.run("put", str(tmp_path / name), password=PW).stdout.split()[0]

    added = ann.run("emergency", "add", BOB, "--wait", "7d", password=PW)
    assert "wait 7 days" in added.stdout and "new contact" in added.stderr
    assert ann.run("emergency", "add", BOB, "--wait", "31d", password=PW, check=False).returncode
    # Bob asks; Ann sees the pending request and refuses it.
    asked = bob.run("emergency", "request", ANN)
    assert "requested access" in asked.stdout
    shown = ann.run("emergency", "ls")
    assert "PENDING REQUEST" in shown.stderr and BOB in shown.stderr
    ann.run("emergency", "deny", BOB)
    live.clock.advance(days=8)
    refused = bob.run("emergency", "open", ANN, password=PW, check=False)
    assert refused.returncode and "no access" in refused.stderr
    # Bob asks again; not before the wait is over...
    bob.run("emergency", "request", ANN)
    live.clock.advance(days=6, hours=23)
    early = bob.run("emergency", "open", ANN, password=PW, check=False)
    assert early.returncode and "released at" in early.stderr
    # ...and then he reads every record, byte for byte, read-only.
    live.clock.advance(hours=2)
    opened = bob.run("emergency", "open", ANN, password=PW)
    assert "2 records" in opened.stdout and "new contact" in opened.stderr
    listed = json.loads(bob.run("ls", "--json", password=PW).stdout)
    assert {r["id"] for r in listed} == set(ids.values())
    for name, data in files.items():
        out = tmp_path / f"bob-{name}"
        bob.run("get", ids[name], "-o", str(out), password=PW)
        assert out.read_bytes() == data
    (tmp_path / "new.txt").write_text("mine")
    wrote = bob.run("put", str(tmp_path / "new.txt"), password=PW, check=False)
    assert wrote.returncode and "read-only" in wrote.stderr
    assert bob.run("rm", ids["lab.txt"], check=False).returncode
    trail = json.loads(ann.run("audit", "--json").stdout)
    assert sum(e["event"] == "emergency.content_read" for e in trail) == 2
    # Ann removes Bob: nothing more for him, at once.
    ann.run("emergency", "rm", BOB)
    gone = bob.run("ls", password=PW, check=False)
    assert gone.returncode and "not an emergency contact" in gone.stderr
    bob.run("emergency", "close")
    assert json.loads(bob.run("ls", "--json", password=PW).stdout) == []  # his own vault


def test_early_approval_and_end_cli(live: LiveApp, tmp_path: Path) -> None:
    ann, bob = _cli(live, tmp_path, "ann"), _cli(live, tmp_path, "bob")
    ann.new_account(ANN, PW)
    bob.new_account(BOB, PW)
    (tmp_path / "r.txt").write_bytes(b"record")
    rid = ann.run("put", str(tmp_path / "r.txt"), password=PW).stdout.split()[0]
    ann.run("emergency", "add", BOB, "--wait", "30d", password=PW)
    bob.run("emergency", "request", ANN)
    ann.run("emergency", "approve", BOB)
    bob.run("emergency", "open", ANN, password=PW)
    bob.run("get", rid, "-o", str(tmp_path / "got"), password=PW)
    assert (tmp_path / "got").read_bytes() == b"record"
    ann.run("emergency", "deny", BOB)  # ends the granted access
    ended = bob.run("get", rid, "-o", str(tmp_path / "again"), password=PW, check=False)
    assert ended.returncode and not (tmp_path / "again").exists()
    listing = json.loads(ann.run("emergency", "ls", "--json").stdout)
    assert listing["contacts"][0]["status"] == "idle"
