"""SMART Health Links over real HTTP on both databases (protocol §8): the spec's example
vectors; a client written from the spec text opens Hygieia's links byte-identical;
passcode attempts (sequential and parallel), expiry, max opens, location URL lifetime,
revoke and record deletion, all on an injected clock; the ``U`` flag; CORS; the
throttle; the owner's audit trail; the JWEs unpinned when a link ends."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hygieia import crypto
from hygieia.client import links as lnk
from hygieia.client import records as recs
from hygieia.client.account import LoggedIn
from hygieia.client.sdk import HygieiaClient
from hygieia.client.shlink import LinkPayload, decode_link, encode_link, encode_payload
from hygieia.crypto import jwe as link_jwe
from hygieia.services import links as link_service
from tests.support import shl_reference as ref
from tests.support.accounts import new_account
from tests.support.live import LiveApp

VECTORS = Path(__file__).parents[1] / "vectors" / "shl_example.json"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"%%EOF\n"
BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": []}


def test_spec_example_vectors() -> None:
    v = json.loads(VECTORS.read_text())
    assert encode_payload(v["payload"]) == v["link"]
    payload = decode_link(v["viewer_link"])
    assert payload.flag == "LP" and payload.label == v["payload"]["label"]
    assert payload.url == v["payload"]["url"]
    plain, cty = link_jwe.decrypt_link_file(v["jwe"], key=payload.key, max_bytes=1 << 20)
    assert len(plain) == v["plaintext_size"] and cty == v["cty"]
    assert hashlib.sha256(plain).hexdigest() == v["plaintext_sha256"]
    # The spec-text client agrees.
    header, plain2 = ref.decrypt(v["jwe"], payload.key)
    assert plain2 == plain and header["cty"] == v["cty"]
    # Our own encoding of the same fields, and files from other writers: no cty, a kid.
    ours = encode_link(LinkPayload(url=payload.url, key=payload.key, flag="LP", label="x"))
    assert decode_link(ours).key == payload.key
    from joserfc import jwe as jose_jwe
    from joserfc.jwk import OctKey

    for header in ({"alg": "dir", "enc": "A256GCM"}, {"alg": "dir", "enc": "A256GCM", "kid": "k1"}):
        token = jose_jwe.encrypt_compact(header, b"{}", OctKey.import_key(payload.key))
        assert link_jwe.decrypt_link_file(token, key=payload.key, max_bytes=100)[0] == b"{}"
    with pytest.raises(crypto.DecryptionError):
        link_jwe.decrypt_link_file(v["jwe"], key=bytes(32), max_bytes=1 << 20)


@pytest.fixture
def owner(live: LiveApp, tmp_path: Path) -> tuple[HygieiaClient, LoggedIn, str, str]:
    """Ann with a PDF and a FHIR bundle; the server's clock at T0."""
    live.app.state.clock = lambda: T0
    api = live.client()
    session = new_account(api, "ann@example.org", "links api password 1")
    api.token = session.token
    (tmp_path / "letter.pdf").write_bytes(PDF)
    (tmp_path / "b.json").write_text(json.dumps(BUNDLE))
    pdf = recs.put(api, session, tmp_path / "letter.pdf", recs.RecordFields(title="Letter")).id
    fhir = recs.put(api, session, tmp_path / "b.json").id
    return api, session, pdf, fhir


def _make(owner: Any, ids: list[str], **kw: Any) -> str:
    api, session, *_ = owner
    kw.setdefault("expires_in", timedelta(days=1))
    link, _ = lnk.create_link(api, session, ids, now=lambda: T0, **kw)
    return link


def _pins(live: LiveApp) -> set[str]:
    return set(live.app.state.store.pins())


def _post(link: str, **body: Any) -> httpx.Response:
    body.setdefault("recipient", "Test ER")
    return httpx.post(decode_link(link).url, json=body)


def _at(live: LiveApp, when: datetime) -> None:
    live.app.state.clock = lambda: when


def test_reference_client_opens_hygieia_links(live: LiveApp, owner: Any) -> None:
    _, _, pdf, fhir = owner
    link = _make(owner, [pdf, fhir], passcode="correct horse 9", label="ER")
    for embedded_max, how in ((None, "location"), (10_000_000, "embedded")):
        files = ref.open_link(link, passcode="correct horse 9", embedded_length_max=embedded_max)
        assert [f.how for f in files] == [how, how]
        assert [f.content_type for f in files] == ["application/fhir+json"] * 2
        doc = json.loads(files[0].plaintext)
        assert doc["resourceType"] == "DocumentReference"
        assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == PDF
        assert json.loads(files[1].plaintext) == BUNDLE
        assert files[0].header == {
            "alg": "dir",
            "enc": "A256GCM",
            "cty": "application/fhir+json",
        }
    # A small embeddedLengthMax: locations again.
    assert {
        f.how for f in ref.open_link(link, passcode="correct horse 9", embedded_length_max=10)
    } == {"location"}
    direct = _make(owner, [fhir], direct=True)
    (only,) = ref.open_link(direct)
    assert only.how == "direct" and json.loads(only.plaintext) == BUNDLE


