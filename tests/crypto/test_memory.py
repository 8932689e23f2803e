"""Sealing and opening a record keeps memory flat whatever its size.

Each run happens in a fresh interpreter that reports its own peak RSS; a 64 MiB
record must not need much more than an 8 MiB one (the margins are generous: a
buffering implementation would need hundreds of MiB more).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import hashlib, io, json, os, resource, sys, time
from hygieia import crypto

size, workdir = int(sys.argv[1]), sys.argv[2]
vault_key = crypto.new_vault_key()
identity = crypto.generate_identity("mem@example.org", vault_key)
key = crypto.unlock(identity.locked_secret_key, vault_key)
session_key = crypto.new_session_key()
plain, sealed = os.path.join(workdir, "plain"), os.path.join(workdir, "sealed")
digest = hashlib.sha256()
with open(plain, "wb") as f:
    block = os.urandom(1 << 20)
    for _ in range(size >> 20):
        f.write(block)
        digest.update(block)
t0 = time.perf_counter()
with open(plain, "rb") as src, open(sealed, "wb") as dst:
    for segment in crypto.seal_segments(src, session_key=session_key, signer=key, size=size):
        dst.write(segment)
t1 = time.perf_counter()
check = hashlib.sha256()
with open(sealed, "rb") as src:
    for chunk in crypto.open_segments(src, session_key=session_key,
                                      signer_public_key=identity.public_key):
        check.update(chunk)
t2 = time.perf_counter()
assert check.digest() == digest.digest()
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seal_s": t1 - t0, "open_s": t2 - t1}))
"""


def run(size: int, workdir: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(size), str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def test_memory_is_flat(tmp_path: Path) -> None:
    small_dir, big_dir = tmp_path / "small", tmp_path / "big"
    small_dir.mkdir()
    big_dir.mkdir()
    small = run(8 << 20, small_dir)
    big = run(64 << 20, big_dir)
    print(
        f"peak RSS: 8 MiB record {small['peak_kib'] / 1024:.0f} MiB, "
        f"64 MiB record {big['peak_kib'] / 1024:.0f} MiB; 64 MiB: "
        f"seal {64 / big['seal_s']:.0f} MiB/s, open {64 / big['open_s']:.0f} MiB/s"
    )
    assert big["peak_kib"] < small["peak_kib"] + 24 * 1024
