"""Debian's nginx as the reverse proxy in front of several ``hygieia serve`` replicas.

:func:`running_nginx` writes a config into a temporary prefix (its own pid file, error
and access logs, temp paths: nothing of the system's nginx is touched), starts
``nginx`` in the foreground (``daemon off``) on a free loopback port and yields its
base URL. The access log names the upstream that answered each request
(``$upstream_addr``), so a test can tell which replica served what.

The config is the one docs/deploy.md ("Several API replicas") describes, but for one
line: an edge proxy should *replace* ``X-Forwarded-For`` with ``$remote_addr``; here it
appends to it (``$proxy_add_x_forwarded_for``) so that a test can play clients at
several addresses from one machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

_CONFIG = """\
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    log_format upstream '$request_method $uri $status $upstream_addr';
    access_log {prefix}/access.log upstream;

    upstream hygieia {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;            # Hygieia enforces HYGIEIA_MAX_RECORD_BYTES
        proxy_request_buffering off;       # stream uploads through, don't spool them
        proxy_buffering off;               # and downloads
        proxy_http_version 1.1;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        # Retry another replica only where no request reached the first one's app
        # or the request is idempotent: nginx never re-sends a POST (non_idempotent
        # is not given), so an upload cut off by a dying replica gets an error.
        proxy_next_upstream error timeout;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        location / {{ proxy_pass http://hygieia; }}
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    url: str
    prefix: Path

    def served(self) -> list[tuple[str, str, int, str]]:
        """``(method, path, status, upstream)`` of every request logged so far
        (``upstream`` may list several addresses when nginx tried more than one)."""
        log = self.prefix / "access.log"
        rows = []
        for line in log.read_text().splitlines() if log.exists() else []:
            method, path, status, upstream = line.split(" ", 3)
            rows.append((method, path, int(status), upstream))
        return rows


@contextlib.contextmanager
def running_nginx(prefix: Path, upstreams: Sequence[str]) -> Iterator[Nginx]:
    """nginx on a free loopback port proxying to ``upstreams`` (``host:port`` each).

    Without nginx installed this skips locally and fails with ``CI=true`` (.ci/run
    installs Debian's package), like the other outside parts of the suite.
    """
    if not os.access(NGINX, os.X_OK):
        why = "nginx is not installed (Debian package nginx)"
        if os.environ.get("CI") == "true":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=30s;" for u in upstreams)
    # As root, nginx's workers would switch to `nobody` and lose the temp directories.
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(_CONFIG.format(user=user, prefix=prefix, port=port, servers=servers))
    # -e: the error log before the config is read (the default is /var/log/nginx).
    cmd = [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx refused its config: {check.stderr}")
    with (prefix / "stderr.log").open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(prefix / 'error.log').read_text()[-2000:]}")
            try:
                httpx.get(f"{url}/api/v1/health", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield Nginx(url=url, prefix=prefix)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
