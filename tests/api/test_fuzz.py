"""Property-based fuzzing of every API operation from the OpenAPI document (schemathesis).

Hypothesis generates valid and invalid requests for each route, with and without a real
session token; whatever it sends, the server must never answer 5xx, and every error must
carry the stable ``{code, detail}`` shape. The schema only says ``meta`` and ``cursor`` are
strings, so hooks add what a string from the schema never is: an upload's meta nested past
any recursion limit, and listing cursors that decode to odd times and ids (issue 9,
finding 10: both answered 500 before they were handled).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from hygieia.api import create_app
from hygieia.client import account as acct
from hygieia.client import links, records
from hygieia.client.sdk import HygieiaClient
from hygieia.client.shlink import decode_link
from hygieia.config import Settings
from hygieia.storage import MemoryBlobStore
from tests.support.accounts import TEST_KDF
from tests.support.kdf import TEST_KDF_FLOOR
from tests.support.server import threaded_server


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    # Limits out of the way: the fuzzer repeats requests far past any throttle.
    settings_ = Settings(
        data_dir=tmp,
        database_url=f"sqlite:///{tmp / 'fuzz.db'}",
        login_max_failures=10_000,
        login_address_max_failures=10_000,
        signup_max_per_address=10_000,
        key_lookup_max=10_000,
        link_requests_per_hour=1_000_000,
        link_passcode_attempts=1_000,
        hash_queue=1_000,
        kdf_min_memory_kib=TEST_KDF_FLOOR.m,  # accepts TEST_KDF accounts
        kdf_min_passes=TEST_KDF_FLOOR.t,
    )
    app = create_app(settings_, store=MemoryBlobStore())
    with threaded_server(app) as url:
        api = HygieiaClient(url)
        acct.signup(api, "fuzz@example.org", "fuzzing password 1", kdf=TEST_KDF)
        session = acct.login(api, "fuzz@example.org", "fuzzing password 1")
        token = session.token
        api.token = token
        # Live share links (one with a passcode, one U), so the public SHL routes are
        # fuzzed past the token lookup too (see flatmap_path_parameters).
        src = tmp / "record.json"
        src.write_text('{"resourceType": "Bundle", "type": "collection"}')
        rid = records.put(api, session, src).id
        for kw in ({"passcode": "fuzz passcode"}, {"direct": True}, {}):
            link, _ = links.create_link(api, session, [rid], expires_in=timedelta(days=1), **kw)
            LINK_TOKENS.append(decode_link(link).url.rsplit("/", 1)[1])
        yield url, token


LINK_TOKENS: list[str] = []


def _error_shape(response: schemathesis.Response) -> None:
    if response.status_code >= 400:
        body = response.json()
        if body.get("code") == "link_passcode_wrong":  # the SHL spec's 401 adds one member
            assert set(body) == {"code", "detail", "remainingAttempts"}, body
            return
        assert set(body) == {"code", "detail"}, body
        assert isinstance(body["code"], str) and body["code"]


FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def _check(case: schemathesis.Case, url: str, headers: dict[str, str]) -> None:
    response = case.call(base_url=url, headers=headers)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    _error_shape(response)


def _deep_json() -> st.SearchStrategy[str]:
    """JSON nested up to far past Python's recursion limit, alone or inside a meta object."""
    depth = st.one_of(st.integers(1, 300), st.integers(1_000, 40_000))
    shape = st.sampled_from([("[", "]"), ('{"a":', "}")])
    nested = st.builds(lambda d, s: s[0] * d + "1" + s[1] * d, depth, shape)
    return nested.flatmap(
        lambda n: st.sampled_from([n, f'{{"cid": {n}}}', f'{{"size": 1, "extra": {n}}}'])
    )


def _odd_cursors() -> st.SearchStrategy[str]:
    """Cursors the server never issued: times without an offset or at the edges of the
    datetime range under any offset, ids that are not UUIDs, and plain junk."""
    offsets = st.timedeltas(
        min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
    )
    times = st.one_of(st.datetimes(), st.datetimes(timezones=st.builds(timezone, offsets))).map(
        datetime.isoformat
    )
    ids = st.one_of(st.uuids().map(str), st.text(max_size=20))
    text = st.one_of(st.builds("{}|{}".format, times, ids), st.text(max_size=60))
    encoded = text.map(lambda t: base64.urlsafe_b64encode(t.encode()).decode().rstrip("="))
    return st.one_of(encoded, st.text(max_size=100))


def _odd_times() -> st.SearchStrategy[str]:
    """Times for ``since``/``until``: at the edges of the range, with and without an
    offset, and junk."""
    offsets = st.timedeltas(
        min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
    )
    times = st.one_of(st.datetimes(), st.datetimes(timezones=st.builds(timezone, offsets)))
    return st.one_of(times.map(datetime.isoformat), st.text(max_size=40))


def _is(context: Any, method: str, path: str) -> bool:
    op = context.operation
    return op is not None and (op.method.upper(), op.path) == (method, path)


