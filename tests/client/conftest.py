"""CLI fixtures: a ``hygieia serve`` subprocess per test, on each database and store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.server import running_server


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
