"""Thin typed client over the HTTP API (httpx). No crypto here: see ``account``/``records``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

API = "/api/v1"


class ApiError(Exception):
    """An error answer from the server (``code`` is the stable machine-readable code)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{detail} ({code})")
        self.status = status
        self.code = code
        self.detail = detail


class ServerUnreachable(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(0, "server_unreachable", detail)


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    try:
        body = resp.json()
        code, detail = str(body["code"]), str(body["detail"])
    except Exception:
        code, detail = "http_error", f"HTTP {resp.status_code}"
    raise ApiError(resp.status_code, code, detail)


class HygieiaClient:
    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._http = httpx.Client(
            base_url=self.server + API,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            headers={"user-agent": "hygieia-cli"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HygieiaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, token: str | None = None) -> dict[str, str]:
        tok = token or self.token
        return {"authorization": f"Bearer {tok}"} if tok else {}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self._headers(), **kw.pop("headers", {})}
        try:
            resp = self._http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.server}: {type(exc).__name__}") from exc
        _raise_for(resp)
        return resp

    @contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[httpx.Response]:
        headers = {**self._headers(), **kw.pop("headers", {})}
        try:
            with self._http.stream(method, path, headers=headers, **kw) as resp:
                if not resp.is_success:
                    resp.read()
                    _raise_for(resp)
                yield resp
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.server}: {type(exc).__name__}") from exc

    def json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.request(method, path, **kw)
        return resp.json() if resp.status_code != 204 else None

    # --- accounts -----------------------------------------------------------------
    def prelogin(self, email: str) -> dict[str, Any]:
        return dict(self.json("GET", "/auth/prelogin", params={"email": email}))

    def signup(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json("POST", "/auth/signup", json=body))

    def login(self, email: str, auth_key_b64: str) -> dict[str, Any]:
        return dict(
            self.json("POST", "/auth/login", json={"email": email, "auth_key": auth_key_b64})
        )

    def logout(self) -> None:
        self.request("POST", "/auth/logout")

    def me(self) -> dict[str, Any]:
        return dict(self.json("GET", "/me"))

    def change_password(self, body: dict[str, Any]) -> None:
        self.request("POST", "/auth/password", json=body)

    def recover(self, email: str, recovery_auth_b64: str) -> dict[str, Any]:
        return dict(
            self.json(
                "POST", "/auth/recover", json={"email": email, "recovery_auth": recovery_auth_b64}
            )
        )

    def recover_complete(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json("POST", "/auth/recover/complete", json=body))

    def user_key(self, email: str) -> dict[str, Any]:
        """Another account's public key (a stable stand-in if the email has none)."""
        return dict(self.json("POST", "/users/key", json={"email": email}))

    def config(self) -> dict[str, Any]:
        return dict(self.json("GET", "/config"))
