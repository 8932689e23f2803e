"""Sharing against a lying server or a lying owner (protocol §7), through the SDK flows
against a real server on both databases.

The server's lies are told by a relay transport in front of the real server that
rewrites chosen answers (the attacker under test, at the outer edge); the owner's lies
are records and grants built by hand and sent through the real API.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hygieia import crypto
from hygieia.client import records as recs
from hygieia.client import sharing as shr
from hygieia.client.account import LoggedIn
from hygieia.client.contacts import ContactKeyChanged, ContactKeyRefused, Contacts
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.config import Settings
from hygieia.encoding import to_b64
from tests.support.accounts import new_account
from tests.support.identities import make_person
from tests.support.kdf import TEST_KDF_FLOOR
from tests.support.live import LiveApp, live_app

PW = "sharing hostile password 9"

Rewrite = Callable[[httpx.Request, httpx.Response], httpx.Response]


class Tampering(httpx.BaseTransport):
    """Forwards to the real server; ``rewrite`` may replace any answer."""

    def __init__(self) -> None:
        self._real = httpx.HTTPTransport()
        self.rewrite: Rewrite | None = None
        #: Requests that never reach the server (the connection drops first).
        self.drop: Callable[[httpx.Request], bool] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.drop is not None and self.drop(request):
            raise httpx.ConnectError("connection dropped")
        response = self._real.handle_request(request)
        if self.rewrite is None:
            return response
        response.read()
        return self.rewrite(request, response)


def _json_answer(response: httpx.Response, body: object) -> httpx.Response:
    return httpx.Response(response.status_code, json=body)


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[LiveApp]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        store="memory",
        kdf_min_memory_kib=TEST_KDF_FLOOR.m,
        kdf_min_passes=TEST_KDF_FLOOR.t,
    )
    with live_app(settings) as app:
        yield app


class Party:
    def __init__(self, live: LiveApp, email: str) -> None:
        self.tamper = Tampering()
        self.api = HygieiaClient(live.url, transport=self.tamper)
        self.session: LoggedIn = new_account(self.api, email, PW)
        self.api.token = self.session.token
        self.contacts = Contacts(None)
        self.key = self.session.unlock()


def _put(party: Party, tmp_path: Path, data: bytes, name: str = "r.bin") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return recs.put(party.api, party.session, path).id


def test_substituted_recipient_key_is_refused(live: LiveApp, tmp_path: Path) -> None:
    ann, bob, mallory = (Party(live, f"{n}@example.org") for n in ("ann", "bob", "mallory"))
    rid = _put(ann, tmp_path, b"blood count")
    shr.share(ann.api, ann.session, [rid], ["bob@example.org"], contacts=ann.contacts)
    bob_fp = ann.contacts.get(live.url, "bob@example.org")
    assert bob_fp == bob.session.account.fingerprint

    mallory_key = mallory.session.account

    def lie(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/users/key"):
            return _json_answer(
                response,
                {
                    "email": "bob@example.org",
                    "fingerprint": mallory_key.fingerprint,
                    "public_key": mallory_key.public_key,
                },
            )
        return response

    ann.tamper.rewrite = lie
    rid2 = _put(ann, tmp_path, b"x-ray", "x.bin")
    with pytest.raises(ContactKeyChanged) as caught:
        shr.share(ann.api, ann.session, [rid2], ["bob@example.org"], contacts=ann.contacts)
    assert "has CHANGED" in str(caught.value)
    assert [g.record_id for g in ann.api.list_grants().items] == [rid]  # nothing shared

    # A fingerprint that is not the key's is refused even on first use.
    def wrong_fingerprint(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/users/key"):
            body = response.json() | {"fingerprint": "A" * 40}
            return _json_answer(response, body)
        return response

    ann.tamper.rewrite = wrong_fingerprint
    with pytest.raises(ContactKeyRefused):
        shr.share(ann.api, ann.session, [rid2], ["carl@example.org"], contacts=ann.contacts)


def test_substituted_owner_key_is_refused(live: LiveApp, tmp_path: Path) -> None:
    ann, bob, mallory = (Party(live, f"{n}@example.org") for n in ("ann", "bob", "mallory"))
    rid = _put(ann, tmp_path, b"letter")
    shr.share(ann.api, ann.session, [rid], ["bob@example.org"], contacts=ann.contacts)
    assert len(list(shr.iter_shared(bob.api, bob.key, contacts=bob.contacts))) == 1  # pins Ann
    evil = mallory.session.account

    def lie(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if "/shared" in request.url.path and response.status_code == 200:
            body = response.json()
            for item in body.get("items", [body]):
                item["owner"] |= {"fingerprint": evil.fingerprint, "public_key": evil.public_key}
            return _json_answer(response, body)
        return response

    bob.tamper.rewrite = lie
    with pytest.raises(ContactKeyChanged):
        shr.get_shared(bob.api, bob.session, rid, tmp_path / "out", contacts=bob.contacts)
    assert not (tmp_path / "out").exists()
    # A client that never saw Ann trusts the server's key on first use, but the record
    # is still refused: Ann's signatures are not by the key it was told is hers.
    with pytest.raises(recs.RecordVerificationError):
        shr.get_shared(bob.api, bob.session, rid, tmp_path / "out", contacts=Contacts(None))
    assert not (tmp_path / "out").exists()


def _forged_record(
    owner: Party,
    recipient: Party,
    *,
    content_signer: crypto.UnlockedKey,
    metadata_signer: crypto.UnlockedKey,
) -> str:
    """A record of ``owner`` shared with ``recipient``, signed by whomever the test says."""
    data = b"forged " + os.urandom(64)
    record_id = crypto.new_record_id()
    session_key = crypto.new_session_key()
    segments = b"".join(
        crypto.seal_segments(
            io.BytesIO(data), session_key=session_key, signer=content_signer, size=len(data)
        )
    )
    importer, finish = recs.content_cid()
    importer.write(segments)
    cid = finish()
    fields: dict[str, object] = {
        "title": "forged",
        "type": "lab",
        "date": None,
        "provider": None,
        "tags": [],
        "filename": "f.bin",
        "media_type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "cid": cid,
        "segments": 1,
        "segment_size": crypto.SEGMENT_SIZE,
    }
    own_pub = owner.key.public_key
    meta = {
        "id": record_id,
        "cid": cid,
        "size": len(segments),
        "segments": 1,
        "pkesk": to_b64(crypto.make_pkesk(session_key, own_pub)),
        "sealed_metadata": to_b64(
            crypto.seal_record_metadata(
                fields, record_id=record_id, recipients=[own_pub], signer=owner.key
            )
        ),
        "envelope": to_b64(
            crypto.seal_session_key_envelope(
                session_key, owner_public_key=own_pub, signer=owner.key
            )
        ),
    }
    owner.api.upload_record(meta, io.BytesIO(segments), filename=cid)
    rcpt_pub = recipient.key.public_key
    owner.api.create_grants(
        [
            {
                "record_id": record_id,
                "email": recipient.session.account.email,
                "pkesk": to_b64(crypto.make_pkesk(session_key, rcpt_pub)),
                "sealed_metadata": to_b64(
                    crypto.seal_record_metadata(
                        fields, record_id=record_id, recipients=[rcpt_pub], signer=metadata_signer
                    )
                ),
            }
        ]
    )
    return record_id


def test_record_signed_by_someone_else_is_refused(live: LiveApp, tmp_path: Path) -> None:
    mallory, bob = Party(live, "mallory@example.org"), Party(live, "bob@example.org")
    eve = make_person("eve@example.org").key
    # Metadata signed by another key than the owner's.
    rid = _forged_record(mallory, bob, content_signer=mallory.key, metadata_signer=eve)
    with pytest.raises(recs.RecordVerificationError, match="not signed by its owner"):
        shr.get_shared(bob.api, bob.session, rid, tmp_path / "a", contacts=bob.contacts)
    # Content signed by another key than the owner's (the metadata is the owner's).
    rid = _forged_record(mallory, bob, content_signer=eve, metadata_signer=mallory.key)
    with pytest.raises(recs.RecordVerificationError, match="signature verification"):
        shr.get_shared(bob.api, bob.session, rid, tmp_path / "b", contacts=bob.contacts)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # The owner's own client refuses to share such a record on.
    with pytest.raises(recs.RecordVerificationError):
        shr.share(
            mallory.api, mallory.session, [rid], ["ann@example.org"], contacts=mallory.contacts
        )


def test_swapped_envelope_is_caught_before_sharing(live: LiveApp, tmp_path: Path) -> None:
    """The envelope is not bound to the id: a server serving record B's envelope for A
    must not get the owner to hand out B's session key."""
    ann, _bob = Party(live, "ann@example.org"), Party(live, "bob@example.org")
    a = _put(ann, tmp_path, b"record A", "a.bin")
    b = _put(ann, tmp_path, b"record B", "b.bin")
    b_envelope = ann.api.get_record(b).envelope

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith(f"/records/{a}"):
            return _json_answer(response, response.json() | {"envelope": to_b64(b_envelope)})
        return response

    ann.tamper.rewrite = swap
    with pytest.raises(recs.RecordVerificationError, match="session key does not open"):
        shr.share(ann.api, ann.session, [a], ["bob@example.org"], contacts=ann.contacts)
    assert ann.api.list_grants().items == ()


