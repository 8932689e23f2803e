"""``list_p99_ms`` and ``list_vs_bare``: listing a page for a user with 10,000 records.

A real ``hygieia serve`` on SQLite and on PostgreSQL; the 10,000 rows go in directly
through the SQLAlchemy models (realistic sizes: ~1 KB sealed metadata, ~90 B PKESK,
~400 B envelope, real-looking CIDs, one a minute) instead of 10,000 uploads. A separate
load-generating process (``wrk``, or ``python -m bench.loadgen``) keeps N connections
busy on ``GET /api/v1/records?limit=50`` with the user's token; then on the baseline, a
bare FastAPI endpoint (``bench.bare_app``) that returns the same bytes, served the same
way. Rounds alternate between the two; medians of p99 and of the per-round ratio of
requests per second.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import insert

from bench.common import Config, Figure, bounded, median
from bench.loadgen import Load, run_load, tool
from bench.servers import bare_server, hygieia_server, new_account
from hygieia.db.engine import make_engine
from hygieia.db.models import Record
from hygieia.ipfs import CID, RAW
from hygieia.services.records import RecordRow, render_public

P99_LIMIT_MS = 50.0
RATIO_TARGET = 0.5


@contextmanager
def database(kind: str, data_dir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'hygieia.db'}"
        return
    from tests.support.databases import postgres_database

    try:
        with postgres_database() as url:
            yield url
    except BaseException as exc:  # pytest.skip/fail outside pytest
        if type(exc).__name__ in {"Skipped", "Failed"}:
            raise RuntimeError(f"PostgreSQL unavailable: {exc}") from None
        raise


def insert_records(url: str, owner_id: str, count: int) -> None:
    """``count`` rows shaped like real ones, newest one minute ago, one a minute before."""
    engine = make_engine(url)
    rnd = random.Random(1)
    now = dt.datetime.now(dt.UTC)
    try:
        with engine.begin() as conn:
            for start in range(0, count, 1000):
                rows = []
                for i in range(start, min(count, start + 1000)):
                    size = rnd.randint(20_000, 20_000_000)
                    row = RecordRow(
                        id=str(uuid.uuid4()),
                        cid=str(CID.for_block(RAW, os.urandom(32))),
                        size=size,
                        segments=size // (4 * 1024 * 1024) + 1,
                        created_at=now - dt.timedelta(minutes=i + 1),
                        owner_pkesk=os.urandom(rnd.randint(88, 94)),
                        sealed_metadata=os.urandom(rnd.randint(900, 1200)),
                        session_key_envelope=os.urandom(rnd.randint(380, 420)),
                    )
                    rows.append(
                        {"owner_id": owner_id, "listing": render_public(row), **row._asdict()}
                    )
                conn.execute(insert(Record), rows)
    finally:
        engine.dispose()


def run(cfg: Config, only: set[str]) -> list[Figure]:
    figures: list[Figure] = []
    for kind in cfg.databases:
        work = Path(tempfile.mkdtemp(prefix=f"hyg-bench-list-{kind}-", dir=cfg.workdir))
        try:
            figures.extend(_one_database(cfg, work, kind, only))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return figures


def _one_database(cfg: Config, work: Path, kind: str, only: set[str]) -> list[Figure]:
    data_dir = work / "server"
    data_dir.mkdir()
    with (
        database(kind, data_dir) as db_url,
        hygieia_server(data_dir, database_url=db_url) as server,
    ):
        api, session = new_account(server.url, f"list-{kind}@example.org")
        api.close()
        insert_records(db_url, session.account.id, cfg.list_records)
        url = f"{server.url}/api/v1/records?limit={cfg.list_page}"
        headers = {"Authorization": f"Bearer {session.token}"}
        page = httpx.get(url, headers=headers, timeout=30)
        page.raise_for_status()
        body = page.json()
        if len(body["items"]) != cfg.list_page or not body["next_cursor"]:
            raise RuntimeError("the list endpoint did not return a full page")
        payload = work / "page.json"
        payload.write_bytes(page.content)
        with bare_server(payload, work / "bare.log") as bare:
            bare_url = f"{bare.url}/bare"
            # Warm-up: connections, caches, the first queries.
            run_load(url, headers, cfg.connections, 1.0)
            run_load(bare_url, {}, cfg.connections, 1.0)
            ours: list[Load] = []
            base: list[Load] = []
            for i in range(cfg.repeats):
                order = [(ours, url, headers), (base, bare_url, {})]
                for sink, target, hdrs in order if i % 2 == 0 else reversed(order):
                    sink.append(run_load(target, hdrs, cfg.connections, cfg.load_seconds))
    for load in ours + base:
        if load.errors or load.non2xx:
            raise RuntimeError(f"load run had errors: {load}")
    p99s = [x.p99_ms for x in ours]
    ratios = [a.rps / b.rps for a, b in zip(ours, base, strict=True)]
    common = {
        "records": cfg.list_records,
        "page": cfg.list_page,
        "page_bytes": len(page.content),
        "connections": cfg.connections,
        "seconds_per_run": cfg.load_seconds,
        "load_tool": tool(),
        "list_rps": [round(x.rps, 1) for x in ours],
        "bare_rps": [round(x.rps, 1) for x in base],
        "list_p50_ms": [round(x.p50_ms, 1) for x in ours],
        "list_p99_ms": [round(x.p99_ms, 1) for x in ours],
        "bare_p99_ms": [round(x.p99_ms, 1) for x in base],
    }
    list_rps = median([x.rps for x in ours])
    bare_rps = median([x.rps for x in base])
    figures = []
    if "list_p99_ms" in only:
        summary = (
            f"p50 {median([x.p50_ms for x in ours]):.0f} ms, {cfg.connections} conns; "
            f"bare p99 {median([x.p99_ms for x in base]):.0f} ms"
        )
        figures.append(
            bounded(
                "list_p99_ms",
                p99s,
                unit="ms",
                high=P99_LIMIT_MS,
                target_unit="ms",
                variant=kind,
                detail={"summary": summary, **common},
            )
        )
    if "list_vs_bare" in only:
        summary = (
            f"{list_rps:.0f} vs bare {bare_rps:.0f} req/s ({len(page.content) // 1000} KB pages)"
        )
        figures.append(
            bounded(
                "list_vs_bare",
                ratios,
                unit="x",
                low=RATIO_TARGET,
                variant=kind,
                detail={"summary": summary, **common},
            )
        )
    return figures
