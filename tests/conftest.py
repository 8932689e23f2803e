"""Shared fixtures: both databases, the IPFS test nodes, no stray gpg-agents."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import MigratedTemplates, database
from tests.support.gpg import stop_gpg_agents
from tests.support.helia_node import HeliaNode, helia_fixture
from tests.support.ipfs_server import ipfs_api_fixture
from tests.support.kdf import CLIENT_ENV

DB_KINDS = ["sqlite", "postgres"]

# The SDK used in this process accepts the test suite's cheap KDF (tests/support/kdf.py);
# tests of the strict default pass ``floor=`` explicitly.
os.environ.update(CLIENT_ENV)


@pytest.fixture(scope="session")
def db_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplates]:
    templates = MigratedTemplates(tmp_path_factory.mktemp("db-templates"))
    yield templates
    templates.close()


@pytest.fixture(params=DB_KINDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, db_templates: MigratedTemplates
) -> Iterator[str]:
    """A fresh database URL on each backend, already at the schema head."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    with db_templates.database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=DB_KINDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL (no schema) on each backend, for migration tests."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def ipfs_api() -> Iterator[str]:
    """API URL of an offline js-ipfs daemon (skips locally, fails in CI, if it can't run)."""
    yield from ipfs_api_fixture()


@pytest.fixture(scope="session")
def helia_node() -> Iterator[HeliaNode]:
    """A Helia node with a trustless gateway, shared by the session (skips locally, fails
    in CI, if it can't run). Content-addressed, so tests don't collide; a test that
    deletes blocks or needs the node to itself starts its own with ``running_helia``."""
    yield from helia_fixture()


@pytest.fixture(autouse=True)
def _no_stray_gpg_agents() -> Iterator[None]:
    """Tests that run stock gpg leave no gpg-agent behind."""
    yield
    stop_gpg_agents()
