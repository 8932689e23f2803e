"""The access log: one line per request, and never an e-mail address or a query string."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from tests.support.live import LiveApp

ADDRESS = "logged.person@example.org"


def test_access_log_names_routes_not_addresses(
    live: LiveApp, caplog: pytest.LogCaptureFixture
) -> None:
    api = f"{live.url}/api/v1"
    with caplog.at_level(logging.INFO, logger="hygieia.access"):
        assert httpx.get(f"{api}/auth/prelogin", params={"email": ADDRESS}).status_code == 200
        assert httpx.get(f"{api}/records/{ADDRESS}").status_code == 401  # routed, refused
        assert httpx.get(f"{api}/nope/{ADDRESS}").status_code == 404  # matches no route
        # Refused by the body limit, before routing.
        big = httpx.post(
            f"{api}/users/{ADDRESS}/key", content=b"x" * (live.settings.max_json_bytes + 1)
        )
        assert big.status_code == 413
        # A line is written once the answer has gone out: the last may be on its way.
        deadline = time.monotonic() + 10
        while len(lines := access_lines(caplog)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    got = sorted(line.rsplit(" ", 1)[0] for line in lines)  # without the duration
    assert got == [
        "GET /api/v1/auth/prelogin 200",
        "GET /api/v1/nope/{redacted} 404",
        "GET /api/v1/records/{record_id} 401",
        "POST /api/v1/users/{redacted}/key 413",
    ]
    assert ADDRESS not in caplog.text and "logged.person" not in caplog.text


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hygieia.access"]
