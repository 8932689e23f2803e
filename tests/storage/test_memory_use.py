"""Streaming: putting and getting ~100 MB keeps the process's memory flat."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from hygieia.storage import LocalBlobStore

    MiB = 1024 * 1024
    TOTAL = 100 * MiB

    def rss_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):  # peak resident set size
                    return int(line.split()[1]) / 1024

    def stream():
        piece = bytes(range(256)) * 256  # 64 KiB
        for i in range(TOTAL // len(piece)):
            yield bytes([i % 256]) + piece[1:]

    store = LocalBlobStore(Path(sys.argv[1]))
    store.put([b"warm-up"])
    list(store.get(store.put([b"warm-up" * 100000])))
    before = rss_mib()
    cid = store.put(stream())
    after_put = rss_mib()
    size = sum(len(c) for c in store.get(cid))
    after_get = rss_mib()
    print(json.dumps({"size": size, "before": before, "put": after_put, "get": after_get}))
    """
)


def test_local_put_get_100mb_keeps_memory_flat(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    m = json.loads(result.stdout)
    assert m["size"] == 100 * 1024 * 1024
    # A whole-blob read would add ≥ 100 MiB; streaming needs a few 1 MiB buffers.
    assert m["put"] - m["before"] < 30, m
    assert m["get"] - m["before"] < 30, m
