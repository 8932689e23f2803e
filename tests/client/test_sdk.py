"""The SDK's typed answers: decoded and checked at the edge, whatever the server sends.

The server here is an ``httpx.MockTransport`` answering fixed JSON: the point is what
the client makes of well-formed and of broken answers (the real server's answers go
through these types in every API and CLI test).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from hygieia.client.sdk import (
    Account,
    HygieiaClient,
    InvalidResponse,
    RecordItem,
    RecordPage,
    SessionGrant,
)

ACCOUNT = {
    "id": "7f1d",
    "email": "a@example.org",
    "fingerprint": "F" * 40,
    "encryption_key_id": "E" * 16,
    "public_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----",
    "locked_secret_key": "-----BEGIN PGP PRIVATE KEY BLOCK-----",
    "wrapped_vault_key": base64.b64encode(b"\x01" * 61).decode(),
    "kdf": {"alg": "argon2id", "v": 19, "m": 47104, "t": 8, "p": 1},
    "salt": base64.b64encode(b"\x02" * 16).decode(),
    "recovery_salt": base64.b64encode(b"\x03" * 16).decode(),
    "recovery_wrapped_vault_key": base64.b64encode(b"\x01" * 61).decode(),
    "created_at": "2026-01-01T00:00:00Z",
}
RECORD: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000001",
    "cid": "bafkreib",
    "size": 123,
    "segments": 1,
    "created_at": "2026-01-02T00:00:00Z",
    "pkesk": base64.b64encode(b"\xc1pkesk").decode(),
    "sealed_metadata": base64.b64encode(b"\xc1meta").decode(),
    "envelope": base64.b64encode(b"\xc1env").decode(),
}


def client(answer: Any) -> HygieiaClient:
    body = json.dumps(answer).encode()
    handler = lambda _request: httpx.Response(200, content=body)  # noqa: E731
    return HygieiaClient("https://sdk.invalid", token="t", transport=httpx.MockTransport(handler))


def test_answers_are_typed_and_base64_is_decoded() -> None:
    grant = client({"token": "tok", "expires_at": "2026-01-01T12:00:00Z", "account": ACCOUNT})
    session = grant.login("a@example.org", "x")
    assert isinstance(session, SessionGrant) and isinstance(session.account, Account)
    assert session.account.wrapped_vault_key == b"\x01" * 61
    assert session.account.salt == b"\x02" * 16
    assert session.account.kdf["m"] == 47104

    page = client({"items": [RECORD, RECORD], "next_cursor": None}).list_records()
    assert page == RecordPage(items=(page.items[0],) * 2, next_cursor=None)
    item = page.items[0]
    assert isinstance(item, RecordItem) and item.pkesk == b"\xc1pkesk" and item.size == 123


def test_unknown_fields_are_ignored() -> None:
    item = client({**RECORD, "shared_with": []}).get_record(RECORD["id"])
    assert item.envelope == b"\xc1env"


@pytest.mark.parametrize(
    "broken",
    [
        {k: v for k, v in RECORD.items() if k != "cid"},  # missing
        {**RECORD, "size": "123"},  # a string for a number
        {**RECORD, "size": True},  # a boolean is not a number
        {**RECORD, "pkesk": "not base64!"},
        {**RECORD, "pkesk": 5},
        {**RECORD, "id": None},
        [RECORD],  # not an object
    ],
)
def test_a_misshapen_answer_is_an_api_error(broken: Any) -> None:
    with pytest.raises(InvalidResponse) as exc:
        client(broken).get_record(RECORD["id"])
    assert exc.value.code == "invalid_response" and exc.value.status == 200


def test_a_misshapen_nested_answer_is_an_api_error() -> None:
    account = {**ACCOUNT, "salt": None}
    with pytest.raises(InvalidResponse):
        client({"token": "t", "expires_at": "x", "account": account}).login("a@example.org", "x")
    with pytest.raises(InvalidResponse):
        client({"items": [{**RECORD, "segments": 1.5}], "next_cursor": None}).list_records()
