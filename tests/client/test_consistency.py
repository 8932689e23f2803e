"""Nothing half-written, whatever fails: crashes, orphan pins, an unreachable or lossy store."""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from hygieia.client import account as acct
from hygieia.client import records as recs
from hygieia.client.sdk import ApiError, HygieiaClient, RecordItem
from hygieia.db.models import PendingPin, Record
from hygieia.storage import LocalBlobStore
from tests.support.accounts import new_account
from tests.support.cli import Cli
from tests.support.server import free_port, running_server, server_process

PW = "consistency password 9"


def _engine(db_url: str) -> Engine:
    return create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))


def counts(db_url: str) -> tuple[int, int]:
    engine = _engine(db_url)
    with Session(engine) as db:
        result = (
            db.scalar(select(func.count()).select_from(Record)) or 0,
            db.scalar(select(func.count()).select_from(PendingPin)) or 0,
        )
    engine.dispose()
    return result


def test_orphan_pin_released_on_start_and_by_admin(db_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    with running_server(data_dir, DATABASE_URL=db_url):
        pass  # creates the schema
    store = LocalBlobStore(data_dir / "blocks")

    def crash_between_pin_and_commit(payload: bytes) -> str:
        cid = store.put([payload])
        engine = _engine(db_url)
        with Session(engine) as db:
            db.add(PendingPin(cid=cid, created_at=datetime.now(UTC)))
            db.commit()
        engine.dispose()
        store.pin(cid)
        return cid

    cid = crash_between_pin_and_commit(b"orphan ciphertext 1")
    assert cid in set(store.pins())
    with running_server(data_dir, DATABASE_URL=db_url, RECONCILE_GRACE_SECONDS="0"):
        assert cid not in set(store.pins())
    assert counts(db_url) == (0, 0)

    # The same, repaired by the admin command while the server is down.
    cid2 = crash_between_pin_and_commit(b"orphan ciphertext 2")
    cli = Cli(server="http://unused", home=tmp_path / "home", data_dir=data_dir)
    proc = cli.run(
        "admin",
        "reconcile",
        "--grace",
        "0",
        HYGIEIA_DATA_DIR=str(data_dir),
        HYGIEIA_DATABASE_URL=db_url,
    )
    assert "released 1 orphan pin" in proc.stdout
    assert cid2 not in set(store.pins())
    # A young orphan (an upload on another replica, mid-commit) is left alone.
    cid3 = crash_between_pin_and_commit(b"orphan ciphertext 3")
    cli.run("admin", "reconcile", HYGIEIA_DATA_DIR=str(data_dir), HYGIEIA_DATABASE_URL=db_url)
    assert cid3 in set(store.pins())


def test_server_killed_mid_upload_leaves_nothing(db_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(30 * 1024 * 1024))
    with server_process(data_dir, DATABASE_URL=db_url) as (url, proc):
        api = HygieiaClient(url)
        session = new_account(api, "crash@example.org", PW)
        sent = 0

        def kill_after_some_bytes(n: int) -> None:
            nonlocal sent
            sent += n
            if sent > 8 * 1024 * 1024 and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

        with pytest.raises((ApiError, httpx.HTTPError)):
            recs.put(api, session, src, upload_progress=kill_after_some_bytes)
        assert proc.poll() is not None
    with running_server(data_dir, DATABASE_URL=db_url, RECONCILE_GRACE_SECONDS="0") as url:
        api = HygieiaClient(url)
        session = acct.login(api, "crash@example.org", PW)
        assert api.json("GET", "/records")["items"] == []
        # And the account still works: an upload after the crash succeeds.
        small = tmp_path / "small.txt"
        small.write_bytes(b"after the crash")
        rec = recs.put(api, session, small)
        out = tmp_path / "out.txt"
        recs.get(api, session, rec.id, out)
        assert out.read_bytes() == b"after the crash"
    assert counts(db_url) == (1, 0)
    assert len(list(LocalBlobStore(data_dir / "blocks").pins())) == 1


def test_storage_unreachable_is_503_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    data_dir = tmp_path / "server"
    with running_server(data_dir, DATABASE_URL=db_url, STORE="kubo", IPFS_API=dead) as url:
        api = HygieiaClient(url)
        session = new_account(api, "down@example.org", PW)
        src = tmp_path / "a.txt"
        src.write_bytes(b"needs a store")
        with pytest.raises(ApiError) as exc:
            recs.put(api, session, src)
        assert (exc.value.status, exc.value.code) == (503, "storage_unavailable")
        assert api.json("GET", "/records")["items"] == []
    assert counts(db_url) == (0, 0)
    log = (data_dir / "server.log").read_text()
    assert "a.txt" not in log and "needs a store" not in log


def test_missing_content_is_reported_not_served(cli: Cli, db_url: str, tmp_path: Path) -> None:
    cli.new_account("lost@example.org", PW)
    (tmp_path / "a.txt").write_bytes(b"will be lost")
    rid, _cid = cli.run("put", str(tmp_path / "a.txt"), password=PW).stdout.split()
    for block in (cli.data_dir / "blocks" / "blocks").rglob("*"):
        if block.is_file():
            block.unlink()
    proc = cli.run("get", rid, "-o", str(tmp_path / "out"), password=PW, check=False)
    assert proc.returncode == 1 and "content_missing" in proc.stderr
    assert not (tmp_path / "out").exists()
    token = json.loads((cli.home / "session.json").read_text())["token"]
    r = httpx.get(
        f"{cli.server}/api/v1/records/{rid}/content", headers={"authorization": f"Bearer {token}"}
    )
    assert (r.status_code, r.json()["code"]) == (502, "content_missing")
    report = cli.run(
        "admin",
        "reconcile",
        HYGIEIA_DATA_DIR=str(cli.data_dir),
        HYGIEIA_DATABASE_URL=db_url,
        check=False,
    )
    assert report.returncode == 1
    assert f"record {rid}: content missing" in report.stderr


def test_concurrent_uploads_are_independent(cli: Cli, tmp_path: Path) -> None:
    """Two uploads at once from two threads both land intact."""
    api = HygieiaClient(cli.server)
    session = new_account(api, "conc@example.org", PW)
    files = []
    for i in range(2):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(6 * 1024 * 1024))
        files.append(p)
    results: dict[int, RecordItem] = {}

    def go(i: int) -> None:
        results[i] = recs.put(HygieiaClient(cli.server, token=session.token), session, files[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, p in enumerate(files):
        out = tmp_path / f"out{i}"
        recs.get(api, session, results[i].id, out)
        assert out.read_bytes() == p.read_bytes()


def _blocks(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "blocks" / "blocks").glob("*/*")}


def test_deleted_ciphertext_leaves_the_disk_and_lost_pins_come_back(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    cli.new_account("gc@example.org", PW)
    before = _blocks(cli.data_dir)
    (tmp_path / "keep.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (tmp_path / "drop.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    keep_id, keep_cid = cli.run("put", str(tmp_path / "keep.bin"), password=PW).stdout.split()
    with_keep = _blocks(cli.data_dir)
    drop_id, drop_cid = cli.run("put", str(tmp_path / "drop.bin"), password=PW).stdout.split()
    assert drop_cid in _blocks(cli.data_dir)
    cli.run("rm", drop_id)
    # A lost pin (e.g. a store restored from an older backup) must not cost a record.
    (cli.data_dir / "blocks" / "pins" / keep_cid).unlink()

    out = cli.run(
        "admin",
        "reconcile",
        "--grace",
        "0",
        HYGIEIA_DATA_DIR=str(cli.data_dir),
        HYGIEIA_DATABASE_URL=db_url,
    ).stdout
    assert f"pinned again {keep_cid}" in out
    assert _blocks(cli.data_dir) == with_keep and with_keep > before
    assert drop_cid not in _blocks(cli.data_dir)
    got = tmp_path / "got.bin"
    cli.run("get", keep_id, "-o", str(got), password=PW)
    assert got.read_bytes() == (tmp_path / "keep.bin").read_bytes()
