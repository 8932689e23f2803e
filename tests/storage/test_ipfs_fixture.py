"""The js-ipfs fixture skips locally but fails in CI when the server can't run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ipfs_server


@contextlib.contextmanager
def broken(tmp_dir: Path) -> Iterator[str]:
    raise ipfs_server.IpfsServerError("npm install failed")
    yield ""  # pragma: no cover


def test_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipfs_server, "running_ipfs", broken)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        next(ipfs_server.ipfs_api_fixture())


def test_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipfs_server, "running_ipfs", broken)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        next(ipfs_server.ipfs_api_fixture())


def test_cache_lives_outside_the_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYGIEIA_TEST_CACHE", str(tmp_path))
    assert ipfs_server.install_dir().parent == tmp_path / "js-ipfs"
    monkeypatch.delenv("HYGIEIA_TEST_CACHE")
    assert ipfs_server.cache_root() == Path.home() / ".cache" / "hygieia-test" / "js-ipfs"
