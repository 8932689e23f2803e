"""Records through the real HTTP API and the SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import itertools
import json
import select
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client import records as recs
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.config import Settings
from hygieia.storage import BlobStore
from tests.support.accounts import new_account
from tests.support.live import LiveApp
from tests.support.tamper import Rewrite, TamperingTransport

PW = "records test password 1"


@pytest.fixture
def alice(live: LiveApp) -> acct.LoggedIn:
    return new_account(live.client(), "alice@example.org", PW)


@pytest.fixture
def bob(live: LiveApp) -> acct.LoggedIn:
    return new_account(live.client(), "bob@example.org", PW)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("size", [0, 1, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 9_000_000])
def test_round_trip(live: LiveApp, alice: acct.LoggedIn, tmp_path: Path, size: int) -> None:
    data = bytes((i * 7 + 3) % 251 for i in range(min(size, 1000))) * (size // 1000 + 1)
    data = data[:size]
    src = write(tmp_path, "scan.bin", data)
    api = live.client(alice.token)
    fields = recs.RecordFields(title="Scan", record_type="imaging", tags=("a", "b"))
    rec = recs.put(api, alice, src, fields)
    assert rec.segments == crypto.segment_count(size)
    out = tmp_path / "out.bin"
    meta = recs.get(api, alice, rec.id, out)
    assert out.read_bytes() == data
    assert meta["title"] == "Scan" and meta["size"] == size and meta["tags"] == ["a", "b"]


def test_list_is_paginated_newest_first(
    live: LiveApp, alice: acct.LoggedIn, tmp_path: Path
) -> None:
    api = live.client(alice.token)
    ids = [
        recs.put(
            api, alice, write(tmp_path, f"f{i}.txt", b"x%d" % i), recs.RecordFields(title=f"t{i}")
        ).id
        for i in range(5)
    ]
    page1 = api.list_records(limit=2)
    page2 = api.list_records(limit=2, cursor=page1.next_cursor)
    page3 = api.list_records(limit=2, cursor=page2.next_cursor)
    got = [i.id for p in (page1, page2, page3) for i in p.items]
    assert got == list(reversed(ids))
    assert page3.next_cursor is None
    titles = [r.meta["title"] for r in recs.iter_records(api, alice.unlock())]
    assert titles == ["t4", "t3", "t2", "t1", "t0"]
    with pytest.raises(ApiError) as exc:
        api.json("GET", "/records", params={"cursor": "!!garbage"})
    assert exc.value.code == "validation_error"


def test_delete_releases_pin(live: LiveApp, alice: acct.LoggedIn, tmp_path: Path) -> None:
    api = live.client(alice.token)
    rec = recs.put(api, alice, write(tmp_path, "a.txt", b"hello"))
    store = live_store(live)
    assert rec.cid in set(store.pins())
    recs.remove(api, rec.id)
    assert rec.cid not in set(store.pins())
    with pytest.raises(ApiError) as exc:
        api.get_record(rec.id)
    assert exc.value.status == 404


def live_store(live: LiveApp) -> BlobStore:
    return live.app.state.store


# --- authorisation matrix ----------------------------------------------------------------
def test_authorisation_matrix(
    live: LiveApp, alice: acct.LoggedIn, bob: acct.LoggedIn, tmp_path: Path
) -> None:
    rec = recs.put(live.client(alice.token), alice, write(tmp_path, "a.txt", b"secret stuff"))
    rid = rec.id
    routes = [
        ("GET", f"/records/{rid}"),
        ("GET", f"/records/{rid}/content"),
        ("DELETE", f"/records/{rid}"),
    ]
    base = f"{live.url}/api/v1"
    for method, path in routes:
        # No token, garbage token.
        r = httpx.request(method, base + path)
        assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
        r = httpx.request(method, base + path, headers={"authorization": "Bearer junk"})
        assert (r.status_code, r.json()["code"]) == (401, "invalid_token")
        # Another user: exactly like a missing record.
        other = httpx.request(method, base + path, headers={"authorization": f"Bearer {bob.token}"})
        missing = httpx.request(
            method,
            base + path.replace(rid, "00000000-0000-4000-8000-000000000000"),
            headers={"authorization": f"Bearer {bob.token}"},
        )
        assert other.status_code == missing.status_code == 404
        assert other.json() == missing.json()
    # Listing shows only one's own records; uploading needs a token.
    assert (
        httpx.get(base + "/records", headers={"authorization": f"Bearer {bob.token}"}).json()[
            "items"
        ]
        == []
    )
    assert httpx.get(base + "/records").status_code == 401
    assert httpx.post(base + "/records").status_code == 401
    # The owner still has it.
    out = tmp_path / "o"
    recs.get(live.client(alice.token), alice, rid, out)
    assert out.read_bytes() == b"secret stuff"
    # Non-UUID ids are 404 too, never 422/500.
    r = httpx.get(base + "/records/../../etc", headers={"authorization": f"Bearer {alice.token}"})
    assert r.status_code == 404


# --- hostile uploads -------------------------------------------------------------------
def sealed_upload(
    alice: acct.LoggedIn, data: bytes, *, tmp_path: Path, to_key: str | None = None
) -> tuple[dict[str, Any], bytes]:
    signer = alice.unlock()
    sk = crypto.new_session_key()
    src = write(tmp_path, "up.bin", data)
    sealed, _ = recs.seal_file(src, session_key=sk, signer=signer, workdir=tmp_path)
    content = sealed.path.read_bytes()
    meta = {
        "cid": sealed.cid,
        "size": sealed.size,
        "segments": sealed.segments,
        "pkesk": base64.b64encode(crypto.make_pkesk(sk, to_key or signer.public_key)).decode(),
        "sealed_metadata": base64.b64encode(b"\xc1sealed").decode(),
        "envelope": base64.b64encode(b"\xc1envelope").decode(),
    }
    return meta, content


def raw_upload(
    live: LiveApp, token: str, meta: object, content: bytes, **kw: Any
) -> httpx.Response:
    files: dict[str, tuple[str | None, str | bytes] | tuple[str, bytes, str]] = {
        "meta": (None, meta if isinstance(meta, str | bytes) else json.dumps(meta)),
        "content": ("cid", content, "application/octet-stream"),
    }
    return httpx.post(
        f"{live.url}/api/v1/records",
        headers={"authorization": f"Bearer {token}"},
        files=files,
        timeout=60,
        **kw,
    )


def assert_nothing_stored(live: LiveApp, token: str) -> None:
    assert (
        httpx.get(
            f"{live.url}/api/v1/records", headers={"authorization": f"Bearer {token}"}
        ).json()["items"]
        == []
    )
    assert list(live_store(live).pins()) == []


def test_hostile_uploads(
    live: LiveApp, alice: acct.LoggedIn, bob: acct.LoggedIn, tmp_path: Path
) -> None:
    meta, content = sealed_upload(alice, b"lab values" * 1000, tmp_path=tmp_path)
    tok = alice.token

    def expect(r: httpx.Response, status: int, code: str) -> None:
        assert r.status_code == status, r.text
        assert r.json()["code"] == code

    # Wrong CID announced.
    other_cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    expect(raw_upload(live, tok, {**meta, "cid": other_cid}, content), 422, "cid_mismatch")
    # Wrong size / segment count.
    expect(raw_upload(live, tok, {**meta, "size": meta["size"] + 1}, content), 422, "size_mismatch")
    expect(raw_upload(live, tok, {**meta, "size": meta["size"] - 1}, content), 422, "size_mismatch")
    # More segments than the size allows is refused before any byte is stored.
    expect(raw_upload(live, tok, {**meta, "segments": 2}, content), 422, "validation_error")
    # Not record framing at all, or cut short.
    junk = b"\x00" * len(content)
    expect(raw_upload(live, tok, meta, junk), 422, "invalid_record")
    expect(
        raw_upload(live, tok, {**meta, "size": len(content) - 10}, content[:-10]),
        422,
        "invalid_record",
    )
    # PKESK for somebody else's key (Bob's), or not a PKESK.
    bob_pub = bob.unlock().public_key
    meta_b, content_b = sealed_upload(alice, b"x", tmp_path=tmp_path, to_key=bob_pub)
    expect(raw_upload(live, tok, meta_b, content_b), 422, "pkesk_mismatch")
    expect(
        raw_upload(live, tok, {**meta, "pkesk": base64.b64encode(b"nonsense").decode()}, content),
        422,
        "invalid_record",
    )
    # Malformed meta.
    expect(raw_upload(live, tok, "{not json", content), 400, "bad_request")
    expect(raw_upload(live, tok, {**meta, "extra": 1}, content), 422, "validation_error")
    expect(raw_upload(live, tok, {**meta, "size": "12"}, content), 422, "validation_error")
    expect(raw_upload(live, tok, {**meta, "cid": "not-a-cid"}, content), 422, "validation_error")
    expect(raw_upload(live, tok, {**meta, "pkesk": "@@@"}, content), 422, "validation_error")
    # Parts in the wrong order / missing / not multipart.
    r = httpx.post(
        f"{live.url}/api/v1/records",
        headers={"authorization": f"Bearer {tok}"},
        files={"content": ("c", content)},
    )
    expect(r, 422, "validation_error")
    r = httpx.post(
        f"{live.url}/api/v1/records", headers={"authorization": f"Bearer {tok}"}, content=content
    )
    expect(r, 415, "unsupported_media_type")
    r = httpx.post(
        f"{live.url}/api/v1/records",
        headers={
            "authorization": f"Bearer {tok}",
            "content-type": "multipart/form-data; boundary=xyz",
        },
        content=b"garbage without boundary lines",
    )
    assert r.status_code == 400
    assert_nothing_stored(live, tok)
    # And the genuine one still goes in.
    assert raw_upload(live, tok, meta, content).status_code == 201


def test_deeply_nested_meta_is_a_client_error(
    live: LiveApp, alice: acct.LoggedIn, tmp_path: Path
) -> None:
    """Issue 9, finding 10: before this change the meta part went through ``json.loads``,
    whose RecursionError on deep nesting answered 500 (with a traceback in the log)."""
    meta, content = sealed_upload(alice, b"deep", tmp_path=tmp_path)
    depth = 40_000  # far past Python's recursion limit, inside the 256 KiB meta bound
    nested = "[" * depth + "]" * depth
    for doc in (
        nested,
        '{"a":' * depth + "1" + "}" * depth,
        json.dumps({**meta, "extra": "@"}).replace('"@"', nested),
        json.dumps({**meta, "size": "@"}).replace('"@"', nested),  # inside a known field
    ):
        r = raw_upload(live, alice.token, doc, content)
        assert (r.status_code, r.json()["code"]) == (400, "bad_request"), r.text
    assert_nothing_stored(live, alice.token)


@pytest.mark.parametrize(
    "cursor_text",
    [
        "2026-01-02T03:04:05|{id}",  # no offset: was compared as a naive datetime, a 500
        "2026-01-02T03:04:05.123456|{id}",
        "0001-01-01T00:00:00+01:00|{id}",  # leaves the datetime range in UTC: a 500 too
        "9999-12-31T23:59:59-01:00|{id}",
        "2026-01-02T03:04:05+00:00|not-a-uuid",
        "2026-01-02T03:04:05+00:00",
        "not a time|{id}",
    ],
)
def test_odd_cursors_are_a_client_error(
    live: LiveApp, alice: acct.LoggedIn, cursor_text: str
) -> None:
    """Issue 9, finding 10: before this change a cursor whose time had no offset (or one
    that overflowed on conversion to UTC) reached the database layer and answered 500."""
    raw = cursor_text.format(id="0b5f3a4e-5c7d-4f3e-9a1b-2c3d4e5f6a7b").encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    r = httpx.get(
        f"{live.url}/api/v1/records",
        params={"cursor": cursor},
        headers={"authorization": f"Bearer {alice.token}"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "validation_error"), r.text
    for junk in ("%%%", "\u00ff" * 10, base64.urlsafe_b64encode(b"\xff\xfe|x").decode()):
        r = httpx.get(
            f"{live.url}/api/v1/records",
            params={"cursor": junk},
            headers={"authorization": f"Bearer {alice.token}"},
        )
        assert (r.status_code, r.json()["code"]) == (422, "validation_error"), r.text


@pytest.fixture
def small_limit(app_settings: Settings) -> Settings:
    app_settings.max_record_bytes = 64 * 1024
    return app_settings


def test_oversized_upload_refused_before_reading(
    small_limit: Settings, live: LiveApp, alice: acct.LoggedIn, tmp_path: Path
) -> None:
    meta, content = sealed_upload(alice, b"z" * 200_000, tmp_path=tmp_path)
    r = raw_upload(live, alice.token, meta, content)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"

    # A huge declared Content-Length is answered before a single body byte is sent.
    status, sent = send_slowly(live.url, alice.token, declared=10 * 1024**3, chunks=iter(()))
    assert (status, sent) == (413, 0)

    # A chunked body (no Content-Length) is refused while the client is still sending:
    # by the middleware's byte count, or by the announced size checked as it streams.
    head = (
        b'--b\r\nContent-Disposition: form-data; name="meta"\r\n\r\n'
        + json.dumps({**meta, "size": 60_000}).encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="content"; filename="c"\r\n\r\n'
    )
    chunks = itertools.chain([head], itertools.repeat(content[:65536], 10_000))
    status, sent = send_slowly(live.url, alice.token, declared=None, chunks=chunks)
    assert status in (413, 422)
    assert sent < 20 * 1024 * 1024  # far from the 655 MB the client offered
    assert_nothing_stored(live, alice.token)


def send_slowly(
    url: str, token: str, *, declared: int | None, chunks: Iterator[bytes]
) -> tuple[int, int]:
    """POST over a raw socket, stopping as soon as the server answers.

    Returns (status, body bytes sent before the answer came).
    """
    parsed = urlsplit(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=30)
    framing = (
        f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"
    )
    sock.sendall(
        (
            f"POST /api/v1/records HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"{framing}\r\n\r\n"
        ).encode()
    )
    sent = 0
    try:
        for chunk in itertools.chain(chunks, [None]):
            readable, _, _ = select.select([sock], [], [], 0 if chunk is not None else 30)
            if readable:
                break
            if chunk is None:
                break
            data = chunk if declared is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
            try:
                sock.sendall(data)
            except OSError:
                break
            sent += len(chunk)
        select.select([sock], [], [], 30)
        answer = sock.recv(65536)
    finally:
        sock.close()
    return int(answer.split(b" ", 2)[1]), sent


# --- a hostile server: the client refuses to write anything --------------------------
def _tampered(live: LiveApp, alice: acct.LoggedIn, rewrite: Rewrite) -> HygieiaClient:
    return HygieiaClient(live.url, token=alice.token, transport=TamperingTransport(rewrite))


def test_client_refuses_tampered_records(
    live: LiveApp, alice: acct.LoggedIn, bob: acct.LoggedIn, tmp_path: Path
) -> None:
    api = live.client(alice.token)
    data_a = bytes(range(256)) * 40000  # ~10 MB, 3 segments
    a = recs.put(api, alice, write(tmp_path, "a.bin", data_a)).id
    b = recs.put(api, alice, write(tmp_path, "b.bin", bytes(reversed(data_a)))).id
    raw_a = httpx.get(
        f"{live.url}/api/v1/records/{a}/content",
        headers={"authorization": f"Bearer {alice.token}"},
    ).content
    raw_b = httpx.get(
        f"{live.url}/api/v1/records/{b}/content",
        headers={"authorization": f"Bearer {alice.token}"},
    ).content
    seg_len_a = 6 + int.from_bytes(raw_a[2:6], "big")
    seg_len_b = 6 + int.from_bytes(raw_b[2:6], "big")
    item_b = api.json("GET", f"/records/{b}")
    bob_pkesk = base64.b64encode(
        crypto.make_pkesk(crypto.new_session_key(), bob.unlock().public_key)
    ).decode()

    def flip(_req: httpx.Request, body: bytes) -> bytes | None:
        if _req.url.path.endswith("/content"):
            mutable = bytearray(body)
            mutable[len(body) // 2] ^= 0x01
            return bytes(mutable)
        return None

    def swap_content(_req: httpx.Request, body: bytes) -> bytes | None:
        return raw_b if _req.url.path.endswith(f"{a}/content") else None

    def swap_cid(_req: httpx.Request, body: bytes) -> bytes | None:
        if _req.url.path.endswith(f"/records/{a}"):
            item = json.loads(body)
            item["cid"] = item_b["cid"]
            return json.dumps(item).encode()
        return swap_content(_req, body)

    def foreign_segment(_req: httpx.Request, body: bytes) -> bytes | None:
        if _req.url.path.endswith(f"{a}/content"):
            return raw_a[:seg_len_a] + raw_b[seg_len_b : 2 * seg_len_b] + raw_a[2 * seg_len_a :]
        return None

    def dropped_segment(_req: httpx.Request, body: bytes) -> bytes | None:
        if _req.url.path.endswith(f"{a}/content"):
            return raw_a[:seg_len_a] + raw_a[2 * seg_len_a :]
        return None

    def other_pkesk(_req: httpx.Request, body: bytes) -> bytes | None:
        if _req.url.path.endswith(f"/records/{a}"):
            item = json.loads(body)
            item["pkesk"] = bob_pkesk
            return json.dumps(item).encode()
        return None

    def other_metadata(_req: httpx.Request, body: bytes) -> bytes | None:
        if _req.url.path.endswith(f"/records/{a}"):
            item = json.loads(body)
            item["sealed_metadata"] = item_b["sealed_metadata"]
            return json.dumps(item).encode()
        return None

    for rewrite in (
        flip,
        swap_content,
        swap_cid,
        foreign_segment,
        dropped_segment,
        other_pkesk,
        other_metadata,
    ):
        target = tmp_path / f"out-{rewrite.__name__}.bin"
        with pytest.raises((recs.RecordVerificationError, crypto.DecryptionError)):
            recs.get(_tampered(live, alice, rewrite), alice, a, target)
        assert not target.exists(), rewrite.__name__
        assert [p.name for p in tmp_path.glob(".hygieia-get-*")] == [], rewrite.__name__
    # Untampered, it still opens.
    recs.get(api, alice, a, tmp_path / "fine.bin")
    assert (tmp_path / "fine.bin").read_bytes() == data_a


# --- client-chosen record ids (issue 9, finding 13) --------------------------------------
def test_upload_keeps_the_clients_id_and_refuses_a_taken_one_alike(
    live: LiveApp, alice: acct.LoggedIn, bob: acct.LoggedIn, tmp_path: Path
) -> None:
    """The id the client sealed into the metadata is the record's id; a taken one is
    409 ``record_id_taken`` with the same body whether the caller or somebody else
    holds it, before anything is stored. Failed before: the server ignored the client's
    id (``meta has unknown fields``) and made its own."""
    chosen = crypto.new_record_id()
    meta, content = sealed_upload(alice, b"blood count", tmp_path=tmp_path)
    r = raw_upload(live, alice.token, {**meta, "id": chosen}, content)
    assert r.status_code == 201, r.text
    assert r.json()["id"] == chosen
    assert live.client(alice.token).json("GET", f"/records/{chosen}")["cid"] == meta["cid"]
    pins = set(live_store(live).pins())

    # Again, by its owner (other content) and by another account: the same answer.
    mine, my_content = sealed_upload(alice, b"another file", tmp_path=tmp_path)
    theirs, their_content = sealed_upload(bob, b"bob's file", tmp_path=tmp_path)
    again = raw_upload(live, alice.token, {**mine, "id": chosen}, my_content)
    other = raw_upload(live, bob.token, {**theirs, "id": chosen}, their_content)
    assert again.status_code == other.status_code == 409
    assert (
        again.json()
        == other.json()
        == {
            "code": "record_id_taken",
            "detail": "a record with this id exists",
        }
    )
    assert set(live_store(live).pins()) == pins  # nothing stored for either
    bobs = httpx.get(f"{live.url}/api/v1/records", headers={"authorization": f"Bearer {bob.token}"})
    assert bobs.json()["items"] == []

    # Only the one spelling of a random UUID is an id.
    for bad in (chosen.upper(), str(uuid.uuid1()), chosen.replace("-", ""), "", 7, [chosen]):
        r = raw_upload(live, alice.token, {**mine, "id": bad}, my_content)
        assert (r.status_code, r.json()["code"]) == (422, "validation_error"), bad

    # A client from before the binding sends no id: the server still makes one.
    r = raw_upload(live, alice.token, mine, my_content)
    assert r.status_code == 201 and crypto.is_record_id(r.json()["id"])


def test_racing_uploads_of_one_id(live: LiveApp, alice: acct.LoggedIn, tmp_path: Path) -> None:
    """Two uploads of one id both pass the early check: the primary key refuses the
    second at commit, as ``record_id_taken``, and its pin is released."""
    from hygieia.api.schemas import RecordMetaCreate
    from hygieia.db.models import Record, User
    from hygieia.errors import RecordIdTaken
    from hygieia.services import records as service
    from hygieia.services.common import utcnow

    chosen = crypto.new_record_id()
    first, first_content = sealed_upload(alice, b"first", tmp_path=tmp_path)
    second, second_content = sealed_upload(alice, b"second", tmp_path=tmp_path)
    store = live_store(live)
    calls = 0

    def clock() -> datetime:
        # create() reads the clock once for the pending pin and once for the row: in
        # between, the other upload commits the same id.
        nonlocal calls
        calls += 1
        if calls == 2:
            r = raw_upload(live, alice.token, {**first, "id": chosen}, first_content)
            assert r.status_code == 201, r.text
        return utcnow()

    with live.app.state.sessionmaker() as db:
        owner = db.scalar(sa.select(User).where(User.email == "alice@example.org"))
        assert owner is not None
        meta = RecordMetaCreate.from_part(
            json.dumps({**second, "id": chosen}).encode(), max_record_bytes=1 << 30
        )
        with pytest.raises(RecordIdTaken):
            service.create(db, store, owner=owner, meta=meta, content=[second_content], now=clock)
        assert calls >= 2  # the other upload did come in between
        assert db.scalar(sa.select(Record.cid).where(Record.id == chosen)) == first["cid"]
    assert second["cid"] not in set(store.pins())
    assert first["cid"] in set(store.pins())
