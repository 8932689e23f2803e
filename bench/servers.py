"""Real servers for the benchmarks: ``hygieia serve`` and the bare FastAPI app, as
subprocesses (so their RSS and CPU are their own), plus a signed-up account."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port, stop, wait_healthy

from hygieia.client import account
from hygieia.client.sdk import HygieiaClient

PASSWORD = "correct horse battery staple bench"


@dataclass
class Server:
    url: str
    pid: int
    log: Path


@contextmanager
def _spawn(argv: list[str], env: dict[str, str], log: Path, health_url: str) -> Iterator[int]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_healthy(health_url, proc=proc)
        yield proc.pid
    finally:
        stop(proc)


@contextmanager
def hygieia_server(
    data_dir: Path, *, command: list[str] | None = None, **settings: str
) -> Iterator[Server]:
    """``python -m hygieia serve`` on a free port; ``settings`` are ``HYGIEIA_*`` (no prefix).

    ``command`` replaces ``python -m hygieia serve`` (to try a patched server while
    profiling); it must honour the same environment.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
    env.update(
        {
            "HYGIEIA_HOST": "127.0.0.1",
            "HYGIEIA_PORT": str(port),
            "HYGIEIA_DATA_DIR": str(data_dir),
            "HYGIEIA_LOG_LEVEL": "warning",
            # The benchmarks sign up many times from one address.
            "HYGIEIA_LOGIN_MAX_FAILURES": "1000",
        }
    )
    env.update({f"HYGIEIA_{k.upper()}": v for k, v in settings.items()})
    url = f"http://127.0.0.1:{port}"
    log = data_dir / "server.log"
    argv = command or [sys.executable, "-m", "hygieia", "serve"]
    with _spawn(argv, env, log, url) as pid:
        yield Server(url=url, pid=pid, log=log)


@contextmanager
def bare_server(payload: Path, log: Path) -> Iterator[Server]:
    """The baseline app (``bench.bare_app``) served exactly as ``hygieia serve`` serves."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "bench.bare_app", "--port", str(port), "--payload", str(payload)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with _spawn(argv, env, log, url) as pid:
        yield Server(url=url, pid=pid, log=log)


def new_account(url: str, email: str) -> tuple[HygieiaClient, account.LoggedIn]:
    """Sign up and log in through the SDK (client-side KDF, keys and wrapping)."""
    api = HygieiaClient(url, timeout=600.0)
    account.signup(api, email, PASSWORD)
    return api, account.login(api, email, PASSWORD)
