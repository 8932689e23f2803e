"""Several copies: what a second copy costs at ingest, and how fast scrub re-hashes.

* ``ingest_two_copies_vs_one``: HTTP upload of the same-sized sealed record (a fresh one
  per repeat, so every put is cold) to a ``hygieia serve`` pinning on two js-ipfs nodes
  with ``HYGIEIA_MIN_COPIES=2`` (the 201 waits for both), against one pinning on a
  single js-ipfs node (min 1). The put builds the DAG once and streams the same
  blocks into both nodes at once, so the ratio is what the second node's import
  costs (on this machine both daemons share the server's cores).
* ``scrub_mb_s``: ``copies.check_copy`` (read every block of a record from the embedded
  store, hash it against its CID, walk the DAG) against ``sha256sum`` of the same
  block files; both read from the page cache after a first pass.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.common import Config, Figure, paired_ratios, random_file, throughput_ratio
from bench.servers import hygieia_server, new_account
from hygieia.client import records
from hygieia.services.copies import check_copy
from hygieia.storage import LocalBlobStore

INGEST_TARGET = 0.7
SCRUB_TARGET = 0.5


def run(cfg: Config, only: set[str]) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="hyg-bench-copies-", dir=cfg.workdir))
    try:
        figures = []
        if "ingest_two_copies_vs_one" in only:
            figures.append(_ingest(cfg, work / "ingest"))
        if "scrub_mb_s" in only:
            figures.append(_scrub(cfg, work / "scrub"))
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ingest(cfg: Config, base: Path) -> Figure:
    from tests.support.ipfs_server import running_ipfs

    base.mkdir()
    with ExitStack() as stack:
        nodes = [stack.enter_context(running_ipfs(base / f"node{i}")) for i in range(3)]
        two = stack.enter_context(
            hygieia_server(
                base / "two",
                ipfs_api=f"{nodes[0]},{nodes[1]}",
                min_copies="2",
                ipfs_timeout="600",
                replicate_interval_seconds="0",
                scrub_interval="0",
            )
        )
        one = stack.enter_context(
            hygieia_server(
                base / "one",
                ipfs_api=nodes[2],
                ipfs_timeout="600",
                replicate_interval_seconds="0",
                scrub_interval="0",
            )
        )
        clients = {}
        sessions = {}
        for name, server in (("two", two), ("one", one)):
            api, sessions[name] = new_account(server.url, f"copies-{name}@example.org")
            stack.callback(api.close)
            clients[name] = api
        uploads: dict[str, list[records.PreparedUpload]] = {name: [] for name in clients}
        for i in range(cfg.repeats + 1):
            for name in clients:
                plain = random_file(base / f"plain-{name}{i}", cfg.ingest_bytes)
                prepared = records.prepare_upload(sessions[name], plain, workdir=base)
                uploads[name].append(prepared)
                plain.unlink()
        size = uploads["one"][0].sealed.size

        def ingest(name: str, i: int) -> float:
            start = time.perf_counter()
            item = records.upload(clients[name], uploads[name][i])
            elapsed = time.perf_counter() - start
            if item.copies is not None and item.copies.ok < (2 if name == "two" else 1):
                raise RuntimeError("acknowledged with fewer copies than asked")
            return elapsed

        last = cfg.repeats  # warm-up round, not counted
        ingest("two", last)
        ingest("one", last)
        runs = paired_ratios(lambda i: ingest("two", i), lambda i: ingest("one", i), cfg.repeats)
    return throughput_ratio(
        "ingest_two_copies_vs_one",
        runs,
        size=size,
        low=INGEST_TARGET,
        names=("two_copies", "one_copy"),
    )


def _scrub(cfg: Config, base: Path) -> Figure:
    base.mkdir()
    store = LocalBlobStore(base / "blocks")
    plain = random_file(base / "plain", cfg.ingest_bytes)
    with open(plain, "rb") as fh:
        cid = store.put(fh)
    store.pin(cid)
    plain.unlink()
    files = sorted(str(p) for p in (base / "blocks" / "blocks").glob("*/*"))
    size = sum(Path(f).stat().st_size for f in files)

    def scrub(_: int) -> float:
        start = time.perf_counter()
        health = check_copy(store, cid)
        elapsed = time.perf_counter() - start
        if not health.whole:
            raise RuntimeError("scrub found damage in a fresh store")
        return elapsed

    def sha256sum(_: int) -> float:
        start = time.perf_counter()
        subprocess.run(
            ["xargs", "-0", "sha256sum"],
            input="\0".join(files).encode(),
            stdout=subprocess.DEVNULL,
            check=True,
        )
        return time.perf_counter() - start

    scrub(0)  # warm the page cache for both sides
    sha256sum(0)
    runs = paired_ratios(scrub, sha256sum, cfg.repeats)
    return throughput_ratio(
        "scrub_mb_s", runs, size=size, low=SCRUB_TARGET, names=("scrub", "sha256sum")
    )
