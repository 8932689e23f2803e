"""``offline_vs_online``: ``hygieia offline get`` from a trustless gateway ÷ ``hygieia get``.

One sealed record (100 MB, 20 with ``--quick``) goes up through a real ``hygieia serve``
on the js-ipfs store; the Helia test node (``tests/support/helia_node.py``) pins it over
bitswap and serves it as a trustless gateway. Then, alternating within each round, the
real CLI fetches the same record twice into a fresh file:

* ours: ``hygieia offline get ID --kit kit.json --gateway <helia>``: every raw block
  fetched, hashed against its CID and the DAG walked, then decrypted and verified;
* baseline: ``hygieia get ID`` through the server (which streams it from js-ipfs).

Both unlock with the same password (Argon2id included on both sides) and both write and
check the same plaintext, so the ratio is the price of doing without the server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.common import Config, Figure, paired_ratios, random_file, throughput_ratio
from bench.servers import PASSWORD, hygieia_server, new_account
from hygieia.client import kit as kits
from hygieia.client import records

TARGET = 0.5
EMAIL = "offline-bench@example.org"


def run(cfg: Config, only: set[str]) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="hyg-bench-offline-", dir=cfg.workdir))
    try:
        return [_offline_vs_online(cfg, work)]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _offline_vs_online(cfg: Config, work: Path) -> Figure:
    from tests.support.helia_node import running_helia
    from tests.support.ipfs_server import running_ipfs

    with ExitStack() as stack:
        ipfs_api = stack.enter_context(running_ipfs(work / "js-ipfs"))
        helia = stack.enter_context(running_helia(work / "helia"))
        server = stack.enter_context(
            hygieia_server(work / "hyg", ipfs_api=ipfs_api, ipfs_timeout="600")
        )
        api, session = new_account(server.url, EMAIL)
        stack.callback(api.close)
        plain = random_file(work / "plain.bin", cfg.ingest_bytes)
        expected = _sha256(plain)
        record = records.upload(api, records.prepare_upload(session, plain, workdir=work))
        kit_path = work / "kit.json"
        kits.write_kit(kit_path, kits.fetch_kit(api))
        helia.connect_to(ipfs_api)
        helia.pin(record.cid, timeout=900)

        env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
        env.update(
            HYGIEIA_HOME=str(work / "home"),
            HYGIEIA_PASSWORD=PASSWORD,
            HYGIEIA_SERVER=server.url,
        )

        def cli(*args: str) -> float:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "hygieia", *args],
                env=env,
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=1800,
            )
            return time.perf_counter() - start

        cli("login", EMAIL)

        def fetch(i: int, *args: str) -> float:
            out = work / f"out-{i}.bin"
            elapsed = cli(*args, "-o", str(out))
            if _sha256(out) != expected:
                raise RuntimeError("the record came back different")
            out.unlink()
            return elapsed

        def offline(i: int) -> float:
            args = ("offline", "get", record.id, "--kit", str(kit_path))
            return fetch(i, *args, "--gateway", helia.gateway_url)

        def online(i: int) -> float:
            return fetch(i, "get", record.id)

        offline(cfg.repeats)  # warm-up (imports, page cache), not counted
        online(cfg.repeats)
        runs = paired_ratios(offline, online, cfg.repeats)
    return throughput_ratio(
        "offline_vs_online",
        runs,
        size=cfg.ingest_bytes,
        low=TARGET,
        names=("offline_get", "get"),
    )
