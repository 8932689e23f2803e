"""The page may connect to the IPFS gateways of ``HYGIEIA_GATEWAY_ORIGINS`` and nothing
else (issue 10, web offline mode): the CSP's ``connect-src`` lists exactly them besides
``'self'`` (never ``*``), every other directive stays as it was, ``GET /config`` tells
the page the list, and the service worker may control the whole origin."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from hygieia.api.middleware import CSP
from hygieia.config import DEFAULT_GATEWAY_ORIGINS, Settings
from tests.support.live import LiveApp, live_app


def _directives(csp: str) -> dict[str, str]:
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in csp.split("; ")}


def test_default_gateways_in_connect_src_and_config(live: LiveApp) -> None:
    resp = httpx.get(live.url + "/", timeout=10)
    got = _directives(resp.headers["content-security-policy"])
    assert got["connect-src"] == " ".join(["'self'", *DEFAULT_GATEWAY_ORIGINS])
    assert got["connect-src"] == (
        "'self' https://trustless-gateway.link https://ipfs.io https://dweb.link "
        "http://127.0.0.1:* http://localhost:*"
    )
    assert {k: v for k, v in got.items() if k != "connect-src"} == {
        k: v for k, v in _directives(CSP).items() if k != "connect-src"
    }
    api = httpx.get(live.url + "/api/v1/config", timeout=10)
    assert api.json()["gateway_origins"] == list(DEFAULT_GATEWAY_ORIGINS)
    assert api.headers["content-security-policy"] == resp.headers["content-security-policy"]


def test_configured_gateways_replace_the_defaults(tmp_path: Path, db_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        store="memory",
        gateway_origins="https://gw.example.org, http://[::1]:8080",  # type: ignore[arg-type]
    )
    with live_app(settings) as live:
        csp = httpx.get(live.url + "/", timeout=10).headers["content-security-policy"]
        config = httpx.get(live.url + "/api/v1/config", timeout=10).json()
    assert _directives(csp)["connect-src"] == "'self' https://gw.example.org http://[::1]:8080"
    assert config["gateway_origins"] == ["https://gw.example.org", "http://[::1]:8080"]


@pytest.mark.parametrize(
    "bad",
    [
        *("*", "https://*", "https://gw.example.org/ipfs", "gw.example.org"),
        *("https://a.org; x", "'none'", "data:"),
    ],
)
def test_gateway_origins_must_be_origins(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, gateway_origins=bad)  # type: ignore[arg-type]


def test_service_worker_may_control_the_app(live: LiveApp) -> None:
    resp = httpx.get(live.url + "/app/sw.js", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["service-worker-allowed"] == "/"
    assert "service-worker-allowed" not in httpx.get(live.url + "/", timeout=10).headers
