"""``server_rss_mb`` and ``client_rss_mb``: peak RSS while a big record goes up and back.

A real ``hygieia serve`` (local store, SQLite) and the real CLI: ``python -m hygieia
put FILE`` then ``python -m hygieia get ID -o OUT``, each a child process whose peak RSS
is its ``VmHWM``, polled every few milliseconds until it exits (the whole life of the
process: start-up, the password KDF, the transfer). Not ``os.wait4``'s ``ru_maxrss``:
``subprocess`` starts children with ``vfork``, so a child's ``ru_maxrss`` includes the
RSS of this (large) benchmark process at the moment of ``exec``. The server's is
``VmHWM`` from ``/proc/<pid>/status``, reset (``clear_refs``) just before the upload,
so it is the peak *while the record goes up and comes back*; its lifetime peak is
reported beside it. Baselines in the same run: the server's RSS after start-up and a
login, and the CLI's peak for ``hygieia whoami`` (imports and one request, no KDF).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import MB, Config, Figure, bounded, proc_status_kb, random_file
from bench.servers import PASSWORD, hygieia_server

LIMIT_MB = 120
EMAIL = "memory@example.org"


def _peak_while_running(proc: subprocess.Popen[bytes]) -> float:
    """The child's ``VmHWM`` (monotonic) last seen before it exited, in MB."""
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(OSError, KeyError):  # exiting: the mm may be gone
            peak = max(peak, proc_status_kb(proc.pid, "VmHWM"))
        time.sleep(0.005)
    return peak / 1024


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, float, float]:
    """Run ``python -m hygieia ARGS``; (stdout, peak RSS in MB, seconds)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hygieia", *args],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        peak = _peak_while_running(proc)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode()
        if proc.returncode != 0:
            raise RuntimeError(f"hygieia {args[0]} failed: {err.read().decode()[-2000:]}")
    return stdout, peak, elapsed


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _reset_peak(pid: int) -> bool:
    """Reset the process's ``VmHWM`` to its current RSS (Linux ≥ 4.0, own processes)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run(cfg: Config, only: set[str]) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="hyg-bench-memory-", dir=cfg.workdir))
    try:
        return _run(cfg, work, only)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(cfg: Config, work: Path, only: set[str]) -> list[Figure]:
    size = cfg.memory_bytes
    plain = random_file(work / "big.bin", size)
    with hygieia_server(work / "server") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
        env.update(
            HYGIEIA_HOME=str(work / "home"),
            HYGIEIA_PASSWORD=PASSWORD,
            HYGIEIA_SERVER=server.url,
        )
        _cli(["signup", EMAIL], env, work)
        _, client_idle, _ = _cli(["whoami"], env, work)
        server_idle = proc_status_kb(server.pid, "VmRSS") / 1024
        server_start_peak = proc_status_kb(server.pid, "VmHWM") / 1024
        reset = _reset_peak(server.pid)
        stdout, put_rss, put_s = _cli(["put", str(plain)], env, work)
        record_id = stdout.split()[0]
        out = work / "back.bin"
        _, get_rss, get_s = _cli(["get", record_id, "-o", str(out)], env, work)
        server_peak = proc_status_kb(server.pid, "VmHWM") / 1024
        server_lifetime = max(server_peak, server_start_peak)
        if not reset:
            server_peak = server_lifetime
    if out.stat().st_size != size or _sha256(out) != _sha256(plain):
        raise RuntimeError("the record came back different")
    transfer = f"{size // MB} MB up {put_s:.0f} s, down {get_s:.0f} s"

    def rss(key: str, peak_mb: float, summary: str, **detail: float | bool) -> Figure:
        info = {"summary": f"{summary}; {transfer}", "bytes": size, **detail}
        return bounded(key, peak_mb, unit="MB", high=LIMIT_MB, detail=info)

    figures = []
    if "server_rss_mb" in only:
        figures.append(
            rss(
                "server_rss_mb",
                server_peak,
                f"idle {server_idle:.0f} MB, lifetime peak {server_lifetime:.0f} MB",
                idle_after_login_mb=round(server_idle, 1),
                lifetime_peak_mb=round(server_lifetime, 1),
                peak_reset_before_upload=reset,
            )
        )
    if "client_rss_mb" in only:
        figures.append(
            rss(
                "client_rss_mb",
                max(put_rss, get_rss),
                f"whoami {client_idle:.0f} MB; put {put_rss:.0f} / get {get_rss:.0f} MB",
                put_mb=round(put_rss, 1),
                get_mb=round(get_rss, 1),
                idle_whoami_mb=round(client_idle, 1),
                put_s=round(put_s, 1),
                get_s=round(get_s, 1),
            )
        )
    return figures
