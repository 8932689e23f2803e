"""Two API replicas on one PostgreSQL and one IPFS node, behind Debian's nginx.

Nothing a replica needs lives in its process: a session made through one works on the
other, failed logins spread over both count against one limit, and when one replica
is SIGKILLed in the middle of 50 concurrent uploads and deletes, every record that was
acknowledged opens byte-identical through the survivor, and after ``hygieia admin
reconcile`` the node's pins and the database's records are the same set.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from hygieia.client import account as acct
from hygieia.client import records as rec
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.db.models import PendingPin, Record, RecordCopy
from hygieia.ipfs import normalize_cid
from tests.support.accounts import new_account
from tests.support.databases import MigratedTemplates, unavailable
from tests.support.ipfs_server import IpfsServerError, running_ipfs
from tests.support.nginx import running_nginx
from tests.support.server import server_process

pytestmark = [pytest.mark.postgres, pytest.mark.ipfs]

EMAIL = "replicas@example.org"
PW = "two replicas, one vault"
UPLOADS = 50
WORKERS = 10
#: Failed logins an (account, address) pair gets before the delays start.
MAX_FAILURES = 3
#: The replica dies once this many uploads have been answered, and as many as
#: IN_FLIGHT are sending their bodies (round robin has put some of them on it).
KILL_AFTER = 15
IN_FLIGHT = WORKERS - 2


@pytest.fixture
def pg_url(tmp_path: Path, db_templates: MigratedTemplates) -> Iterator[str]:
    with db_templates.database("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def own_ipfs(tmp_path: Path) -> Iterator[str]:
    """A js-ipfs node of this test's own: its pins must be this test's alone."""
    with contextlib.ExitStack() as stack:
        try:
            api = stack.enter_context(running_ipfs(tmp_path / "ipfs"))
        except (IpfsServerError, OSError, subprocess.SubprocessError) as exc:
            unavailable(f"js-ipfs test server: {exc}")
        yield api


@dataclass
class Outcome:
    index: int
    record_id: str | None = None  # set on a 201
    error: str | None = None
    deleted: bool | None = None  # None: not asked; False: the delete's answer was lost


def _hostport(url: str) -> str:
    return urlsplit(url).netloc


def _node_pins(ipfs_api: str) -> set[str]:
    resp = httpx.post(f"{ipfs_api}/api/v0/pin/ls", params={"type": "recursive"}, timeout=30)
    resp.raise_for_status()
    return {normalize_cid(cid) for cid in resp.json().get("Keys", {})}


def _failed_login(url: str, address: str) -> int:
    body = {"email": EMAIL, "auth_key": base64.b64encode(os.urandom(32)).decode()}
    resp = httpx.post(
        f"{url}/api/v1/auth/login", json=body, headers={"x-forwarded-for": address}, timeout=30
    )
    return resp.status_code


def test_two_replicas_behind_nginx(tmp_path: Path, pg_url: str, own_ipfs: str) -> None:
    env = {
        "DATABASE_URL": pg_url,
        "STORE": "kubo",
        "IPFS_API": own_ipfs,
        "TRUSTED_PROXIES": "127.0.0.1",
        "LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        "LOGIN_DELAY_SECONDS": "600",
        # One account uploads from WORKERS threads: the per-process cap isn't the test.
        "MAX_UPLOADS_PER_ACCOUNT": str(WORKERS),
    }
    with contextlib.ExitStack() as stack:
        url_a, proc_a = stack.enter_context(server_process(tmp_path / "a", None, **env))
        url_b, _proc_b = stack.enter_context(server_process(tmp_path / "b", None, **env))
        a, b = _hostport(url_a), _hostport(url_b)
        proxy = stack.enter_context(running_nginx(tmp_path / "nginx", [a, b]))
        api = stack.enter_context(HygieiaClient(proxy.url, timeout=120))
        session = new_account(api, EMAIL, PW)

        # --- sessions are rows: a token from one replica works on each ------------
        for url in (url_a, url_b):
            with HygieiaClient(url, token=session.token) as direct:
                assert direct.me().email == EMAIL

        # ... and the stand-ins for unknown emails (server secrets, decoy keys) are
        # rows too: the two replicas answer alike, so neither tells on the other.
        stranger = "nobody-here@example.org"
        answers = []
        for url in (url_a, url_b):
            with HygieiaClient(url, token=session.token) as direct:
                answers.append((direct.prelogin(stranger), direct.user_key(stranger)))
        assert answers[0] == answers[1]

        # --- failed logins through nginx hit one limit, whichever replica answers --
        statuses = [_failed_login(proxy.url, "203.0.113.7") for _ in range(MAX_FAILURES + 3)]
        assert statuses == [401] * MAX_FAILURES + [429] * 3, statuses
        logins = [u for m, p, _s, u in proxy.served() if m == "POST" and p.endswith("/login")]
        assert {a, b} <= set(logins[-len(statuses) :]), "nginx did not spread the logins"
        # The bucket is (account, address): the address came through X-Forwarded-For.
        with HygieiaClient(proxy.url) as other:
            other._http.headers["x-forwarded-for"] = "203.0.113.8"
            assert acct.login(other, EMAIL, PW).account.email == EMAIL
        # ... and the right password from the throttled address is held back too.
        assert _failed_login(url_b, "203.0.113.7") == 429  # direct, as the other replica

        # --- 50 concurrent uploads and some deletes; replica A dies mid-way --------
        rng = random.Random(11)
        sources: dict[str, bytes] = {}
        prepared = []
        src_dir, seal_dir = tmp_path / "src", tmp_path / "sealed"
        src_dir.mkdir()
        seal_dir.mkdir()
        for i in range(UPLOADS):
            data = rng.randbytes(rng.randrange(256 * 1024, 768 * 1024))
            path = src_dir / f"r{i}.bin"
            path.write_bytes(data)
            p = rec.prepare_upload(session, path, workdir=seal_dir)
            sources[p.meta["id"]] = data
            prepared.append(p)

        answered = threading.Semaphore(0)
        sending: set[int] = set()
        lock = threading.Lock()

        def slow(i: int) -> Callable[[int], None]:
            # Slow bodies (a pause per 64 KiB read), so that uploads are in flight on
            # both replicas when one dies.
            def pause(_n: int) -> None:
                with lock:
                    sending.add(i)
                time.sleep(0.1)

            return pause

        def one(i: int) -> Outcome:
            out = Outcome(i)
            with HygieiaClient(proxy.url, token=session.token, timeout=120) as client:
                try:
                    out.record_id = rec.upload(client, prepared[i], progress=slow(i)).id
                except ApiError as exc:
                    out.error = f"{exc.status} {exc.code}"
                finally:
                    with lock:
                        sending.discard(i)
                    answered.release()
                if out.record_id is not None and i % 5 == 4:
                    try:
                        client.delete_record(out.record_id)
                        out.deleted = True
                    except ApiError:
                        out.deleted = False
            return out

        with ThreadPoolExecutor(WORKERS) as pool:
            futures = [pool.submit(one, i) for i in range(UPLOADS)]
            for _ in range(KILL_AFTER):
                answered.acquire()
            deadline = time.monotonic() + 60
            while len(sending) < IN_FLIGHT and time.monotonic() < deadline:
                time.sleep(0.01)
            proc_a.kill()  # SIGKILL: no shutdown, no cleanup
            proc_a.wait()
            outcomes = [f.result() for f in futures]

        created = {o.record_id for o in outcomes if o.record_id}
        gone = {o.record_id for o in outcomes if o.deleted}
        failed = [o for o in outcomes if o.error]
        served = proxy.served()
        uploads_by = {u for m, p, s, u in served if m == "POST" and p.endswith("/records")}
        assert a in uploads_by and b in uploads_by, "both replicas should have taken uploads"
        # The kill cut uploads off (it came mid-way), and those after it went to the
        # survivor: most uploads were acknowledged.
        assert failed, "no upload was in flight on the killed replica"
        assert len(created) >= UPLOADS - WORKERS - 5, [o.error for o in failed]
        assert gone, "some deletes should have been answered"

        # --- every acknowledged record opens byte-identical through the survivor --
        listed: set[str] = set()
        cursor = None
        while True:
            page = api.list_records(cursor=cursor)
            listed |= {item.id for item in page.items}
            cursor = page.next_cursor
            if not cursor:
                break
        assert created - gone <= listed
        assert not gone & listed
        assert listed <= set(sources)
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        for record_id in listed:  # acknowledged or not: a listed record is whole
            target = out_dir / record_id
            rec.get(api, session, record_id, target)
            assert target.read_bytes() == sources[record_id], record_id

        # --- reconcile: no orphan pins, no row without its pin --------------------
        child = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
        child.update({f"HYGIEIA_{k}": v for k, v in env.items()})
        child["HYGIEIA_DATA_DIR"] = str(tmp_path / "b")
        done = subprocess.run(
            [sys.executable, "-m", "hygieia", "admin", "reconcile", "--grace", "0"],
            env=child,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

        engine = create_engine(pg_url)
        try:
            with engine.connect() as conn:
                rows = {normalize_cid(c) for c in conn.scalars(select(Record.cid))}
                ids = set(conn.scalars(select(Record.id)))
                pending = conn.scalar(select(func.count()).select_from(PendingPin))
                copies = conn.execute(select(RecordCopy.record_id, RecordCopy.state)).all()
        finally:
            engine.dispose()
        assert ids == listed
        assert pending == 0
        assert {r for r, _s in copies} == ids
        assert {s for _r, s in copies} == {"ok"}
        assert _node_pins(own_ipfs) == rows
        # The survivor still answers (nothing it needed died with the other).
        assert api.me().email == EMAIL