def test_passcode_attempts_then_disabled(live: LiveApp, owner: Any) -> None:
    live.settings.link_passcode_attempts = 3
    _, _, pdf, _ = owner
    pins = _pins(live)
    link = _make(owner, [pdf], passcode="right passcode")
    assert len(_pins(live) - pins) == 1
    r = _post(link)  # no passcode: not a guess
    assert r.status_code == 401 and r.json()["remainingAttempts"] == 3
    assert r.headers["access-control-allow-origin"] == "*"
    seen = []
    for _ in range(3):
        r = _post(link, passcode="wrong")
        assert r.status_code == 401 and r.json()["code"] == "link_passcode_wrong"
        seen.append(r.json()["remainingAttempts"])
    assert seen == [2, 1, 0]
    assert _post(link, passcode="right passcode").status_code == 404  # disabled at zero
    assert _pins(live) == pins  # its JWE is unpinned
    api = owner[0]
    (item,) = api.list_links()
    assert item["state"] == "locked" and item["attempts_left"] == 0
    events = [e.event for e in api.audit(limit=50)]
    assert events.count("link.passcode_failed") == 3 and "link.refused" in events


def test_right_passcode_keeps_the_count(live: LiveApp, owner: Any) -> None:
    live.settings.link_passcode_attempts = 3
    link = _make(owner, [owner[2]], passcode="right passcode")
    assert _post(link, passcode="wrong").json()["remainingAttempts"] == 2
    for _ in range(3):
        assert _post(link, passcode="right passcode").status_code == 200
    assert _post(link, passcode="wrong").json()["remainingAttempts"] == 1


def test_parallel_wrong_guesses_are_serialised(live: LiveApp, owner: Any) -> None:
    live.settings.link_passcode_attempts = 5
    live.settings.hash_queue = 64
    link = _make(owner, [owner[2]], passcode="right passcode")
    url = decode_link(link).url
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def guess(i: int) -> None:
        start.wait()
        r = httpx.post(url, json={"recipient": f"attacker {i}", "passcode": f"guess {i}"})
        with lock:
            results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wrong = sorted(b["remainingAttempts"] for s, b in results if s == 401)
    assert wrong == [0, 1, 2, 3, 4]  # exactly the lifetime count was ever checked
    assert sorted(s for s, _ in results) == [401] * 5 + [404] * 11
    assert _post(link, passcode="right passcode").status_code == 404


def test_expiry_on_the_clock(live: LiveApp, owner: Any) -> None:
    pins = _pins(live)
    link = _make(owner, [owner[3]], expires_in=timedelta(hours=2))
    assert decode_link(link).exp == int((T0 + timedelta(hours=2)).timestamp())
    _at(live, T0 + timedelta(hours=1, minutes=59))
    assert _post(link).status_code == 200
    _at(live, T0 + timedelta(hours=2))
    r = _post(link)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert _pins(live) == pins
    assert owner[0].list_links()[0]["state"] == "expired"
    # A link can't be made to expire in the past or past the server's maximum.
    with pytest.raises(Exception, match="expires_at"):
        _make(owner, [owner[3]], expires_in=timedelta(days=400))


def test_location_urls_expire_and_die_with_the_link(live: LiveApp, owner: Any) -> None:
    live.settings.link_location_seconds = 60
    link = _make(owner, [owner[3]])
    location = _post(link).json()["files"][0]["location"]
    assert location.startswith(live.url + "/api/v1/shl-files/")
    ticket = location.rsplit("/", 1)[1]
    assert len(base64.urlsafe_b64decode(ticket + "==")) >= 32  # unguessable
    forged = ticket[:-3] + ("AAA" if not ticket.endswith("AAA") else "BBB")
    assert httpx.get(location.rsplit("/", 1)[0] + "/" + forged).status_code == 404
    _at(live, T0 + timedelta(seconds=59))
    r = httpx.get(location)
    assert r.status_code == 200 and r.headers["content-type"] == "application/jose"
    _at(live, T0 + timedelta(seconds=60))
    assert httpx.get(location).status_code == 404
    # A fresh location dies with its link.
    location = _post(link).json()["files"][0]["location"]
    assert httpx.get(location).status_code == 200
    owner[0].revoke_link(owner[0].list_links()[0]["id"])
    assert httpx.get(location).status_code == 404
    # Behind a proxy, the configured public origin names the locations.
    live.settings.public_url = "https://vault.example.org"
    other = _make(owner, [owner[3]])
    assert (
        _post(other)
        .json()["files"][0]["location"]
        .startswith("https://vault.example.org/api/v1/shl-files/")
    )


