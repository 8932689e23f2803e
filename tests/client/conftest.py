from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import running_server


@dataclass
class Cli:
    server: str
    home: Path
    data_dir: Path
    store_env: dict[str, str] | None = None

    def run(
        self, *args: str, password: str | None = None, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        child = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
        child.update({"HYGIEIA_HOME": str(self.home), "HYGIEIA_SERVER": self.server})
        if password is not None:
            child["HYGIEIA_PASSWORD"] = password
        child.update(env)
        proc = subprocess.run(
            [sys.executable, "-m", "hygieia", *args],
            env=child,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"hygieia {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Iterator[Cli]:
    data_dir = tmp_path / "server"
    with running_server(data_dir, DATABASE_URL=db_url) as url:
        yield Cli(server=url, home=tmp_path / "home", data_dir=data_dir)


@pytest.fixture(params=["local", pytest.param("kubo", marks=pytest.mark.ipfs)])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Server settings for each blob store: the embedded one and the real IPFS server."""
    if request.param == "local":
        return {"STORE": "local"}
    return {"STORE": "kubo", "IPFS_API": request.getfixturevalue("ipfs_api")}


@pytest.fixture
def store_cli(db_url: str, store_env: dict[str, str], tmp_path: Path) -> Iterator[Cli]:
    data_dir = tmp_path / "server"
    with running_server(data_dir, DATABASE_URL=db_url, **store_env) as url:
        yield Cli(server=url, home=tmp_path / "home", data_dir=data_dir, store_env=store_env)
