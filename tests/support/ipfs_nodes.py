"""Restartable js-ipfs nodes for the replication tests: stop one, start it again.

``running_ipfs`` (tests/support/ipfs_server.py) throws its repo away with the daemon;
a test of "the copy appears once the node is back" needs the same node back, on the
same ports with the same repo. These nodes listen for peers on loopback (a pinning
service fetches from them over bitswap) and stay off every network (no bootstrap, no
discovery).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support import ipfs_server as jsipfs


class IpfsNode:
    """A js-ipfs daemon with a repo under ``home``; :meth:`start` / :meth:`stop` at will."""

    def __init__(self, home: Path) -> None:
        jsipfs.ensure_installed()
        self.home = home
        self.repo = home / "repo"
        jsipfs._jsipfs(self.repo, "init", "--profile", "test", "--empty-repo")
        self.api_port = jsipfs._free_port()
        jsipfs._configure(
            self.repo, self.api_port, jsipfs._free_port(), swarm_port=jsipfs._free_port()
        )
        self.api = f"http://127.0.0.1:{self.api_port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._proc is not None:
            return
        log_path = self.home / "daemon.log"
        with log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(jsipfs.node_binary()),
                    str(jsipfs.ipfs_cli()),
                    "daemon",
                    "--offline",
                ],
                env={**os.environ, "IPFS_PATH": str(self.repo)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            jsipfs._wait_ready(self.api, self._proc, time.monotonic() + jsipfs.START_TIMEOUT)
        except jsipfs.IpfsServerError as exc:
            tail = log_path.read_text(errors="replace")[-2000:]
            self.stop()
            raise jsipfs.IpfsServerError(f"{exc}\n--- daemon log ---\n{tail}") from exc

    def stop(self) -> None:
        if self._proc is not None:
            jsipfs._kill_group(self._proc)
            self._proc = None
            # A stopped js-ipfs leaves its repo lock behind (SIGTERM is not waited for).
            lock = self.repo / "repo.lock"
            if lock.is_dir():
                shutil.rmtree(lock, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()

    def rpc(self, command: str, **params: str) -> httpx.Response:
        response = httpx.post(f"{self.api}/api/v0/{command}", params=params, timeout=60)
        response.raise_for_status()
        return response


@contextlib.contextmanager
def ipfs_nodes(tmp_dir: Path, count: int) -> Iterator[list[IpfsNode]]:
    """``count`` started nodes, stopped at the end."""
    nodes: list[IpfsNode] = []
    try:
        for i in range(count):
            home = tmp_dir / f"node{i}"
            home.mkdir()
            node = IpfsNode(home)
            nodes.append(node)
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
