"""Hostile and malformed input: always a clear 4xx with a stable code, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hygieia import crypto
from hygieia.encoding import to_b64
from tests.support.keys import gpg_unlocked_identity
from tests.support.live import LiveApp

SECRET_MARKER = "SuperSecretValue-9f2c"


def signup_body(email: str = "x@example.org") -> dict[str, object]:
    vault_key = crypto.new_vault_key()
    identity = crypto.generate_identity(email, vault_key)
    return {
        "email": email,
        "kdf": crypto.DEFAULT_KDF.to_dict(),
        "salt": to_b64(b"\x01" * 16),
        "recovery_salt": to_b64(b"\x02" * 16),
        "auth_key": to_b64(b"\x03" * 32),
        "public_key": identity.public_key,
        "locked_secret_key": identity.locked_secret_key,
        "wrapped_vault_key": to_b64(b"\x01" + b"\x04" * 60),
        "recovery_wrapped_vault_key": to_b64(b"\x01" + b"\x05" * 60),
        "recovery_verifier": to_b64(b"\x06" * 32),
    }


@pytest.fixture(scope="module")
def good_body() -> dict[str, object]:
    return signup_body()


def post(live: LiveApp, path: str, **kw: object) -> httpx.Response:
    return httpx.post(f"{live.url}/api/v1{path}", timeout=30, **kw)  # type: ignore[arg-type]


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "detail"}
    assert body["code"] == code
    assert SECRET_MARKER not in r.text


@pytest.mark.parametrize(
    "content",
    [b'{"email": "a@b.c", "auth_key": ', b'{"email": "\xff\xfe@x.org"}'],
    ids=["malformed_json", "non_utf8"],
)
def test_unreadable_body(live: LiveApp, content: bytes) -> None:
    r = post(live, "/auth/login", content=content, headers={"content-type": "application/json"})
    assert_error(r, 400, "malformed_body")


def test_wrong_types(live: LiveApp, good_body: dict[str, object]) -> None:
    body = {**good_body, "kdf": {**crypto.DEFAULT_KDF.to_dict(), "m": "65536"}}
    assert_error(post(live, "/auth/signup", json=body), 422, "validation_error")
    assert_error(
        post(live, "/auth/login", json={"email": 5, "auth_key": []}), 422, "validation_error"
    )
    assert_error(post(live, "/auth/login", json=["not", "an", "object"]), 422, "validation_error")


def test_unknown_fields_refused(live: LiveApp) -> None:
    body = {"email": "a@example.org", "auth_key": to_b64(b"\x00" * 32), "password": SECRET_MARKER}
    assert_error(post(live, "/auth/login", json=body), 422, "validation_error")


def test_invalid_base64_not_echoed(live: LiveApp) -> None:
    body = {"email": "a@example.org", "auth_key": SECRET_MARKER + "!!"}
    assert_error(post(live, "/auth/login", json=body), 422, "validation_error")
    body = {"email": "a@example.org", "auth_key": to_b64(b"short")}
    assert_error(post(live, "/auth/login", json=body), 422, "validation_error")


def test_absurd_sizes(live: LiveApp, good_body: dict[str, object]) -> None:
    huge = "A" * (2 * 1024 * 1024)
    assert_error(
        post(live, "/auth/signup", json={**good_body, "public_key": huge}), 413, "payload_too_large"
    )
    assert_error(
        post(
            live,
            "/auth/login",
            json={"email": "a" * 300 + "@x.org", "auth_key": to_b64(b"\0" * 32)},
        ),
        422,
        "validation_error",
    )
    big_key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n" + "A" * 70000
    assert_error(
        post(live, "/auth/signup", json={**good_body, "public_key": big_key}),
        422,
        "validation_error",
    )
    r = httpx.get(f"{live.url}/api/v1/auth/prelogin", params={"email": "x" * 5000})
    assert_error(r, 422, "validation_error")


def test_chunked_oversized_body_refused(live: LiveApp) -> None:
    def gen() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 16384

    r = post(live, "/auth/login", content=gen(), headers={"content-type": "application/json"})
    assert_error(r, 413, "payload_too_large")


def test_unlocked_secret_key_refused(
    live: LiveApp, tmp_path: Path, good_body: dict[str, object]
) -> None:
    public, secret = gpg_unlocked_identity(tmp_path / "gnupg", "u@example.org")
    body = {
        **good_body,
        "email": "u@example.org",
        "public_key": public,
        "locked_secret_key": secret,
    }
    assert_error(post(live, "/auth/signup", json=body), 422, "unlocked_secret_key")


def test_mismatched_public_key_refused(live: LiveApp, good_body: dict[str, object]) -> None:
    other = signup_body("other@example.org")
    body = {**good_body, "public_key": other["public_key"]}
    assert_error(post(live, "/auth/signup", json=body), 422, "key_mismatch")


def test_mixed_up_keys_refused(live: LiveApp, good_body: dict[str, object]) -> None:
    body = {
        **good_body,
        "public_key": good_body["locked_secret_key"],
        "locked_secret_key": good_body["public_key"],
    }
    r = post(live, "/auth/signup", json=body)
    assert r.status_code == 422 and r.json()["code"] in {"invalid_key", "key_mismatch"}
    body = {**good_body, "locked_secret_key": good_body["public_key"]}
    r = post(live, "/auth/signup", json=body)
    assert r.status_code == 422 and r.json()["code"] in {"invalid_key", "key_mismatch"}


def test_garbage_keys_refused(live: LiveApp, good_body: dict[str, object]) -> None:
    for junk in [
        "hello",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----",
        "\u0000\u0001binary",
    ]:
        assert_error(
            post(live, "/auth/signup", json={**good_body, "public_key": junk}), 422, "invalid_key"
        )


def test_bad_kdf_params_refused(live: LiveApp, good_body: dict[str, object]) -> None:
    for kdf in [
        {"alg": "pbkdf2", "v": 19, "m": 65536, "t": 3, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 8, "t": 1, "p": 1},
        {"alg": "argon2id", "v": 19, "m": 2**31, "t": 3, "p": 1},
    ]:
        r = post(live, "/auth/signup", json={**good_body, "kdf": kdf})
        assert_error(r, 422, "validation_error")


def test_bad_email(live: LiveApp, good_body: dict[str, object]) -> None:
    for email in ["no-at-sign", "a@b@c", "with space@example.org", "nul\u0000@x.org", ""]:
        assert_error(
            post(live, "/auth/signup", json={**good_body, "email": email}), 422, "validation_error"
        )


def test_unknown_route_and_method(live: LiveApp) -> None:
    assert_error(httpx.get(f"{live.url}/api/v1/nope"), 404, "not_found")
    assert_error(httpx.delete(f"{live.url}/api/v1/auth/login"), 405, "method_not_allowed")


def test_openapi_served(live: LiveApp) -> None:
    spec = httpx.get(f"{live.url}/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/auth/signup" in spec["paths"]


def test_error_body_is_json_for_wrong_content_type(live: LiveApp) -> None:
    r = post(
        live,
        "/auth/login",
        content=json.dumps({"a": 1}).encode(),
        headers={"content-type": "text/plain"},
    )
    assert r.status_code in (415, 422, 400)
    assert "code" in r.json()