def test_revoked_recipients_old_key_cannot_open_the_rotated_record(
    live: LiveApp, tmp_path: Path
) -> None:
    ann, bob, carl = (Party(live, f"{n}@example.org") for n in ("ann", "bob", "carl"))
    data = os.urandom(100_000)
    rid = _put(ann, tmp_path, data)
    shr.share(
        ann.api, ann.session, [rid], ["bob@example.org", "carl@example.org"], contacts=ann.contacts
    )
    old_pkesk = bob.api.get_shared(rid).pkesk
    shr.revoke(ann.api, rid, "bob@example.org")
    with pytest.raises(ApiError) as gone:
        bob.api.get_shared(rid)
    assert (gone.value.status, gone.value.code) == (404, "not_found")
    journal = shr.RotationJournal(None)
    done = shr.rotate(ann.api, ann.session, rid, contacts=ann.contacts, journal=journal)
    # Carl opens the new one; Bob's old PKESK does not open its ciphertext.
    shr.get_shared(carl.api, carl.session, done.new_id, tmp_path / "c", contacts=carl.contacts)
    assert (tmp_path / "c").read_bytes() == data
    with ann.api.record_content(done.new_id) as chunks:
        ciphertext = b"".join(chunks)
    with pytest.raises(crypto.DecryptionError):
        list(
            crypto.open_segments(
                io.BytesIO(ciphertext),
                signer_public_key=ann.key.public_key,
                pkesk=old_pkesk,
                key=bob.key,
            )
        )
    assert journal.get(live.url, rid) is None


