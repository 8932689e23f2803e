"""The audit trail people can read (protocol §11): each action adds its events exactly
once, with the right kind, address and client, to its owner's trail only; ``GET /audit``
pages, filters by time and kind family, refuses bad parameters with stable codes; and no
route of the app edits or deletes an event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import update

from hygieia.client import account as acct
from hygieia.client import emergency as emg
from hygieia.client import links as lnk
from hygieia.client import records as recs
from hygieia.client import sharing as shr
from hygieia.client.contacts import Contacts
from hygieia.client.sdk import ApiError, AuditEvent, HygieiaClient
from hygieia.db.models import AuditEvent as AuditRow
from tests.support.accounts import TEST_KDF, new_account
from tests.support.live import LiveApp

PASSWORD = "activity test password 1"
NEW_PASSWORD = "activity test password 2"


class Trail:
    """An account's trail as its owner reads it, event by event since the last look."""

    def __init__(self, api: HygieiaClient) -> None:
        self.api = api
        self.seen = 0

    def new(self) -> list[AuditEvent]:
        events = [e for e in self.api.audit_all() if e.id > self.seen]
        events.reverse()  # oldest first
        if events:
            self.seen = events[-1].id
        return events

    def kinds(self) -> list[str]:
        return [e.event for e in self.new()]


def test_each_action_appears_once_with_its_kind(live: LiveApp, tmp_path: Path) -> None:
    api = HygieiaClient(live.url)
    signed = acct.signup(api, "ann@example.org", PASSWORD, kdf=TEST_KDF)
    with pytest.raises(ApiError):
        acct.login(HygieiaClient(live.url, client_kind="web"), "ann@example.org", "wrong!")
    session = acct.login(api, "ann@example.org", PASSWORD)
    api.token = session.token
    trail = Trail(HygieiaClient(live.url, token=session.token, client_kind="web"))
    first = trail.new()
    assert [e.event for e in first] == ["account.signup", "auth.login_failed", "auth.login"]
    assert [e.client for e in first] == ["cli", "web", "cli"]
    assert {e.address for e in first} == {"127.0.0.1"}
    assert first[2].user_agent is not None and first[2].user_agent.startswith("hygieia-cli/")

    src = tmp_path / "r.txt"
    src.write_text("a record")
    rid = recs.put(api, session, src).id
    assert [(e.event, e.detail.record_id) for e in trail.new()] == [("record.created", rid)]

    # The listing: one event for a walk through every page, not one per record or page.
    rid2 = recs.put(api, session, src).id
    assert trail.kinds() == ["record.created"]
    page = api.list_records(limit=1)
    assert page.next_cursor is not None
    api.list_records(limit=1, cursor=page.next_cursor)
    assert trail.kinds() == ["records.listed"]

    api.get_record(rid)
    assert [(e.event, e.detail.record_id) for e in trail.new()] == [("record.viewed", rid)]
    with api.record_content(rid) as chunks:
        assert b"".join(chunks)
    assert [(e.event, e.detail.record_id) for e in trail.new()] == [("record.read", rid)]
    # A record that isn't the caller's (or doesn't exist) leaves no read in the trail.
    with pytest.raises(ApiError):
        api.get_record("0b5c9a8e-2f4a-4c1e-9d2b-7a6e5f4d3c2b")
    assert trail.kinds() == []

    api.delete_record(rid2)
    assert [(e.event, e.detail.record_id) for e in trail.new()] == [("record.deleted", rid2)]

    # Sharing: the grant, the recipient's read.
    bob_api = HygieiaClient(live.url)
    bob = new_account(bob_api, "bob@example.org", PASSWORD)
    bob_api.token = bob.token
    shr.share(api, session, [rid], ["bob@example.org"], contacts=Contacts(None))
    shared = trail.kinds()  # the client reads the record to re-seal its key, then grants
    assert shared[-1] == "share.granted" and shared.count("share.granted") == 1
    assert set(shared[:-1]) <= {"record.viewed", "record.read"}
    shr.get_shared(bob_api, bob, rid, tmp_path / "shared.bin", contacts=Contacts(None))
    by_bob = [e for e in trail.new() if e.event == "share.content_read"]
    # Bob's doing, in Ann's trail: neither his address nor his client.
    assert [(e.address, e.client, e.user_agent) for e in by_bob] == [(None, None, None)]
    shr.revoke(api, rid, "bob@example.org")
    assert trail.kinds() == ["share.revoked"]

    # Emergency access.
    emg.add_contact(api, session, "bob@example.org", wait_days=7, contacts=Contacts(None))
    assert trail.kinds() == ["emergency.contact_added"]
    emg.request(bob_api, "ann@example.org")
    assert trail.kinds() == ["emergency.requested"]
    emg.deny(api, "bob@example.org")
    assert trail.kinds() == ["emergency.denied"]

    # A share link, made and revoked.
    lnk.create_link(api, session, [rid], expires_in=timedelta(days=1))
    made = trail.kinds()
    assert made.count("link.created") == 1
    link_id = api.list_links()[0]["id"]
    api.revoke_link(link_id)
    assert trail.kinds() == ["link.revoked"]

    # Password change, recovery, logout.
    acct.change_password(api, PASSWORD, NEW_PASSWORD, kdf=TEST_KDF)
    assert trail.kinds() == ["auth.password_changed"]
    acct.recover(
        HygieiaClient(live.url),
        "ann@example.org",
        signed.recovery_code,
        PASSWORD + "3",
        kdf=TEST_KDF,
    )
    # The trail's reader was logged out by the recovery; a new session reads on.
    again = acct.login(HygieiaClient(live.url), "ann@example.org", PASSWORD + "3")
    trail.api = HygieiaClient(live.url, token=again.token)
    assert trail.kinds() == ["auth.recovery_started", "auth.recovered", "auth.login"]
    HygieiaClient(live.url, token=again.token).logout()
    last = acct.login(HygieiaClient(live.url), "ann@example.org", PASSWORD + "3")
    trail.api = HygieiaClient(live.url, token=last.token)
    assert trail.kinds() == ["auth.logout", "auth.login"]

    # Bob's trail holds Bob's own doings only, none of Ann's.
    bob_events = {e.event for e in bob_api.audit_all()}
    assert {"account.signup", "auth.login"} <= bob_events
    assert not {
        e for e in bob_events if e.split(".")[0] in ("record", "share", "emergency", "link")
    }
    assert "auth.password_changed" not in bob_events and "auth.recovered" not in bob_events


