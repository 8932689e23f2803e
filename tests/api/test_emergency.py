"""Emergency access over the real API on both databases (protocol §8): deny, the wait
passing on the app's clock (never a sleep), early approval, ended access, removal, the
owner's trail, the server's checks, and a server that swaps the sealed vault key."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from hygieia import crypto
from hygieia.client import emergency as emg
from hygieia.client import records as recs
from hygieia.client.contacts import Contacts
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.db.models import EmergencyContact
from hygieia.encoding import to_b64
from tests.support.accounts import new_account
from tests.support.live import LiveApp

PW = "emergency api password 31"
BOB = "bob@example.org"
ANN = "ann@example.org"


def _party(live: LiveApp, email: str) -> tuple[HygieiaClient, Any]:
    api = live.client()
    session = new_account(api, email, PW)
    api.token = session.token
    return api, session


@pytest.fixture
def pair(live: LiveApp, tmp_path: Path) -> dict[str, Any]:
    """Ann (two records) names Bob her emergency contact with a 7-day wait."""
    ann, ann_s = _party(live, ANN)
    bob, bob_s = _party(live, BOB)
    files = {}
    for name, data in (("a.txt", b"first record"), ("b.bin", bytes(range(256)) * 300)):
        (tmp_path / name).write_bytes(data)
        files[recs.put(ann, ann_s, tmp_path / name).id] = data
    contact, pinned = emg.add_contact(ann, ann_s, BOB, wait_days=7, contacts=Contacts(None))
    assert (contact.status, contact.wait_days, pinned.fingerprint) == (
        "idle",
        7,
        bob_s.account.fingerprint,
    )
    return {"ann": ann, "ann_s": ann_s, "bob": bob, "bob_s": bob_s, "files": files}


def _refused(call: Any) -> None:
    with pytest.raises(ApiError) as exc:
        call()
    assert (exc.value.status, exc.value.code) == (404, "not_found")


def _nothing_released(bob: HygieiaClient, access_id: str, rid: str) -> None:
    _refused(lambda: bob.emergency_vault(access_id))
    _refused(lambda: bob.emergency_records(access_id))
    _refused(lambda: bob.emergency_record(access_id, rid))

    def content() -> None:
        with bob.emergency_record_content(access_id, rid) as chunks:
            b"".join(chunks)

    _refused(content)


def _events(api: HygieiaClient) -> list[str]:
    return [e.event for e in api.audit() if e.event.startswith("emergency.")]


def test_denied_request_releases_nothing(live: LiveApp, pair: dict[str, Any]) -> None:
    ann, bob = pair["ann"], pair["bob"]
    rid = next(iter(pair["files"]))
    access = emg.request(bob, ANN)
    assert access.status == "requested" and access.requested_at and access.release_at
    # The owner is told: the contact listing and the trail.
    (mine,) = ann.emergency_contacts().items
    assert (mine.status, mine.requested_at) == ("requested", access.requested_at)
    assert "emergency.requested" in _events(ann)
    _nothing_released(bob, access.id, rid)
    emg.deny(ann, BOB)
    live.clock.advance(days=8)
    _nothing_released(bob, access.id, rid)
    assert emg.find_access(bob, ANN).status == "idle"
    assert _events(ann)[0] == "emergency.denied"
    with pytest.raises(emg.EmergencyError, match="no access"):
        emg.open_vault(bob, pair["bob_s"], ANN, contacts=Contacts(None))
    assert not _events(bob)  # every event is the owner's


def test_wait_passes_then_contact_reads_every_record(
    live: LiveApp, pair: dict[str, Any], tmp_path: Path
) -> None:
    ann, bob, bob_s = pair["ann"], pair["bob"], pair["bob_s"]
    access = emg.request(bob, ANN)
    assert emg.request(bob, ANN).requested_at == access.requested_at  # asking again: no change
    live.clock.advance(days=6, hours=23, minutes=59)
    _nothing_released(bob, access.id, next(iter(pair["files"])))
    live.clock.advance(minutes=2)
    assert emg.find_access(bob, ANN).status == "granted"
    contacts = Contacts(None)
    vault = emg.open_vault(bob, bob_s, ANN, contacts=contacts)
    assert vault.owner.fingerprint == pair["ann_s"].account.fingerprint
    assert vault.owner.first_use  # pinned now
    listed = {r.id: r for r in emg.iter_records(bob, vault)}
    assert set(listed) == set(pair["files"])
    for rid, data in pair["files"].items():
        target, meta = emg.get(bob, vault, rid, tmp_path / f"out-{rid}")
        assert target.read_bytes() == data and meta["sha256"] == listed[rid].meta["sha256"]
    events = _events(ann)
    assert events.count("emergency.content_read") == 2 and "emergency.vault_released" in events
    reads = [e for e in ann.audit() if e.event == "emergency.content_read"]
    assert {e.detail.record_id for e in reads} == set(pair["files"])
    assert all(e.address is None and e.detail.contact == BOB for e in reads)
    # Removing the contact ends it at once.
    emg.remove_contact(ann, BOB)
    _nothing_released(bob, access.id, next(iter(pair["files"])))
    assert bob.emergency_access().items == ()
    assert _events(ann)[0] == "emergency.contact_removed"


def test_early_approval_and_ended_access(live: LiveApp, pair: dict[str, Any]) -> None:
    ann, bob = pair["ann"], pair["bob"]
    rid = next(iter(pair["files"]))
    with pytest.raises(ApiError) as nothing:
        emg.approve(ann, BOB)  # nothing asked yet
    assert nothing.value.code == "no_pending_request"
    access = emg.request(bob, ANN)
    assert emg.approve(ann, BOB).status == "granted"
    assert len(bob.emergency_records(access.id).items) == 2
    # Ending the access: 404 at once, and a new request waits the whole period again.
    assert emg.deny(ann, BOB).status == "idle"
    assert _events(ann)[:2] == ["emergency.ended", "emergency.approved"]
    _nothing_released(bob, access.id, rid)
    again = emg.request(bob, ANN)
    assert again.status == "requested"
    _nothing_released(bob, access.id, rid)
    # Re-adding a contact clears its request.
    emg.add_contact(ann, pair["ann_s"], BOB, wait_days=3, contacts=Contacts(None))
    assert emg.find_access(bob, ANN).status == "idle"


def test_server_checks_and_decoys(live: LiveApp, pair: dict[str, Any]) -> None:
    ann, ann_s, bob_s = pair["ann"], pair["ann_s"], pair["bob_s"]
    headers = {"authorization": f"Bearer {ann.token}"}
    me = ann_s.unlock()

    def post(body: dict[str, Any]) -> tuple[int, str]:
        r = httpx.post(f"{live.url}/api/v1/emergency/contacts", json=body, headers=headers)
        return r.status_code, r.json().get("code", "")

    def sealed_to(public_key: str) -> str:
        return to_b64(
            crypto.seal_emergency_vault_key(
                ann_s.vault_key, contact_email=BOB, contact_public_key=public_key, signer=me
            )
        )

    good = {"email": BOB, "wait_days": 7, "sealed_vault_key": sealed_to(bob_s.account.public_key)}
    assert post({**good, "sealed_vault_key": sealed_to(me.public_key)}) == (422, "pkesk_mismatch")
    assert post({**good, "email": ANN}) == (422, "emergency_to_self")
    for wait in (0, 31, "7"):
        assert post({**good, "wait_days": wait}) == (422, "validation_error")
    assert post({**good, "sealed_vault_key": to_b64(b"junk")})[0] == 422
    # An email without an account: accepted like any other (its decoy's key), never usable.
    made, _ = emg.add_contact(
        ann, ann_s, "nobody@example.org", wait_days=2, contacts=Contacts(None)
    )
    assert made.fingerprint == ann.user_key("nobody@example.org").fingerprint
    assert {c.email for c in ann.emergency_contacts().items} == {BOB, "nobody@example.org"}


def test_requests_race_to_one(live: LiveApp, pair: dict[str, Any]) -> None:
    bob = pair["bob"]
    access_id = emg.find_access(bob, ANN).id
    barrier = threading.Barrier(8)
    answers: list[str | None] = []

    def ask() -> None:
        with HygieiaClient(live.url, token=bob.token) as api:
            barrier.wait()
            answers.append(api.request_emergency(access_id).requested_at)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(answers)) == 1
    assert _events(pair["ann"]).count("emergency.requested") == 1


def test_contact_refuses_a_swapped_vault_key(live: LiveApp, pair: dict[str, Any]) -> None:
    """A server that hands Bob a vault key sealed by someone else (Mallory's own, to make
    him read her vault as Ann's) is caught: not signed by Ann's pinned key."""
    bob, bob_s = pair["bob"], pair["bob_s"]
    _mal, mal_s = _party(live, "mallory@example.org")
    forged = crypto.seal_emergency_vault_key(
        mal_s.vault_key,
        contact_email=BOB,
        contact_public_key=bob_s.account.public_key,
        signer=mal_s.unlock(),
    )
    access = emg.request(bob, ANN)
    emg.approve(pair["ann"], BOB)
    contacts = Contacts(None)
    emg.open_vault(bob, bob_s, ANN, contacts=contacts)  # pins Ann's key
    with live.engine.begin() as conn:
        conn.execute(
            update(EmergencyContact)
            .where(EmergencyContact.id == access.id)
            .values(sealed_vault_key=forged)
        )
    with pytest.raises(emg.EmergencyError, match="failed verification"):
        emg.open_vault(bob, bob_s, ANN, contacts=contacts)
