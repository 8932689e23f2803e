"""Closed-loop HTTP load from a separate process: ``wrk`` when installed, else Python.

``run_load(url, headers, connections, seconds)`` returns requests/s and latency
percentiles. ``wrk`` (C, Debian package ``wrk``) is preferred because it needs far
less CPU than the server it loads, which matters on a 2-core machine. The fallback
(``python -m bench.loadgen``) is asyncio over raw keep-alive HTTP/1.1 connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\\"requests\\": %d, \\"seconds\\": %.6f, \\"errors\\": %d, \\"non2xx\\": %d, " ..
    "\\"p50_ms\\": %.3f, \\"p99_ms\\": %.3f, \\"mean_ms\\": %.3f}\\n",
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000))
end
"""


@dataclass
class Load:
    requests: int
    seconds: float
    errors: int
    non2xx: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    tool: str = "wrk"

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def run_load(url: str, headers: dict[str, str], connections: int, seconds: float) -> Load:
    if tool() == "wrk":
        return _wrk(url, headers, connections, seconds)
    argv = [sys.executable, "-m", "bench.loadgen", url, "-c", str(connections)]
    argv += ["-d", str(seconds)]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    proc = subprocess.run(argv, capture_output=True, check=True, timeout=seconds + 60)
    return Load(**json.loads(proc.stdout))


def _wrk(url: str, headers: dict[str, str], connections: int, seconds: float) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
        argv += ["-s", script.name]
        for k, v in headers.items():
            argv += ["-H", f"{k}: {v}"]
        proc = subprocess.run(
            [*argv, url], capture_output=True, check=True, timeout=seconds + 60, text=True
        )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH "))
    return Load(**json.loads(line.removeprefix("BENCH ")))


# --- the Python fallback, run as its own process ---------------------------------------
async def _worker(
    host: str, port: int, request: bytes, until: float, latencies: list[float], bad: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not status_line.startswith(b"HTTP/1.1 2"):
                bad.append(1)
    finally:
        writer.close()


async def _python_load(url: str, headers: list[str], connections: int, seconds: float) -> Load:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", *headers, "", ""]
    request = "\r\n".join(lines).encode()
    latencies: list[float] = []
    bad: list[int] = []
    start = time.perf_counter()
    until = start + seconds
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    await asyncio.gather(
        *(_worker(host, port, request, until, latencies, bad) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return Load(
        requests=len(latencies),
        seconds=elapsed,
        errors=0,
        non2xx=len(bad),
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        mean_ms=sum(latencies) / len(latencies) * 1000,
        tool="python",
    )


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen")
    p.add_argument("url")
    p.add_argument("-c", "--connections", type=int, default=10)
    p.add_argument("-d", "--duration", type=float, default=10.0)
    p.add_argument("-H", "--header", action="append", default=[])
    args = p.parse_args()
    load = asyncio.run(_python_load(args.url, args.header, args.connections, args.duration))
    print(json.dumps(asdict(load)))


if __name__ == "__main__":
    main()
