"""Grants over the real API on both databases (protocol §7): the owner's access trail,
replacing a grant, deleting a shared record, batches, pages, and what a decoy grant
looks like to its owner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from hygieia.client import records as recs
from hygieia.client import sharing as shr
from hygieia.client.contacts import Contacts
from hygieia.client.sdk import ApiError, HygieiaClient
from tests.support.accounts import new_account
from tests.support.live import LiveApp

PW = "sharing api password 31"


def _party(live: LiveApp, email: str) -> tuple[HygieiaClient, Any]:
    api = live.client()
    session = new_account(api, email, PW)
    api.token = session.token
    return api, session


def _record(api: HygieiaClient, session: Any, tmp_path: Path, name: str = "r.bin") -> str:
    (tmp_path / name).write_bytes(name.encode())
    return recs.put(api, session, tmp_path / name).id


def test_access_trail_is_the_owners(live: LiveApp, tmp_path: Path) -> None:
    ann, ann_s = _party(live, "ann@example.org")
    bob, _ = _party(live, "bob@example.org")
    rid = _record(ann, ann_s, tmp_path)
    shr.share(ann, ann_s, [rid], ["bob@example.org"], contacts=Contacts(None))
    bob.list_shared()
    bob.get_shared(rid)  # metadata again within the hour: no second event
    for _ in range(2):
        with bob.shared_content(rid) as chunks:
            b"".join(chunks)
    events = [e for e in ann.audit() if e.event.startswith("share.")]
    names = [e.event for e in events]
    assert names.count("share.metadata_read") == 1
    assert names.count("share.content_read") == 2
    assert names.count("share.granted") == 1
    for e in events:
        assert (e.detail.record_id, e.detail.recipient) == (rid, "bob@example.org")
        if e.event.endswith("_read"):
            assert e.address is None  # the recipient's address is not the owner's business
    assert not [e for e in bob.audit() if e.event.startswith("share.")]
    # Other events keep an empty detail.
    login = next(e for e in ann.audit() if e.event == "auth.login")
    assert login.detail.record_id is None and login.detail.recipient is None


def test_replace_batch_pages_and_record_deletion(live: LiveApp, tmp_path: Path) -> None:
    ann, ann_s = _party(live, "ann@example.org")
    bob, _ = _party(live, "bob@example.org")
    ids = [_record(ann, ann_s, tmp_path, f"r{i}.bin") for i in range(3)]
    contacts = Contacts(None)
    first, _ = shr.share(ann, ann_s, ids, ["bob@example.org"], contacts=contacts)
    assert [g.record_id for g in first] == ids  # in the order sent
    again, _ = shr.share(ann, ann_s, ids[:1], ["bob@example.org"], contacts=contacts)
    assert again[0].id == first[0].id  # replaced, not doubled
    assert len(ann.record_grants(ids[0]).items) == 1
    page = ann.list_grants(limit=2)
    assert len(page.items) == 2 and page.next_cursor
    rest = ann.list_grants(limit=2, cursor=page.next_cursor)
    assert {g.id for g in page.items + rest.items} == {g.id for g in first}
    assert rest.next_cursor is None
    shared = bob.list_shared(limit=2)
    assert len(shared.items) == 2 and shared.next_cursor
    more = bob.list_shared(limit=2, cursor=shared.next_cursor)
    assert {s.id for s in shared.items + more.items} == set(ids)
    # Deleting the record deletes its grants: 404 for the recipient at once.
    ann.delete_record(ids[1])
    with pytest.raises(ApiError) as gone:
        bob.get_shared(ids[1])
    assert gone.value.code == "not_found"
    assert {g.record_id for g in ann.list_grants().items} == {ids[0], ids[2]}
    r = httpx.get(
        f"{live.url}/api/v1/grants",
        params={"cursor": "junk"},
        headers={"authorization": f"Bearer {ann.token}"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")


def test_decoy_grant_looks_like_any_other_to_its_owner(live: LiveApp, tmp_path: Path) -> None:
    ann, ann_s = _party(live, "ann@example.org")
    _party(live, "bob@example.org")
    rid = _record(ann, ann_s, tmp_path)
    grants, _ = shr.share(
        ann, ann_s, [rid], ["bob@example.org", "nobody@example.org"], contacts=Contacts(None)
    )
    real, decoy = grants
    assert set(vars(real)) == set(vars(decoy))
    assert decoy.fingerprint == ann.user_key("nobody@example.org").fingerprint
    shr.revoke(ann, rid, "nobody@example.org")
    assert [g.email for g in ann.record_grants(rid).items] == ["bob@example.org"]
