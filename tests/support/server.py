"""Real servers for tests: a ``hygieia serve`` subprocess, or uvicorn in a thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from tests.support.kdf import SERVER_SETTINGS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(
    base_url: str,
    timeout: float = 60.0,
    proc: subprocess.Popen[bytes] | None = None,
    host: str | None = None,
) -> None:
    """Wait for ``/api/v1/health`` to answer 200 (asked for ``host`` if given)."""
    headers = {"host": host} if host else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            resp = httpx.get(f"{base_url}/api/v1/health", headers=headers, timeout=2)
            if resp.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


@contextmanager
def running_server(data_dir: Path, log_path: Path | None = None, /, **env: str) -> Iterator[str]:
    """Start ``python -m hygieia serve`` on a free port; yield its base URL."""
    with server_process(data_dir, log_path, **env) as (url, _proc):
        yield url


@contextmanager
def server_process(
    data_dir: Path, log_path: Path | None = None, /, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like :func:`running_server`, yielding ``(base_url, process)``.

    ``env`` adds ``HYGIEIA_*`` variables (without the prefix, e.g. ``DATABASE_URL=...``);
    the KDF minimum is the test suite's (tests/support/kdf.py) unless ``env`` sets it.
    The server's stdout/stderr go to ``log_path`` (default ``data_dir/server.log``).
    """
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or data_dir / "server.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
    child_env.update(
        {
            "HYGIEIA_HOST": "127.0.0.1",
            "HYGIEIA_PORT": str(port),
            "HYGIEIA_DATA_DIR": str(data_dir),
            "HYGIEIA_LOG_LEVEL": "debug",
        }
    )
    child_env.update({f"HYGIEIA_{k}": v for k, v in SERVER_SETTINGS.items()})
    child_env.update({f"HYGIEIA_{k.upper()}": v for k, v in env.items()})
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hygieia", "serve"],
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc=proc)
        yield base, proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def threaded_server(app: object, *, host: str | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread (real HTTP, same process); ``host``
    is a name the app answers to, for an app that refuses ``127.0.0.1``."""
    port = free_port()
    # proxy_headers off, as in `hygieia serve`: the app alone decides whom to believe
    # about X-Forwarded-For (HYGIEIA_TRUSTED_PROXIES).
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, host=host)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
