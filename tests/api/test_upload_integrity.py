"""Refused uploads leave nothing behind; quotas; upkeep; a private data directory.

Regression tests for issue 9 (security review), findings 7, 8 and 11, on SQLite and
PostgreSQL, through a real server on the embedded block store. Each one fails on the
code before the fix, as its docstring says.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import create_engine, func, select

from hygieia.api import create_app
from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient
from hygieia.config import Settings
from hygieia.db.models import PendingPin, Record
from hygieia.storage import LocalBlobStore
from tests.api.test_records import sealed_upload
from tests.support.server import threaded_server

PW = "upload integrity password 1"
MiB = 1024 * 1024


@dataclass
class Server:
    url: str
    settings: Settings
    store: LocalBlobStore

    def signup(self, email: str) -> acct.LoggedIn:
        acct.signup(HygieiaClient(self.url), email, PW)
        return acct.login(HygieiaClient(self.url), email, PW)

    def blocks(self) -> set[str]:
        return {p.name for p in (self.store.root / "blocks").glob("*/*")}

    def leftovers(self) -> int:
        """Block and temporary files no pin needs (what garbage collection would take)."""
        return self.store.collect_garbage(older_than=0)

    def rows(self, model: type[Record] | type[PendingPin]) -> int:
        engine = create_engine(self.settings.resolved_database_url())
        try:
            with engine.connect() as conn:
                return int(conn.scalar(select(func.count()).select_from(model)) or 0)
        finally:
            engine.dispose()


@contextmanager
def serve(db_url: str, tmp_path: Path, **settings: object) -> Iterator[Server]:
    settings = {"reconcile_interval_seconds": 0, **settings}
    config = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        store="local",
        **settings,  # type: ignore[arg-type]
    )
    app = create_app(config)
    with threaded_server(app) as url:
        # The app keeps its stores as a StoreSet; this one has the local store alone.
        yield Server(url=url, settings=config, store=app.state.store.members["local"])


def body(meta: object, content: bytes, *, tail: bytes = b"--b--\r\n") -> bytes:
    return (
        b'--b\r\nContent-Disposition: form-data; name="meta"\r\n\r\n'
        + json.dumps(meta).encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="content"; filename="c"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n" + tail
    )


def post(server: Server, token: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/records",
        headers={
            "authorization": f"Bearer {token}",
            "content-type": "multipart/form-data; boundary=b",
        },
        content=data,
        timeout=60,
    )


def listed(server: Server, token: str) -> list[str]:
    r = httpx.get(f"{server.url}/api/v1/records", headers={"authorization": f"Bearer {token}"})
    return [item["id"] for item in r.json()["items"]]


def expect(r: httpx.Response, status: int, code: str) -> None:
    assert (r.status_code, r.json()["code"]) == (status, code), r.text


# --- finding 7: a refused body is never committed ----------------------------------------
def test_upload_is_committed_only_when_the_body_is_whole(db_url: str, tmp_path: Path) -> None:
    """A third part, or a body cut before its closing boundary, is refused and nothing
    is stored. Fails on the code before the fix: it answered 422 (or 400) after the
    record had been pinned and committed."""
    with serve(db_url, tmp_path) as server:
        alice = server.signup("alice@example.org")
        meta, content = sealed_upload(alice, b"lab values" * 100_000, tmp_path=tmp_path)
        extra = b'--b\r\nContent-Disposition: form-data; name="extra"\r\n\r\nx\r\n--b--\r\n'
        expect(post(server, alice.token, body(meta, content, tail=extra)), 422, "validation_error")
        expect(post(server, alice.token, body(meta, content, tail=b"")), 400, "bad_request")
        assert listed(server, alice.token) == []
        assert list(server.store.pins()) == []
        assert server.rows(Record) == server.rows(PendingPin) == 0
        assert server.blocks() == set()
        # The same upload, whole, goes in.
        assert post(server, alice.token, body(meta, content)).status_code == 201


# --- finding 8: failed uploads leave no blocks -------------------------------------------
def test_failed_uploads_leave_no_blocks(db_url: str, tmp_path: Path) -> None:
    """Three 3 MiB uploads refused for a wrong CID (and others cut by size or framing)
    leave no block file. Fails on the code before the fix: they left 18 block files
    until a restart or `admin reconcile`."""
    with serve(db_url, tmp_path) as server:
        alice = server.signup("alice@example.org")
        meta, content = sealed_upload(alice, os.urandom(3 * MiB), tmp_path=tmp_path)
        wrong = {**meta, "cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}
        for _ in range(3):
            expect(
                post(server, alice.token, body(wrong, content)),
                422,
                "cid_mismatch",
            )
        shorter = {**meta, "size": meta["size"] - MiB}
        expect(post(server, alice.token, body(shorter, content)), 422, "size_mismatch")
        # Framing that breaks after the record's 3 MiB have been stored.
        junk = {**meta, "size": meta["size"] + 1000}
        expect(post(server, alice.token, body(junk, content + bytes(1000))), 422, "invalid_record")
        assert server.blocks() == set()
        assert server.leftovers() == 0

        # A refused upload of bytes a record already holds doesn't take them away.
        assert post(server, alice.token, body(meta, content)).status_code == 201
        kept = server.blocks()
        assert len(kept) == 5  # root + 4 leaves
        expect(post(server, alice.token, body(wrong, content)), 422, "cid_mismatch")
        assert server.blocks() == kept
        [record_id] = listed(server, alice.token)
        r = httpx.get(
            f"{server.url}/api/v1/records/{record_id}/content",
            headers={"authorization": f"Bearer {alice.token}"},
        )
        assert r.content == content
        assert server.leftovers() == 0


# --- finding 8: storage quota ------------------------------------------------------------
def test_quota(db_url: str, tmp_path: Path) -> None:
    """HYGIEIA_QUOTA_BYTES: a record larger than the quota is 413 record_exceeds_quota,
    one that would take the account past it is 507 quota_exceeded, checked again when
    concurrent uploads commit; a refused upload stores nothing. Fails on the code
    before the fix, which had no quota."""
    size = 1_300_000
    with serve(db_url, tmp_path, quota_bytes=2 * size + 100_000) as server:
        alice = server.signup("alice@example.org")
        uploads = [sealed_upload(alice, os.urandom(size), tmp_path=tmp_path) for _ in range(3)]
        ciphertext = uploads[0][0]["size"]
        assert isinstance(ciphertext, int) and 2 * ciphertext <= server.settings.quota_bytes
        assert 3 * ciphertext > server.settings.quota_bytes

        huge, huge_content = sealed_upload(alice, os.urandom(2 * size + 200_000), tmp_path=tmp_path)
        expect(post(server, alice.token, body(huge, huge_content)), 413, "record_exceeds_quota")
        first = post(server, alice.token, body(*uploads[0]))
        assert first.status_code == 201
        assert post(server, alice.token, body(*uploads[1])).status_code == 201
        before = server.blocks()
        expect(post(server, alice.token, body(*uploads[2])), 507, "quota_exceeded")
        assert server.blocks() == before
        assert len(listed(server, alice.token)) == 2
        # Deleting a record frees its share.
        httpx.delete(
            f"{server.url}/api/v1/records/{first.json()['id']}",
            headers={"authorization": f"Bearer {alice.token}"},
        ).raise_for_status()
        assert server.leftovers() == 3  # its blocks wait for collection, as designed
        assert post(server, alice.token, body(*uploads[2])).status_code == 201

        # Two uploads that each fit, but not together, both past the first check:
        # exactly one is indexed, and the other leaves nothing behind.
        bob = server.signup("bob@example.org")
        mine = [sealed_upload(bob, os.urandom(size), tmp_path=tmp_path) for _ in range(3)]
        assert post(server, bob.token, body(*mine[0])).status_code == 201
        statuses = racing_uploads(server, bob.token, [body(*mine[1]), body(*mine[2])])
        assert sorted(statuses) == [201, 507], statuses
        assert len(listed(server, bob.token)) == 2
        assert server.rows(PendingPin) == 0
        assert server.leftovers() == 0


def racing_uploads(server: Server, token: str, bodies: list[bytes]) -> list[int]:
    """Send each body but its last 100 KB, wait (each one's meta part, in the first
    1 MiB, is checked by then), then finish them all at once; the statuses."""
    parsed = urlsplit(server.url)
    socks = []
    for data in bodies:
        sock = socket.create_connection((parsed.hostname, parsed.port), timeout=60)
        sock.sendall(
            (
                f"POST /api/v1/records HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
                f"Authorization: Bearer {token}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data[:-100_000]
        )
        socks.append(sock)
    time.sleep(1.5)
    go = threading.Barrier(len(bodies))
    statuses: list[int] = [0] * len(bodies)

    def finish(i: int) -> None:
        go.wait()
        socks[i].sendall(bodies[i][-100_000:])
        statuses[i] = int(socks[i].recv(65536).split(b" ", 2)[1])
        socks[i].close()

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return statuses


# --- periodic reconcile and garbage collection -----------------------------------------
def test_periodic_upkeep_under_one_lease(db_url: str, tmp_path: Path) -> None:
    """Garbage is collected while the server runs (HYGIEIA_RECONCILE_INTERVAL_SECONDS),
    by one process at a time. Fails on the code before the fix: collection ran only at
    start-up, and there was no lease."""
    from hygieia.db.engine import make_engine
    from hygieia.services import maintenance

    first, second = make_engine(db_url), make_engine(db_url)
    try:
        with maintenance.lease(first) as got:
            assert got
            with maintenance.lease(second) as also:
                assert not also  # another process's turn is skipped
        with maintenance.lease(second) as got:
            assert got  # released with the block
    finally:
        first.dispose()
        second.dispose()

    with serve(db_url, tmp_path, reconcile_interval_seconds=1, reconcile_grace_seconds=0) as server:
        leftover = server.store.put([os.urandom(2 * MiB)])  # as a crash would leave it
        assert server.blocks()
        deadline = time.monotonic() + 20
        while server.blocks() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.blocks() == set(), leftover


# --- finding 11: the data directory is private -------------------------------------------
def test_data_directory_is_private(db_url: str, tmp_path: Path) -> None:
    """The data directory is 0700 and every file in it (and SQLite's files) 0600, with a
    common umask and an existing directory made world-readable. Fails on the code before
    the fix: `hygieia.db` was 0644 and `blocks/` 0755."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    sqlite = urlsplit(db_url).path if db_url.startswith("sqlite") else None
    if sqlite:
        Path(sqlite).touch(mode=0o644)  # an empty file is an empty database
    old_umask = os.umask(0o022)
    try:
        with serve(db_url, tmp_path) as server:
            alice = server.signup("alice@example.org")
            meta, content = sealed_upload(alice, os.urandom(2 * MiB), tmp_path=tmp_path)
            assert post(server, alice.token, body(meta, content)).status_code == 201
            paths = [data, *data.rglob("*")]
            if sqlite:
                db = Path(sqlite)
                paths += [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
                assert {db.name + "-wal", db.name + "-shm"} <= {p.name for p in paths}
            for path in paths:
                mode = path.stat().st_mode & 0o777
                assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
            assert any(p.parent.parent.name == "blocks" for p in paths)  # block files too
    finally:
        os.umask(old_umask)