def test_rotation_resumes_after_a_crash(live: LiveApp, tmp_path: Path) -> None:
    """Interrupted after the new record is stored (the grants call fails), a second run
    finishes it: one new record, the old one gone, the recipient kept."""
    ann, bob = Party(live, "ann@example.org"), Party(live, "bob@example.org")
    rid = _put(ann, tmp_path, b"resumable")
    shr.share(ann.api, ann.session, [rid], ["bob@example.org"], contacts=ann.contacts)
    journal = shr.RotationJournal(tmp_path / "rotations.json")

    ann.tamper.drop = lambda r: r.method == "POST" and r.url.path.endswith("/grants")
    with pytest.raises(ApiError):
        shr.rotate(ann.api, ann.session, rid, contacts=ann.contacts, journal=journal)
    entry = journal.get(live.url, rid)
    assert entry is not None
    assert {r.id for r in ann.api.list_records().items} == {rid, entry["new_id"]}  # both kept
    ann.tamper.drop = None
    done = shr.rotate(ann.api, ann.session, rid, contacts=ann.contacts, journal=journal)
    assert done.new_id == entry["new_id"]
    assert {r.id for r in ann.api.list_records().items} == {done.new_id}
    assert [s.id for s in bob.api.list_shared().items] == [done.new_id]
    assert json.loads((tmp_path / "rotations.json").read_text()) == {}


def test_grant_to_unknown_email_is_accepted_and_never_opens(live: LiveApp, tmp_path: Path) -> None:
    ann = Party(live, "ann@example.org")
    rid = _put(ann, tmp_path, b"for nobody")
    grants, pinned = shr.share(
        ann.api, ann.session, [rid], ["nobody@example.org"], contacts=ann.contacts
    )
    assert pinned[0].first_use and grants[0].email == "nobody@example.org"
    assert grants[0].fingerprint == pinned[0].fingerprint
    assert [g.email for g in ann.api.record_grants(rid).items] == ["nobody@example.org"]
    # An account made later under that email is not given it.
    late = Party(live, "nobody@example.org")
    assert late.api.list_shared().items == ()
    with pytest.raises(ApiError) as missing:
        late.api.get_shared(rid)
    assert missing.value.code == "not_found"