@pytest.fixture
def busy(live: LiveApp) -> HygieiaClient:
    """An account with a known trail: sign-up, login, 7 failed logins, 5 record views."""
    api = HygieiaClient(live.url)
    acct.signup(api, "cy@example.org", PASSWORD, kdf=TEST_KDF)
    with live.engine.begin() as conn:  # older than anything that follows
        conn.execute(update(AuditRow).values(at=datetime(2026, 1, 1, tzinfo=UTC)))
    api.token = acct.login(api, "cy@example.org", PASSWORD).token
    live.settings.login_max_failures = 100
    live.settings.login_address_max_failures = 100
    for _ in range(7):
        with pytest.raises(ApiError):
            acct.login(HygieiaClient(live.url), "cy@example.org", "wrong password")
    for _ in range(5):
        with pytest.raises(ApiError):
            api.get_record("0b5c9a8e-2f4a-4c1e-9d2b-7a6e5f4d3c2b")  # 404: no event
    api.list_records()
    return api


def test_paging_walks_every_event_once(busy: HygieiaClient) -> None:
    whole = busy.audit_page(limit=500)
    assert whole.next is None and len(whole.events) == 10
    ids = [e.id for e in whole.events]
    assert ids == sorted(ids, reverse=True)
    walked: list[int] = []
    before = None
    pages = 0
    while True:
        page = busy.audit_page(limit=3, before=before)
        walked += [e.id for e in page.events]
        pages += 1
        if page.next is None:
            break
        before = page.next
    assert walked == ids and pages == 4
    assert [e.id for e in busy.audit_all()] == ids
    # A page that ends exactly at the last event says so.
    assert busy.audit_page(limit=10).next is None
    assert busy.audit_page(limit=9).next == ids[8]


