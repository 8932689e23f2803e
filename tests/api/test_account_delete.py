"""Deleting an account over real HTTP, on both databases, with records on the embedded
store and a js-ipfs node: nothing of the account is left in any table (every column of
every row searched), no pin of its records or link files is left on either store,
other accounts keep their own rows and records, and the email can sign up again. A
wrong password, a crash in the middle, an unreachable store, an account with a second
factor (TOTP through the API, pyotp as the app) and an upload racing the deletion are
covered too."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import Engine, func, select

from hygieia import crypto
from hygieia.api import create_app
from hygieia.client import account as acct
from hygieia.client import emergency as emg
from hygieia.client import links as lnk
from hygieia.client import records as recs
from hygieia.client import sharing as shr
from hygieia.client.account import LoggedIn
from hygieia.client.contacts import Contacts
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.config import Settings
from hygieia.db.models import (
    AuditEvent,
    AuthSession,
    Base,
    PendingPin,
    Record,
    ShareLinkFile,
    Throttle,
)
from hygieia.encoding import to_b64
from hygieia.errors import StorageUnavailable
from hygieia.ipfs import normalize_cid
from hygieia.services import leaving, ratelimit
from hygieia.services import records as record_service
from hygieia.storage import KuboBlobStore, LocalBlobStore, StoreSet
from tests.support.accounts import new_account
from tests.support.kdf import TEST_KDF_FLOOR
from tests.support.live import LiveApp
from tests.support.server import threaded_server

ANN = "ann.leaving@example.org"
BOB = "bob.staying@example.org"
PW = "leaving the vault for good 7"
PW_BOB = "staying in the vault 8 times"


class FlakyStore(LocalBlobStore):
    """The embedded store, whose unpins fail while ``down`` (a store out of reach)."""

    down = False

    def unpin(self, cid: str) -> None:
        if self.down:
            raise StorageUnavailable("test: store down")
        super().unpin(cid)


@dataclass
class Server:
    url: str
    engine: Engine
    app: Any
    stores: StoreSet

    def client(self, token: str | None = None) -> HygieiaClient:
        return HygieiaClient(self.url, token=token, timeout=120)

    def pins(self) -> dict[str, set[str]]:
        return {
            name: {normalize_cid(c) for c in store.pins()}
            for name, store in self.stores.members.items()
        }


def _settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        store="local",
        kdf_min_memory_kib=TEST_KDF_FLOOR.m,
        kdf_min_passes=TEST_KDF_FLOOR.t,
        reconcile_on_start=False,
        reconcile_interval_seconds=0,
        replicate_interval_seconds=0,
        scrub_interval=0,
    )


@pytest.fixture
def serve(db_url: str, tmp_path: Path) -> Iterator[Callable[[StoreSet], Server]]:
    started: list[Any] = []

    def start(stores: StoreSet) -> Server:
        app = create_app(_settings(db_url, tmp_path), store=stores)
        ctx = threaded_server(app)
        url = ctx.__enter__()
        started.append(ctx)
        return Server(url=url, engine=app.state.engine, app=app, stores=stores)

    yield start
    for ctx in reversed(started):
        ctx.__exit__(None, None, None)


@pytest.fixture
def server(serve: Callable[[StoreSet], Server], tmp_path: Path, ipfs_api: str) -> Server:
    """The embedded store and a js-ipfs node, both taking every record."""
    node = KuboBlobStore(ipfs_api, timeout=60, lookup_timeout=0.5)
    local = LocalBlobStore(tmp_path / "blocks")
    return serve(StoreSet([("local", local), ("kubo:test", node)], min_copies=2))


@dataclass
class Party:
    api: HygieiaClient
    session: LoggedIn
    records: list[str]


def _party(server: Server, email: str, password: str, tmp_path: Path, n: int) -> Party:
    api = server.client()
    session = new_account(api, email, password)
    api.token = session.token
    ids = []
    for i in range(n):
        f = tmp_path / f"{email}-{i}.bin"
        f.write_bytes(f"{email} record {i} ".encode() * (200 + i))
        ids.append(recs.put(api, session, f, recs.RecordFields(title=f"r{i}")).id)
    return Party(api, session, ids)


def _world(server: Server, tmp_path: Path) -> tuple[Party, Party, dict[str, set[str]]]:
    """Ann (two records) and Bob (one) share with each other both ways, name each other
    emergency contacts, Ann makes a link; returns them and Ann's needles."""
    ann = _party(server, ANN, PW, tmp_path, 2)
    bob = _party(server, BOB, PW_BOB, tmp_path, 1)
    shr.share(ann.api, ann.session, [ann.records[0]], [BOB], contacts=Contacts(None))
    shr.share(bob.api, bob.session, [bob.records[0]], [ANN], contacts=Contacts(None))
    emg.add_contact(ann.api, ann.session, BOB, wait_days=3, contacts=Contacts(None))
    emg.add_contact(bob.api, bob.session, ANN, wait_days=3, contacts=Contacts(None))
    emg.request(bob.api, ANN)  # Bob asks for Ann's vault: an event in Ann's trail
    lnk.create_link(ann.api, ann.session, [ann.records[1]], expires_in=timedelta(days=1))
    # Bob opens what Ann shared: share.* events in Ann's trail.
    shr.get_shared(
        bob.api, bob.session, ann.records[0], tmp_path / "bob-got.bin", contacts=Contacts(None)
    )
    # A failed login of Ann's (an attributable throttle bucket) and a key lookup.
    with server.client() as stranger, pytest.raises(ApiError):
        stranger.login(ANN, to_b64(b"\x07" * 32))
    ann.api.user_key(BOB)

    with server.engine.connect() as conn:
        cids = set(
            conn.scalars(select(Record.cid).where(Record.owner_id == ann.session.account.id))
        )
        file_cids = set(conn.scalars(select(ShareLinkFile.cid)))
        sessions = set(
            conn.scalars(
                select(AuthSession.id).where(AuthSession.user_id == ann.session.account.id)
            )
        )
    assert len(cids) == 2 and len(file_cids) == 1
    needles = {
        "ids": {ann.session.account.id, *ann.records, *sessions},
        "text": {ANN, ann.session.account.fingerprint},
        "cids": {normalize_cid(c) for c in cids | file_cids},
    }
    return ann, bob, needles


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _found(engine: Engine, needles: dict[str, set[str]]) -> list[str]:
    """Every (table, column) whose value holds one of the needles, in any row."""
    words = {n.casefold() for group in needles.values() for n in group}
    hits = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    text = _cell_text(value).casefold()
                    hits += [f"{table.name}.{column}: {w}" for w in words if w in text]
    return hits


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