def _add_hostile_inputs(schema: schemathesis.BaseSchema) -> None:
    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        if not _is(context, "POST", "/api/v1/records"):
            return st.just(body)
        content = body.get("content", b"") if isinstance(body, dict) else b""
        # meta first: the server reads the parts in that order.
        deep = _deep_json().map(lambda meta: {"meta": meta, "content": content})
        return st.one_of(deep, st.just(body))

    @schema.hook
    def flatmap_path_parameters(context: Any, params: Any) -> st.SearchStrategy[Any]:
        op = context.operation
        if op is None or not op.path.startswith("/api/v1/shl/") or not LINK_TOKENS:
            return st.just(params)
        real = st.sampled_from(LINK_TOKENS).map(lambda t: {**(params or {}), "token": t})
        return st.one_of(real, st.just(params))

    @schema.hook
    def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
        paged = (
            "/api/v1/records",
            "/api/v1/grants",
            "/api/v1/shared",
            "/api/v1/emergency/access/{access_id}/records",
        )
        if _is(context, "GET", "/api/v1/audit"):
            odd_audit = st.fixed_dictionaries(
                {},
                optional={
                    "before": st.one_of(st.integers(), st.text(max_size=30)),
                    "since": _odd_times(),
                    "until": _odd_times(),
                    "kind": st.lists(st.text(max_size=70), max_size=20),
                    "limit": st.integers(),
                },
            )
            return st.one_of(odd_audit, st.just(query))
        if not any(_is(context, "GET", path) for path in paged):
            return st.just(query)
        odd = _odd_cursors().map(lambda cursor: {**(query or {}), "cursor": cursor})
        return st.one_of(odd, st.just(query))


def _operations(url: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    _add_hostile_inputs(schema)
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation the fuzzer can't read is a failure
        operations.append(result.ok())
    return operations


def _fuzz(
    operation: schemathesis.APIOperation, mode: GenerationMode, url: str, headers: dict[str, str]
) -> None:
    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        _check(case, url, headers)

    try:
        run()
    except Unsatisfiable:
        # Some operations have no expressible invalid input (e.g. an unconstrained path
        # string): only the negative mode may come up empty.
        if mode is not GenerationMode.NEGATIVE:
            raise


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "authenticated"])
def test_no_input_makes_the_server_fail(fuzz_server: tuple[str, str], authenticated: bool) -> None:
    url, token = fuzz_server
    operations = _operations(url)
    assert len(operations) >= 12
    paths = {op.path for op in operations}
    # Every emergency access route (protocol §8) is fuzzed too.
    assert {
        "/api/v1/emergency/contacts",
        "/api/v1/emergency/contacts/{contact_id}",
        "/api/v1/emergency/contacts/{contact_id}/approve",
        "/api/v1/emergency/contacts/{contact_id}/deny",
        "/api/v1/emergency/access",
        "/api/v1/emergency/access/{access_id}/request",
        "/api/v1/emergency/access/{access_id}/vault",
        "/api/v1/emergency/access/{access_id}/records",
        "/api/v1/emergency/access/{access_id}/records/{record_id}",
        "/api/v1/emergency/access/{access_id}/records/{record_id}/content",
        # Account deletion: a random auth_key never matches, so the account stays.
        "/api/v1/auth/account/delete",
    } <= paths
    # And every key-rotation route (protocol "Key rotation").
    assert {
        "/api/v1/auth/keys/rotation",
        "/api/v1/auth/keys/rotation/commit",
        "/api/v1/records/{record_id}/keys",
        "/api/v1/auth/recovery/rotate",
    } <= paths
    # So are the sessions and the activity trail (protocol §11).
    assert {
        "/api/v1/auth/sessions",
        "/api/v1/auth/sessions/{session_id}",
        "/api/v1/auth/sessions/revoke-others",
        "/api/v1/audit",
    } <= paths
    # So is every second-factor route (protocol §10).
    assert {
        "/api/v1/auth/login/factor",
        "/api/v1/auth/factors",
        "/api/v1/auth/factors/totp",
        "/api/v1/auth/factors/totp/{factor_id}/confirm",
        "/api/v1/auth/factors/{factor_id}/remove",
        "/api/v1/auth/factors/backup-codes",
    } <= paths
    # And the passkey routes (protocol §10), asked as http://localhost:PORT: an IP address
    # can't be a WebAuthn RP ID, so by 127.0.0.1 they would stop at passkey_unavailable.
    passkey_paths = {
        "/api/v1/auth/factors/passkey/options",
        "/api/v1/auth/factors/passkey",
        "/api/v1/auth/login/passkey/options",
        "/api/v1/auth/factors/proof/passkey-options",
    }
    assert passkey_paths <= paths
    localhost = {"host": f"localhost:{url.rsplit(':', 1)[1]}"}
    for operation in operations:
        # Logging out would end the shared session for the examples that follow.
        use_token = authenticated and not operation.path.endswith("/auth/logout")
        headers = {"authorization": f"Bearer {token}"} if use_token else {}
        if operation.path in passkey_paths:
            headers.update(localhost)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, url, headers)
    with HygieiaClient(url, token=token) as api:
        assert api.me().email == "fuzz@example.org"  # nothing deleted it
