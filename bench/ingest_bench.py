"""``ingest_vs_store``: server ingest (HTTP upload → pinned → indexed) ÷ bare ``BlobStore.put``.

For each store, the same sealed records (one fresh record per repeat, so every put is
cold) go once straight into a ``BlobStore.put`` and once through a real ``hygieia
serve`` (multipart upload, framing/size/CID/PKESK checks, put, pin, DB commit). The
local store's baseline writes into its own directory; the IPFS baseline talks to its
own js-ipfs daemon, so neither side ever finds the other's blocks already there.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.common import Config, Figure, paired_ratios, random_file, throughput_ratio
from bench.servers import hygieia_server, new_account
from hygieia.client import records
from hygieia.storage import BlobStore, KuboBlobStore, LocalBlobStore

TARGET = 0.8


def run(cfg: Config, only: set[str]) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="hyg-bench-ingest-", dir=cfg.workdir))
    try:
        figures = [_one_store(cfg, work, "local")]
        figures.append(_one_store(cfg, work, "ipfs"))
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _one_store(cfg: Config, work: Path, kind: str) -> Figure:
    from tests.support.ipfs_server import running_ipfs

    base = work / kind
    base.mkdir()
    with ExitStack() as stack:
        if kind == "ipfs":
            bare_api = stack.enter_context(running_ipfs(base / "bare"))
            server_api = stack.enter_context(running_ipfs(base / "server"))
            bare: BlobStore = stack.enter_context(KuboBlobStore(bare_api, timeout=600))
            server = stack.enter_context(
                hygieia_server(base / "hyg", ipfs_api=server_api, ipfs_timeout="600")
            )
        else:
            bare = LocalBlobStore(base / "bare")
            server = stack.enter_context(hygieia_server(base / "hyg"))
        api, session = new_account(server.url, f"ingest-{kind}@example.org")
        stack.callback(api.close)
        # One fresh record per repeat (+1 to warm up): every put below is cold.
        uploads = []
        for i in range(cfg.repeats + 1):
            plain = random_file(base / f"plain{i}", cfg.ingest_bytes)
            uploads.append(records.prepare_upload(session, plain, workdir=base))
            plain.unlink()
        size = uploads[0].sealed.size

        def put(i: int) -> float:
            sealed = uploads[i].sealed
            start = time.perf_counter()
            with open(sealed.path, "rb") as fh:
                cid = bare.put(fh)
            elapsed = time.perf_counter() - start
            if cid != sealed.cid:
                raise RuntimeError("bare put computed another CID")
            return elapsed

        def ingest(i: int) -> float:
            sealed = uploads[i].sealed
            start = time.perf_counter()
            cid = records.upload(api, uploads[i]).cid
            elapsed = time.perf_counter() - start
            if cid != sealed.cid:
                raise RuntimeError("server stored another CID")
            return elapsed

        # Warm-up round (connections, imports, first writes), not counted.
        last = cfg.repeats
        put(last)
        ingest(last)
        runs = paired_ratios(ingest, put, cfg.repeats)
    return throughput_ratio(
        "ingest_vs_store", runs, size=size, low=TARGET, names=("ingest", "put"), variant=kind
    )