def _delete(server: Server, token: str, auth_key: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/auth/account/delete",
        json={"auth_key": to_b64(auth_key), "factor": None},
        headers={"authorization": f"Bearer {token}"},
        timeout=120,
    )


def _kdf(kdf: Any) -> crypto.KdfParams:
    return crypto.KdfParams.from_dict(kdf)


def test_deletion_leaves_nothing_of_the_account(server: Server, tmp_path: Path) -> None:
    ann, bob, needles = _world(server, tmp_path)
    # The search finds Ann everywhere before: it can fail.
    before = _found(server.engine, needles)
    for table in ("users.email", "sessions.user_id", "records.id", "record_grants.email"):
        assert any(h.startswith(table) for h in before), table
    assert any(h.startswith("audit_events.detail") for h in before)  # Bob's trail names Ann
    pins = server.pins()
    for name, pinned in pins.items():
        assert needles["cids"] <= pinned, name
    with server.engine.connect() as conn:
        bob_cid = normalize_cid(
            conn.execute(
                select(Record.cid).where(Record.owner_id == bob.session.account.id)
            ).scalar_one()
        )
    policy = ratelimit.Policy(free=1, delay_seconds=1, window_seconds=1)
    failed_login = ratelimit.bucket("login", policy, ANN, "127.0.0.1").key
    with server.engine.connect() as conn:
        assert conn.scalar(select(Throttle.key).where(Throttle.key == failed_login))

    acct.delete_account(ann.api, PW)

    assert _found(server.engine, needles) == []
    with server.engine.connect() as conn:
        assert conn.scalar(select(Throttle.key).where(Throttle.key == failed_login)) is None
        assert conn.scalar(select(func.count()).select_from(PendingPin)) == 0
        bob_trail = list(
            conn.scalars(
                select(AuditEvent.detail).where(AuditEvent.user_id == bob.session.account.id)
            )
        )
    assert {"recipient": leaving.REDACTED} in [
        {k: v for k, v in d.items() if k == "recipient"} for d in bob_trail
    ]
    # No pin of Ann's records or link file on either store; Bob's record stays pinned.
    for name, pinned in server.pins().items():
        assert not needles["cids"] & pinned, name
        assert bob_cid in pinned, name
    # Ann's session is dead; Bob keeps his record, loses what Ann shared and his grant
    # and emergency ties to her.
    with pytest.raises(ApiError) as gone:
        ann.api.me()
    assert gone.value.status == 401
    assert [r.id for r in bob.api.list_records().items] == bob.records
    out = tmp_path / "bob-own.bin"
    recs.get(bob.api, bob.session, bob.records[0], out)
    assert out.read_bytes().startswith(BOB.encode())
    assert bob.api.list_shared().items == ()
    assert bob.api.list_grants().items == ()
    assert bob.api.emergency_contacts().items == ()
    assert bob.api.emergency_access().items == ()
    # The email is free again: unknown-email stand-ins, then a new account.
    with server.client() as api:
        pre = api.prelogin(ANN)
        assert pre.salt != ann.session.account.salt
        assert api.prelogin(ANN) == pre
        again = new_account(api, ANN, "a fresh start for the same email 9")
        assert again.account.id != ann.session.account.id
        assert api.list_records().items == ()


