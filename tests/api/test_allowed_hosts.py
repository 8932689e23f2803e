"""The server answers only to its configured host names (review finding 14).

``HYGIEIA_ALLOWED_HOSTS`` defaults to the bind host plus the loopback names; any other
``Host`` gets 400 ``invalid_host`` in the API's error shape, before a route runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from hygieia.api import create_app
from hygieia.api.hosts import host_allowed, host_name
from hygieia.config import Settings
from hygieia.storage.memory import MemoryBlobStore
from tests.support.live import LiveApp
from tests.support.server import threaded_server


def get(url: str, host: str, path: str = "/api/v1/health") -> httpx.Response:
    return httpx.get(url + path, headers={"host": host}, timeout=10)


def test_default_allows_the_bind_host_and_loopback_names_only(live: LiveApp) -> None:
    """Fails on today's code: any Host header was served."""
    port = live.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert get(live.url, host).status_code == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "[::2]"):
        for path in ("/api/v1/health", "/api/v1/auth/prelogin?email=a@example.org", "/"):
            resp = get(live.url, host, path)
            assert resp.status_code == 400, (host, path)
            assert resp.json() == {
                "code": "invalid_host",
                "detail": "this server does not answer to that host name",
            }
            assert resp.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
def vault_server(tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'h.db'}",
        store="memory",
        allowed_hosts="vault.example.org, *.records.example.org",  # type: ignore[arg-type]
    )
    app = create_app(settings, store=MemoryBlobStore())
    with threaded_server(app, host="vault.example.org") as url:
        yield url


def test_configured_names_replace_the_defaults(vault_server: str) -> None:
    ok = ("vault.example.org", "Vault.Example.org:443", "eu.records.example.org")
    for host in ok:
        assert get(vault_server, host).status_code == 200, host
    for host in ("127.0.0.1", "records.example.org", "evilvault.example.org", "x.example.org"):
        assert get(vault_server, host).json()["code"] == "invalid_host", host


def test_star_allows_any_host(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'h.db'}",
        store="memory",
        allowed_hosts=["*"],
    )
    with threaded_server(create_app(settings, store=MemoryBlobStore())) as url:
        assert get(url, "anything.example").status_code == 200


def test_setting_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYGIEIA_ALLOWED_HOSTS", " vault.example.org ,*.b.example,")
    assert Settings().allowed_hosts == ["vault.example.org", "*.b.example"]
    monkeypatch.delenv("HYGIEIA_ALLOWED_HOSTS")
    assert Settings(host="0.0.0.0").resolved_allowed_hosts() == [
        "0.0.0.0",
        "localhost",
        "127.0.0.1",
        "[::1]",
    ]
    assert Settings(host="::").resolved_allowed_hosts()[0] == "[::]"
    for bad in ("a*.example", "vault.*.example", "*example.org"):
        with pytest.raises(ValidationError):
            Settings(allowed_hosts=[bad])


@pytest.mark.parametrize(
    ("header", "name"),
    [("a.example:8000", "a.example"), ("[::1]:8000", "[::1]"), ("[::1]", "[::1]"), ("A.B", "a.b")],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


def test_wildcards_match_subdomains_only() -> None:
    assert host_allowed("a.b.example", ["*.b.example"])
    assert not host_allowed("b.example", ["*.b.example"])
    assert not host_allowed("ab.example", ["*.b.example"])