def test_max_opens(live: LiveApp, owner: Any) -> None:
    pins = _pins(live)
    link = _make(owner, [owner[3]], max_opens=2)
    assert _post(link).status_code == 200
    last = _post(link)
    assert last.status_code == 200
    assert _post(link).status_code == 404  # out of opens
    # The last manifest's location stays good until it expires; then the file goes.
    assert httpx.get(last.json()["files"][0]["location"]).status_code == 200
    assert _pins(live) != pins
    (item,) = owner[0].list_links()
    assert item["state"] == "exhausted" and item["opens"] == 2
    with live.app.state.sessionmaker() as db:
        link_service.sweep(db, live.app.state.store, now=lambda: T0 + timedelta(minutes=59))
        assert _pins(live) != pins
        link_service.sweep(db, live.app.state.store, now=lambda: T0 + timedelta(hours=2))
    assert _pins(live) == pins


def test_u_flag(live: LiveApp, owner: Any) -> None:
    link = _make(owner, [owner[3]], direct=True)
    payload = decode_link(link)
    assert payload.flag == "U"
    r = httpx.get(payload.url, params={"recipient": "School nurse"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/jose"
    assert r.headers["access-control-allow-origin"] == "*"
    assert (
        json.loads(link_jwe.decrypt_link_file(r.text, key=payload.key, max_bytes=1 << 20)[0])
        == BUNDLE
    )
    plain = _make(owner, [owner[3]])
    assert httpx.get(decode_link(plain).url, params={"recipient": "x"}).status_code == 404
    trail = owner[0].audit(limit=20)
    opened = [e for e in trail if e.event == "link.opened"]
    assert opened[0].detail.recipient == "School nurse" and opened[0].address


def test_revoke_and_record_deletion_end_links(live: LiveApp, owner: Any) -> None:
    api, _, pdf, fhir = owner
    pins = _pins(live)
    a = _make(owner, [pdf])
    b = _make(owner, [fhir, pdf])
    c = _make(owner, [fhir])
    ids = {i["record_ids"][0]: i["id"] for i in api.list_links()}
    api.revoke_link(ids[pdf])
    assert _post(a).status_code == 404
    api.delete_record(pdf)  # b contains it: b ends too
    assert _post(b).status_code == 404 and _post(c).status_code == 200
    states = {tuple(i["record_ids"]): i["state"] for i in api.list_links()}
    assert states == {(pdf,): "revoked", (fhir, pdf): "revoked", (fhir,): "active"}
    assert len(_pins(live) - pins) == 1  # only c's JWE (the fhir record's own pin stays)
    events = [e.event for e in api.audit(limit=50)]
    assert events.count("link.revoked") == 2 and events.count("link.created") == 3


def test_cors_and_throttle(live: LiveApp, owner: Any) -> None:
    link = _make(owner, [owner[3]])
    url = decode_link(link).url
    pre = httpx.options(
        url,
        headers={
            "origin": "https://viewer.example.org",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
    assert "POST" in pre.headers["access-control-allow-methods"]
    # The owner's routes are not opened to other origins.
    assert "access-control-allow-origin" not in httpx.get(f"{live.url}/api/v1/links").headers
    live.settings.link_requests_per_hour = 2
    assert _post(link).status_code == 200
    assert _post(link).status_code == 200
    r = _post(link)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert r.headers["access-control-allow-origin"] == "*"


def test_bad_uploads_refused(live: LiveApp, owner: Any) -> None:
    api, session, pdf, _ = owner
    key = session.unlock()
    good = link_jwe.encrypt_link_file(
        b"{}", key=link_jwe.new_link_key(), content_type="application/fhir+json"
    )
    meta: Callable[..., dict[str, Any]] = lambda size, **kw: {  # noqa: E731
        "expires_at": (T0 + timedelta(days=1)).isoformat(),
        "files": [{"content_type": "application/fhir+json", "size": size}],
        **kw,
    }
    zipped = good.replace(
        good.split(".")[0],
        base64.urlsafe_b64encode(
            b'{"alg":"dir","enc":"A256GCM","cty":"application/fhir+json","zip":"DEF"}'
        )
        .decode()
        .rstrip("="),
    )
    for body, jwe, code in (
        (meta(len(good)), good.replace(".", "!", 1), "invalid_link_file"),
        (meta(len(zipped)), zipped, "invalid_link_file"),
        (meta(len(good) + 1), good, "validation_error"),
        (meta(len(good), flag="P"), good, "validation_error"),
        (meta(len(good), record_ids=["6f1c5b1e-4c1f-4a8e-9a57-5b0e8c3b2f10"]), good, "not_found"),
        (
            meta(len(good), expires_at=(T0 - timedelta(seconds=1)).isoformat()),
            good,
            "validation_error",
        ),
    ):
        r = httpx.post(
            f"{live.url}/api/v1/links",
            headers={"authorization": f"Bearer {api.token}"},
            data={"meta": json.dumps(body)},
            files=[("file", ("f", jwe.encode(), "application/jose"))],
        )
        assert r.json()["code"] == code, (body, r.text)
    assert api.list_links() == []
    live.settings.max_link_bytes = 1000
    with pytest.raises(lnk.LinkError, match="HYGIEIA_MAX_LINK_BYTES"):
        _make(owner, [pdf])
    del key