def test_kind_filter_takes_events_and_families(busy: HygieiaClient) -> None:
    def kinds(*k: str) -> list[str]:
        return [e.event for e in busy.audit_all(kinds=k)]

    assert kinds("auth.login_failed") == ["auth.login_failed"] * 7
    assert kinds("auth") == ["auth.login_failed"] * 7 + ["auth.login"]
    assert kinds("records") == ["records.listed"]
    assert kinds("record") == []  # a family is a whole dotted prefix, not "record*"
    assert kinds("account", "records") == ["records.listed", "account.signup"]
    assert kinds("auth.login") == ["auth.login"]  # exact, not auth.login_failed
    page = busy.audit_page(limit=2, kinds=["auth.login_failed"])
    assert len(page.events) == 2 and page.next is not None
    rest = busy.audit_page(limit=100, kinds=["auth.login_failed"], before=page.next)
    assert len(rest.events) == 5 and rest.next is None


def test_since_and_until(busy: HygieiaClient) -> None:
    all_events = list(busy.audit_all())
    assert all_events[-1].event == "account.signup"
    recent = list(busy.audit_all(since="2026-06-01T00:00:00Z"))
    assert [e.id for e in recent] == [e.id for e in all_events[:-1]]
    old = busy.audit_page(until="2026-06-01T00:00:00+00:00").events
    assert [e.event for e in old] == ["account.signup"]
    assert busy.audit_page(since="2099-01-01T00:00:00Z").events == ()


def test_only_the_owner_reads_a_trail(live: LiveApp, busy: HygieiaClient) -> None:
    other = HygieiaClient(live.url)
    new_account(other, "dee@example.org", PASSWORD)
    mine = {e.id for e in busy.audit_all()}
    theirs = {e.id for e in other.audit_all()}
    assert theirs and not mine & theirs
    # A cursor from another trail shows only one's own events below it.
    assert {e.id for e in other.audit_page(before=max(mine) + 1).events} <= theirs


BAD = [
    "limit=0",
    "limit=501",
    "limit=x",
    "before=0",
    "before=-4",
    "before=abc",
    "since=yesterday",
    "since=2026-11-01T00:00:00",  # no offset
    "until=2026-13-01T00:00:00Z",
    "kind=Record",
    "kind=record.",
    "kind=.record",
    "kind=a.b.c",
    "kind=" + "a" * 65,
    "kind=rec%00ord",
    "kind=record%25",
]


@pytest.mark.parametrize("query", BAD)
def test_bad_parameters_are_refused_with_a_stable_code(
    live: LiveApp, busy: HygieiaClient, query: str
) -> None:
    r = httpx.get(
        f"{live.url}/api/v1/audit?{query}", headers={"authorization": f"Bearer {busy.token}"}
    )
    assert r.status_code == 422, (query, r.status_code, r.text)
    assert r.json()["code"] == "validation_error"


def _routes(routes: list[Any]) -> Iterator[tuple[str, set[str]]]:
    """Every endpoint (path, methods) of the app, through included routers too."""
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI's included routers
        if inner is not None:
            yield from _routes(list(inner.routes))
        elif isinstance(route, APIRoute):
            yield route.path, set(route.methods or ())


def test_no_route_edits_or_deletes_audit_events(live: LiveApp) -> None:
    """Append-only: the only route that reaches the trail reads it (GET /audit); no route
    whose path names it takes PUT, PATCH or DELETE, and no other method exists on /audit.
    Checked on the app's routes and on its OpenAPI document."""
    routes = list(_routes(list(live.app.routes)))
    assert len(routes) > 30  # the walk found the API
    documented = [
        (path, {m.upper() for m in ops}) for path, ops in live.app.openapi()["paths"].items()
    ]
    for found in (routes, documented):
        trail = [(p, sorted(m)) for p, m in found if "audit" in p or "event" in p]
        assert [(p.removeprefix("/api/v1"), m) for p, m in trail] == [("/audit", ["GET"])]
        for path, methods in found:
            if methods & {"PUT", "PATCH", "DELETE"}:
                assert "audit" not in path and "event" not in path, path
    # And over HTTP: every other method on /audit is refused.
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = httpx.request(method, f"{live.url}/api/v1/audit")
        assert r.status_code == 405, method