def test_wrong_password_deletes_nothing(server: Server, tmp_path: Path) -> None:
    ann, _, needles = _world(server, tmp_path)
    counts, pins = _counts(server.engine), server.pins()
    r = _delete(server, ann.session.token, b"\x01" * 32)
    assert (r.status_code, r.json()["code"]) == (401, "invalid_credentials")
    # A typo in the client fails before anything is sent.
    with pytest.raises(crypto.DecryptionError):
        acct.delete_account(ann.api, PW + "x")
    after = _counts(server.engine)
    assert after.pop("audit_events") == counts.pop("audit_events") + 1  # the failure
    after.pop("throttle"), counts.pop("throttle")
    assert after == counts and server.pins() == pins
    assert ann.api.me().email == ANN
    # No session, or another account's session: nothing either.
    r = httpx.post(f"{server.url}/api/v1/auth/account/delete", json={"auth_key": to_b64(b"1" * 32)})
    assert r.status_code == 401
    assert len(_found(server.engine, needles)) > 0


def test_crash_midway_leaves_everything(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, _, needles = _world(server, tmp_path)
    counts, pins = _counts(server.engine), server.pins()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("test: the server dies mid-way")

    monkeypatch.setattr(leaving, "_redact_others_audit", crash)
    r = _delete(server, ann.session.token, ann_auth_key(server, ann))
    assert r.status_code == 500
    assert _counts(server.engine) == counts and server.pins() == pins
    assert ann.api.me().email == ANN
    monkeypatch.undo()
    acct.delete_account(ann.api, PW)
    assert _found(server.engine, needles) == []


def ann_auth_key(server: Server, ann: Party) -> bytes:
    me = ann.api.me()
    return crypto.derive_keys(PW, me.salt, _kdf(me.kdf)).auth_key


def test_unreachable_store_is_left_to_reconcile(
    serve: Callable[[StoreSet], Server], tmp_path: Path
) -> None:
    flaky = FlakyStore(tmp_path / "flaky")
    local = LocalBlobStore(tmp_path / "blocks")
    stores = StoreSet([("local", local), ("flaky", flaky)], min_copies=2)
    server = serve(stores)
    ann = _party(server, ANN, PW, tmp_path, 2)
    cids = {normalize_cid(c) for c in server.pins()["flaky"]}
    assert len(cids) == 2
    flaky.down = True
    acct.delete_account(ann.api, PW)
    # The account is gone; the reachable store let go; the other's unpins wait, durably.
    assert not cids & server.pins()["local"]
    assert cids <= server.pins()["flaky"]
    with server.engine.connect() as conn:
        waiting = {normalize_cid(c) for c in conn.scalars(select(PendingPin.cid))}
    assert waiting == cids
    flaky.down = False
    with server.app.state.sessionmaker() as db:
        report = record_service.reconcile(db, stores, grace=timedelta(minutes=10))
    assert {normalize_cid(c) for c in report.unpinned} == cids
    assert not cids & server.pins()["flaky"]
    with server.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(PendingPin)) == 0


def test_an_account_with_a_factor_must_prove_it(live: LiveApp, tmp_path: Path) -> None:
    """TOTP enrolled through the API (pyotp plays the authenticator app): no factor, or a
    wrong code, deletes nothing; a current code deletes the account, factors and backup
    codes included."""
    api = live.client()
    session = new_account(api, ANN, PW)
    api.token = session.token
    started = api.start_totp("Phone")
    totp = pyotp.TOTP(started.secret)
    first = totp.now()
    confirmed = api.confirm_totp(started.factor_id, first)
    assert confirmed.backup_codes
    src = tmp_path / "r.bin"
    src.write_bytes(b"a record behind a second factor")
    recs.put(api, session, src)
    needles = {"ids": {session.account.id}, "text": {ANN, session.account.fingerprint}}
    counts = _counts(live.engine)
    assert counts["user_factors"] == 1 and counts["backup_codes"] == 10

    auth_key = crypto.derive_keys(PW, session.account.salt, _kdf(session.account.kdf)).auth_key
    headers = {"authorization": f"Bearer {session.token}"}

    def delete(factor: dict[str, str] | None) -> httpx.Response:
        return httpx.post(
            f"{live.url}/api/v1/auth/account/delete",
            json={"auth_key": to_b64(auth_key), "factor": factor},
            headers=headers,
        )

    r = delete(None)
    assert (r.status_code, r.json()["code"]) == (401, "factor_required")
    used = first  # spent by the confirmation: a replay is refused too (not totp.now(),
    # which is a fresh code if a 30 s step began since: the flake seen once)
    valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)
    for code in (wrong, used):
        r = delete({"method": "totp", "code": code})
        assert (r.status_code, r.json()["code"]) == (401, "factor_invalid"), code
    r = delete({"method": "backup_code", "code": "not-a-backup-code"})
    assert (r.status_code, r.json()["code"]) == (401, "factor_invalid")
    after = _counts(live.engine)
    for table in ("audit_events", "throttle", "sessions"):
        after.pop(table), counts.pop(table)
    assert after == counts and api.me().email == ANN

    r = delete({"method": "totp", "code": totp.at(time.time() + 30)})
    assert r.status_code == 204, r.text
    assert _found(live.engine, needles) == []
    gone = _counts(live.engine)
    assert gone["user_factors"] == gone["backup_codes"] == gone["users"] == 0


def test_an_upload_racing_the_deletion_leaves_no_pin(
    live: LiveApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload that reaches the server while the deletion holds the account: it can't
    commit its record (PostgreSQL: its foreign key waits for the account's row lock;
    SQLite: the write lock), so it fails and releases its pin; nothing is left."""
    api = live.client()
    session = new_account(api, ANN, PW)
    api.token = session.token
    first = tmp_path / "first.bin"
    first.write_bytes(b"the record before")
    recs.put(api, session, first)
    store = live.app.state.store
    before = set(store.pins())
    late = tmp_path / "late.bin"
    late.write_bytes(b"the record uploaded while the account is being deleted")
    outcome: list[BaseException | str] = []

    def upload() -> None:
        with HygieiaClient(live.url, token=session.token) as other:
            try:
                outcome.append(recs.put(other, session, late).id)
            except BaseException as exc:
                outcome.append(exc)

    thread = threading.Thread(target=upload)
    real = leaving._blobs_of

    def blobs_with_an_upload_in_flight(db: Any, user_id: str) -> Any:
        thread.start()  # the account's row is held from here to the commit
        # PostgreSQL: the upload pins, then waits at its record's insert. SQLite: it
        # waits for the write lock before it can even note its pin, so none comes.
        deadline = time.monotonic() + 8
        while set(store.pins()) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        return real(db, user_id)

    monkeypatch.setattr(leaving, "_blobs_of", blobs_with_an_upload_in_flight)
    acct.delete_account(api, PW)
    thread.join(timeout=120)
    assert len(outcome) == 1 and isinstance(outcome[0], ApiError), outcome
    # A clear 401, not a 500: the account (and so the session) is gone.
    assert (outcome[0].status, outcome[0].code) == (401, "token_revoked"), outcome
    assert set(store.pins()) == set()
    counts = _counts(live.engine)
    assert counts["records"] == counts["pending_pins"] == counts["users"] == 0
