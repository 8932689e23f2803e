"""Records on several stores, end to end: two real js-ipfs nodes and the embedded store,
uploads over HTTP, the replicator and scrub driven one turn at a time, on both databases.

The nodes are restartable (tests/support/ipfs_nodes.py): "the copy appears once the
node is back" stops one and starts the same node again. The pinning service is a
spec-following fake that really pins into the second node over bitswap, from the
``origins`` Hygieia sends (tests/support/pinning_service.py).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hygieia import server
from hygieia.api import create_app
from hygieia.client import records as recs
from hygieia.client.account import LoggedIn
from hygieia.client.sdk import ApiError, HygieiaClient, RecordCopies, RecordItem
from hygieia.config import Settings
from hygieia.db.models import AuditEvent, PendingPin, Record, RecordCopy
from hygieia.errors import StorageUnavailable
from hygieia.ipfs import CID, RAW, FileImporter, decode_dag_pb, parse_cid
from hygieia.services import copies
from hygieia.services.common import Clock, utcnow
from hygieia.storage import KuboBlobStore, LocalBlobStore, StoreSet
from hygieia.storage.kubo import ADD_PARAMS
from hygieia.storage.pinning import PinningService
from tests.support.accounts import new_account
from tests.support.ipfs_nodes import IpfsNode, ipfs_nodes
from tests.support.ipfs_server import IpfsServerError, _repo_parent
from tests.support.kdf import TEST_KDF_FLOOR
from tests.support.pinning_service import pinning_service
from tests.support.server import threaded_server

pytestmark = pytest.mark.ipfs

PW = "copies test password 1"
TOKEN = "psa-test-token"


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[IpfsNode]]:
    with tempfile.TemporaryDirectory(prefix="hygieia-copies-", dir=_repo_parent()) as tmp:
        try:
            with ipfs_nodes(Path(tmp), 2) as started:
                yield started
        except (IpfsServerError, OSError) as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"js-ipfs nodes unavailable in CI: {exc}", pytrace=False)
            pytest.skip(f"js-ipfs nodes unavailable: {exc}")


@pytest.fixture(autouse=True)
def _nodes_up(nodes: list[IpfsNode]) -> None:
    """Every test starts with both nodes running (a test may have stopped one)."""
    for node in nodes:
        node.start()


def node_id(node: IpfsNode) -> str:
    return f"kubo:127.0.0.1:{node.api_port}"


def kubo(node: IpfsNode) -> KuboBlobStore:
    # js-ipfs looks for an absent block until the lookup deadline, even offline.
    return KuboBlobStore(node.api, timeout=20, lookup_timeout=0.5)


@dataclass
class Vault:
    url: str
    stores: StoreSet
    db: Session
    user: LoggedIn
    api: HygieiaClient
    tmp: Path
    settings: Settings

    def put(self, data: bytes, name: str = "scan.bin") -> RecordItem:
        src = self.tmp / name
        src.write_bytes(data)
        return recs.put(self.api, self.user, src, recs.RecordFields(title=name))

    def rows(self, record_id: str) -> dict[str, str]:
        self.db.expire_all()
        found = self.db.execute(
            select(RecordCopy.store, RecordCopy.state).where(RecordCopy.record_id == record_id)
        ).all()
        self.db.commit()
        return {store: state for store, state in found}

    def replicate(self, *, ahead: timedelta = timedelta(0)) -> copies.ReplicationReport:
        return copies.replicate(self.db, self.stores, now=lambda: utcnow() + ahead)

    def scrub(self, *, repair: bool) -> copies.ScrubReport:
        # Each run checks what was checked before it began: a clock that moves on.
        return copies.scrub(self.db, self.stores, repair=repair, now=_ticking())


def _ticking() -> Clock:
    start = utcnow() + timedelta(seconds=1)
    step = [0]

    def clock() -> datetime:
        step[0] += 1
        return start + timedelta(microseconds=step[0])

    return clock


@pytest.fixture
def vault_factory(
    db_url: str, tmp_path: Path, nodes: list[IpfsNode]
) -> Iterator[Callable[[StoreSet], Vault]]:
    opened: list[Any] = []

    def open_vault(stores: StoreSet) -> Vault:
        settings = Settings(
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
        app = create_app(settings, store=stores)
        ctx = threaded_server(app)
        url = ctx.__enter__()
        opened.append(ctx)
        api = HygieiaClient(url)
        user = new_account(api, f"u{len(opened)}@example.org", PW)
        db = app.state.sessionmaker()
        opened.append(db)
        return Vault(url, stores, db, user, api, tmp_path, settings)

    yield open_vault
    for thing in reversed(opened):
        if isinstance(thing, Session):
            thing.close()
        else:
            thing.__exit__(None, None, None)


VaultFactory = Callable[[StoreSet], Vault]


def payload(size: int, seed: int = 1) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(size))


def download(vault: Vault, record_id: str) -> bytes:
    out = vault.tmp / f"{record_id}.out"
    recs.get(vault.api, vault.user, record_id, out)
    return out.read_bytes()


# -- write policy --------------------------------------------------------------------
def test_min_two_copies_pins_every_acknowledged_record_on_both(
    vault_factory: VaultFactory, nodes: list[IpfsNode]
) -> None:
    a, b = nodes
    v = vault_factory(StoreSet([(node_id(a), kubo(a)), (node_id(b), kubo(b))], min_copies=2))
    for size in (0, 1, 2_500_000):
        data = payload(size, seed=size % 13)
        item = v.put(data, name=f"r{size}.bin")
        assert item.copies is not None and (item.copies.ok, item.copies.total) == (2, 2)
        assert kubo(a).is_pinned(item.cid) and kubo(b).is_pinned(item.cid)
        assert v.rows(item.id) == {node_id(a): "ok", node_id(b): "ok"}
        assert download(v, item.id) == data
    listed = v.api.list_records().items
    assert [(i.copies.ok, i.copies.total) for i in listed if i.copies] == [(2, 2)] * 3


def test_one_node_down_then_back(vault_factory: VaultFactory, nodes: list[IpfsNode]) -> None:
    a, b = nodes
    v = vault_factory(StoreSet([(node_id(a), kubo(a)), (node_id(b), kubo(b))], min_copies=1))
    b.stop()
    data = payload(1_500_000, seed=5)
    item = v.put(data)
    assert item.copies is not None and (item.copies.ok, item.copies.total) == (1, 2)
    assert v.rows(item.id) == {node_id(a): "ok", node_id(b): "pending"}

    report = v.replicate()  # b is still down: retried later, with backoff
    assert report.failed == [(item.id, node_id(b))] and not report.copied
    assert v.replicate().failed == []  # not due yet
    b.start()
    report = v.replicate(ahead=timedelta(hours=2))
    assert report.copied == [(item.id, node_id(b))]
    assert kubo(b).is_pinned(item.cid)
    assert b"".join(kubo(b).get(item.cid)) == b"".join(kubo(a).get(item.cid))
    got = v.api.get_record(item.id).copies
    assert got is not None and (got.ok, got.total) == (2, 2)
    a.stop()  # the copy made in the background serves the record alone
    assert download(v, item.id) == data


def test_every_store_down_is_503_and_nothing_written(
    vault_factory: VaultFactory, nodes: list[IpfsNode]
) -> None:
    a, b = nodes
    v = vault_factory(StoreSet([(node_id(a), kubo(a)), (node_id(b), kubo(b))], min_copies=1))
    before = {n.api: set(kubo(n).pins()) for n in nodes}
    a.stop()
    b.stop()
    with pytest.raises(ApiError) as caught:
        v.put(payload(700_000, seed=9))
    assert (caught.value.status, caught.value.code) == (503, "storage_unavailable")
    for model in (Record, RecordCopy, PendingPin):
        assert v.db.scalar(select(func.count()).select_from(model)) == 0
    v.db.commit()
    a.start()
    b.start()
    assert {n.api: set(kubo(n).pins()) for n in nodes} == before


def test_min_copies_refused_when_fewer_stores_reachable(
    vault_factory: VaultFactory, nodes: list[IpfsNode]
) -> None:
    a, b = nodes
    v = vault_factory(StoreSet([(node_id(a), kubo(a)), (node_id(b), kubo(b))], min_copies=2))
    before = set(kubo(a).pins())
    b.stop()
    with pytest.raises(ApiError) as caught:
        v.put(payload(300_000, seed=3))
    assert (caught.value.status, caught.value.code) == (503, "storage_unavailable")
    assert v.db.scalar(select(func.count()).select_from(Record)) == 0
    v.db.commit()
    assert set(kubo(a).pins()) == before


# -- the put's fan-out: one DAG, every node -----------------------------------------
class _SwallowsImports(httpx.BaseTransport):
    """A node that lies: it answers 200 to ``dag/import`` but keeps nothing (the body
    is read and dropped); every other call reaches the real node."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/dag/import"):
            for _ in request.stream:  # type: ignore[union-attr]
                pass
            return httpx.Response(200, text="")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class _FlipsABlock(httpx.BaseTransport):
    """A path that corrupts: one byte of the first leaf in the ``dag/import`` body is
    flipped on its way to the real node."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/dag/import"):
            request.stream = _Flipped(request.stream)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class _Flipped(httpx.SyncByteStream):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        flipped = False
        for piece in self.inner:
            if not flipped and len(piece) >= 1 << 20:  # a whole 1 MiB leaf
                piece = bytes([piece[0] ^ 0xFF]) + piece[1:]
                flipped = True
            yield piece


def _put(stores: StoreSet, data: bytes, *, midway: Callable[[], None] | None = None) -> str:
    """A put in pieces of 256 KiB; ``midway`` runs once half the data is written."""
    writer = stores.writer()
    try:
        step = 256 * 1024
        for i in range(0, len(data), step):
            if midway is not None and i >= len(data) // 2:
                midway()
                midway = None
            writer.write(data[i : i + step])
        cid = writer.finish()
    except BaseException:
        writer.abort()
        raise
    assert getattr(writer, "holders", None) is not None
    return cid


def _car(store: KuboBlobStore | LocalBlobStore, cid: str) -> bytes:
    out = io.BytesIO()
    store.export_car(cid, out)
    return out.getvalue()


def test_put_builds_the_dag_once_and_every_store_holds_it(
    nodes: list[IpfsNode], tmp_path: Path
) -> None:
    a, b = nodes
    local = LocalBlobStore(tmp_path / "blocks")
    stores = StoreSet(
        [("local", local), (node_id(a), kubo(a)), (node_id(b), kubo(b))], min_copies=3
    )
    data = payload(3 * (1 << 20) + 12_345, seed=21)
    writer = stores.writer()
    for i in range(0, len(data), 100_000):
        writer.write(data[i : i + 100_000])
    cid = writer.finish()
    assert getattr(writer, "holders", None) == ["local", node_id(a), node_id(b)]
    # The CID a node computes itself (`add` with the same parameters) is ours.
    added = httpx.post(
        f"{a.api}/api/v0/add",
        params={**ADD_PARAMS, "only-hash": "true"},
        files={"file": ("blob", data)},
        timeout=60,
    )
    assert parse_cid(added.json()["Hash"]) == parse_cid(cid)
    # Every store holds the same DAG, block for block; nothing is pinned by the put.
    assert _car(kubo(a), cid) == _car(kubo(b), cid) == _car(local, cid)
    assert b"".join(kubo(b).get(cid)) == data
    assert not kubo(a).is_pinned(cid) and not kubo(b).is_pinned(cid)
    assert stores.pin_copies(cid) == ["local", node_id(a), node_id(b)]
    assert kubo(a).is_pinned(cid) and kubo(b).is_pinned(cid) and local.is_pinned(cid)
    stores.unpin(cid)


def test_node_dying_mid_put_is_dropped_while_enough_remain(nodes: list[IpfsNode]) -> None:
    a, b = nodes
    stores = StoreSet([(node_id(a), kubo(a)), (node_id(b), kubo(b))], min_copies=1)
    data = payload(4 * (1 << 20), seed=22)
    writer = stores.writer()
    step = 256 * 1024
    for i in range(0, len(data), step):
        if i == len(data) // 2:
            b.stop()
        writer.write(data[i : i + step])
    cid = writer.finish()
    assert getattr(writer, "holders", None) == [node_id(a)]
    assert b"".join(kubo(a).get(cid)) == data
    b.start()
    assert not kubo(b).has(cid)  # the root never reached it
    kubo(a).unpin(cid)
    writer.abort()  # the caller's refusal still removes what the put added
    assert not kubo(a).has(cid)


def test_node_dying_mid_put_below_min_copies_leaves_nothing(nodes: list[IpfsNode]) -> None:
    a, b = nodes
    stores = StoreSet([(node_id(a), kubo(a)), (node_id(b), kubo(b))], min_copies=2)
    before = {n.api: set(kubo(n).pins()) for n in nodes}
    data = payload(4 * (1 << 20), seed=23)
    with pytest.raises(StorageUnavailable):
        _put(stores, data, midway=b.stop)
    b.start()
    cid = str(_cid_of(data))
    assert not kubo(a).has(cid) and not kubo(b).has(cid)
    assert {n.api: set(kubo(n).pins()) for n in nodes} == before


def test_node_that_keeps_nothing_is_not_counted(nodes: list[IpfsNode]) -> None:
    a, b = nodes
    liar = KuboBlobStore(b.api, timeout=20, lookup_timeout=0.5, transport=_SwallowsImports())
    data = payload(2 * (1 << 20) + 7, seed=24)
    cid = str(_cid_of(data))
    # min 2: the liar's copy is missing when checked, so the put fails, leaving nothing.
    two = StoreSet([(node_id(a), kubo(a)), ("liar", liar)], min_copies=2)
    with pytest.raises(StorageUnavailable):
        _put(two, data)
    assert not kubo(a).has(cid)
    # min 1: acknowledged on the honest node only, and only it is pinned.
    one = StoreSet([(node_id(a), kubo(a)), ("liar", liar)], min_copies=1)
    writer = one.writer()
    writer.write(data)
    assert writer.finish() == cid
    assert getattr(writer, "holders", None) == [node_id(a)]
    assert one.pin_copies(cid, getattr(writer, "holders", None)) == [node_id(a)]
    assert kubo(a).is_pinned(cid) and not kubo(b).has(cid)
    kubo(a).unpin(cid)


def test_a_block_corrupted_on_its_way_to_a_node_is_found_by_scrub(
    nodes: list[IpfsNode], tmp_path: Path
) -> None:
    """The node does not re-hash what ``dag/import`` brings (neither js-ipfs nor Kubo
    does), so the put can't see it; the scrub's re-hash does."""
    a, b = nodes
    flipping = KuboBlobStore(b.api, timeout=20, lookup_timeout=0.5, transport=_FlipsABlock())
    stores = StoreSet([(node_id(a), kubo(a)), (node_id(b), flipping)], min_copies=2)
    data = payload(2 * (1 << 20) + 99, seed=25)
    cid = _put(stores, data)
    assert copies.check_copy(kubo(a), cid).whole
    assert not copies.check_copy(kubo(b), cid).whole
    kubo(b).drop_blocks(cid, list(_blocks_of(data)))
    assert not kubo(b).has(cid)


def _cid_of(data: bytes) -> CID:
    importer = FileImporter(lambda _cid, _block: None)
    importer.write(data)
    return importer.finish()


def _blocks_of(data: bytes) -> Iterator[CID]:
    found: list[CID] = []
    importer = FileImporter(lambda cid, _block: found.append(cid))
    importer.write(data)
    importer.finish()
    yield from found


# -- scrub and repair ----------------------------------------------------------------
def test_pin_removed_behind_hygieias_back_is_remade(
    vault_factory: VaultFactory, nodes: list[IpfsNode], tmp_path: Path
) -> None:
    a, _ = nodes
    local = LocalBlobStore(tmp_path / "blocks")
    v = vault_factory(StoreSet([("local", local), (node_id(a), kubo(a))], min_copies=2))
    item = v.put(payload(1_200_000, seed=2))
    a.rpc("pin/rm", arg=item.cid)
    assert not kubo(a).is_pinned(item.cid)

    report = v.scrub(repair=False)
    assert report.damaged == [(item.id, node_id(a), "not pinned")]
    assert v.rows(item.id)[node_id(a)] == "bad"
    assert v.api.get_record(item.id).copies == RecordCopies(ok=1, total=2)

    report = v.scrub(repair=True)
    assert report.repaired == [(item.id, node_id(a))] and not report.lost
    assert kubo(a).is_pinned(item.cid)
    assert v.rows(item.id) == {"local": "ok", node_id(a): "ok"}


def _leaf_paths(local: LocalBlobStore, cid: str) -> list[Path]:
    root = parse_cid(cid)
    block = local.read_block(root)
    assert block is not None
    links = decode_dag_pb(block).links
    assert links and all(link.codec == RAW for link in links)
    return [local._block_path(link) for link in links]


def _flip(path: Path) -> bytes:
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(bad))
    return good


def test_corrupt_block_in_embedded_store_is_repaired_byte_identical(
    vault_factory: VaultFactory, nodes: list[IpfsNode], tmp_path: Path
) -> None:
    a, _ = nodes
    local = LocalBlobStore(tmp_path / "blocks")
    v = vault_factory(StoreSet([("local", local), (node_id(a), kubo(a))], min_copies=2))
    data = payload(3_500_000, seed=4)
    item = v.put(data)
    leaf = _leaf_paths(local, item.cid)[1]
    good = _flip(leaf)

    report = v.scrub(repair=False)
    assert report.damaged == [(item.id, "local", "1 block(s) corrupt")]
    assert not report.lost

    report = v.scrub(repair=True)
    assert report.repaired == [(item.id, "local")]
    assert leaf.read_bytes() == good
    assert b"".join(local.get(item.cid)) == b"".join(kubo(a).get(item.cid))
    assert download(v, item.id) == data
    assert v.scrub(repair=False).damaged == []


def test_record_with_no_good_copy_is_reported(
    vault_factory: VaultFactory,
    nodes: list[IpfsNode],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, _ = nodes
    local = LocalBlobStore(tmp_path / "data" / "blocks")
    v = vault_factory(StoreSet([("local", local), (node_id(a), kubo(a))], min_copies=2))
    kept = v.put(payload(400_000, seed=7), name="kept.bin")
    item = v.put(payload(2_200_000, seed=8), name="lost.bin")
    _flip(_leaf_paths(local, item.cid)[0])
    # The node's copy goes too: unpinned and its blocks removed behind Hygieia's back.
    a.rpc("pin/rm", arg=item.cid)
    a.rpc("repo/gc")
    assert not kubo(a).has(item.cid)

    # The server's own command, on the same configuration.
    for key, value in {
        "HYGIEIA_DATA_DIR": str(v.settings.data_dir),
        "HYGIEIA_DATABASE_URL": v.settings.database_url,
        "HYGIEIA_IPFS_API": f"local,{a.api}",
        "HYGIEIA_MIN_COPIES": "2",
    }.items():
        monkeypatch.setenv(key, value)
    assert server.admin_scrub(repair=True) == 1
    out = capsys.readouterr()
    assert f"record {item.id}: no good copy left on any store" in out.err
    assert kept.id not in out.err
    assert v.rows(item.id) == {"local": "bad", node_id(a): "bad"}
    assert v.rows(kept.id) == {"local": "ok", node_id(a): "ok"}
    trail = v.api.request("GET", "/audit").json()["events"]
    assert len([e for e in trail if e["event"] == "record.copies_lost"]) == 1
    events = v.db.scalars(select(AuditEvent).where(AuditEvent.event == "record.copies_lost"))
    assert [(e.user_id, e.detail) for e in events] == [(v.user.account.id, {"record_id": item.id})]
    v.db.commit()
    # Reported again, but not added to the trail twice.
    assert server.admin_scrub(repair=True) == 1
    trail = v.api.request("GET", "/audit").json()["events"]
    assert len([e for e in trail if e["event"] == "record.copies_lost"]) == 1


# -- a remote pinning service --------------------------------------------------------
def _until(check: Callable[[], object], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_pinning_service_pins_from_origins_and_failed_is_retried(
    vault_factory: VaultFactory, nodes: list[IpfsNode], tmp_path: Path
) -> None:
    a, b = nodes
    with pinning_service(b.api, token=TOKEN, pin_timeout=15) as fake:
        psa_id = f"psa:{fake.url.removeprefix('http://')}"
        service = PinningService(fake.url, auth_header=f"Bearer {TOKEN}")
        stores = StoreSet(
            [("local", LocalBlobStore(tmp_path / "blocks")), (node_id(a), kubo(a))],
            min_copies=2,
            services=[(psa_id, service)],
        )
        v = vault_factory(stores)
        data = payload(2_100_000, seed=11)
        item = v.put(data)
        assert item.copies is not None and (item.copies.ok, item.copies.total) == (2, 3)

        report = v.replicate()
        assert report.requested == [(item.id, psa_id)]
        a_addrs = kubo(a).origins()
        assert a_addrs and fake.origins_seen == [a_addrs]

        def pinned() -> bool:
            v.replicate(ahead=timedelta(hours=2))
            return v.rows(item.id)[psa_id] == "ok"

        _until(pinned)
        assert kubo(b).is_pinned(item.cid)  # really pinned, over bitswap from node a
        assert b"".join(kubo(b).get(item.cid)) == b"".join(kubo(a).get(item.cid))

        # A request the service fails: followed to `failed`, then asked again.
        fake.fail_next = 1
        other = v.put(payload(600_000, seed=12), name="other.bin")
        assert v.replicate().requested == [(other.id, psa_id)]

        def failed() -> bool:
            return bool(v.replicate(ahead=timedelta(hours=2)).failed)

        _until(failed, 20)
        row = v.db.get(RecordCopy, (other.id, psa_id))
        assert row is not None and row.state == "pending" and row.request_id is None
        assert row.error == "the pinning service failed to pin it" and row.attempts >= 1
        v.db.commit()
        _until(lambda: v.replicate(ahead=timedelta(days=1)) and v.rows(other.id)[psa_id] == "ok")
        assert kubo(b).is_pinned(other.cid)

        # Deleting the record removes the service's pin too.
        v.api.delete_record(item.id)
        assert not any(p["pin"]["cid"] == item.cid for p in fake.pins.values())
        assert not kubo(b).is_pinned(item.cid)


# -- configuration -------------------------------------------------------------------
def test_store_list_with_credentials_and_local() -> None:
    from hygieia.storage.replicas import parse_endpoints

    got = parse_endpoints(
        "local, https://al:pa%20ss@ipfs.example.org:5001/, http://tok3n@10.0.0.2:5001,"
        "http://127.0.0.1:5002",
        prefix="kubo",
        default_auth="Bearer fallback",
    )
    assert [e.id for e in got] == [
        "local",
        "kubo:ipfs.example.org:5001",
        "kubo:10.0.0.2:5001",
        "kubo:127.0.0.1:5002",
    ]
    assert got[1].url == "https://ipfs.example.org:5001"
    assert got[1].auth_header == "Basic YWw6cGEgc3M="  # al:pa ss
    assert got[2].auth_header == "Bearer tok3n"
    assert got[3].auth_header == "Bearer fallback"
    assert "pa" not in repr(got) and "tok3n" not in repr(got)
    with pytest.raises(ValueError, match="twice"):
        parse_endpoints("http://h:1,http://u:p@h:1", prefix="kubo")
    with pytest.raises(ValueError) as caught:
        parse_endpoints("ftp://user:secret@h", prefix="kubo")
    assert "secret" not in str(caught.value)


def test_settings_build_the_store_set(tmp_path: Path) -> None:
    from hygieia.storage import default_store_id, make_store, open_stores

    settings = Settings(
        data_dir=tmp_path,
        ipfs_api="local,http://127.0.0.1:9",
        pinning_services="https://t0ken@pins.example.org/psa",
        min_copies=2,
    )
    stores = open_stores(settings)
    assert stores.ids == ["local", "kubo:127.0.0.1:9", "psa:pins.example.org/psa"]
    assert stores.min_copies == 2
    stores.close()
    with pytest.raises(ValueError, match="MIN_COPIES"):
        make_store(settings.model_copy(update={"min_copies": 3}))
    single = Settings(data_dir=tmp_path)
    assert default_store_id(single) == "local"
    assert open_stores(single).ids == ["local"]


def test_replicator_and_scrub_run_in_one_process_at_a_time(db_url: str) -> None:
    """The copies lease: a second process (engine) skips its turn while one holds it,
    on PostgreSQL an advisory lock, on SQLite a flock beside the database."""
    from sqlalchemy.orm import sessionmaker

    from hygieia.db.engine import make_engine
    from hygieia.services import maintenance
    from hygieia.storage import MemoryBlobStore

    first, second = make_engine(db_url), make_engine(db_url)
    store = StoreSet([("memory", MemoryBlobStore())])
    try:
        with maintenance.lease(first, maintenance.COPIES_LEASE_KEY) as got:
            assert got
            sessions = sessionmaker(second)
            assert not maintenance.replicate(second, sessions, store).ran
            assert not maintenance.scrub(second, sessions, store, repair=True).ran
            with maintenance.lease(second) as other:
                assert other  # reconcile's lease is another one
        assert maintenance.replicate(second, sessionmaker(second), store).ran
    finally:
        first.dispose()
        second.dispose()


def test_scrub_budget_spreads_a_pass_over_runs(vault_factory: VaultFactory) -> None:
    """A budgeted scrub stops once it has read its bytes (a copy is checked whole), and
    the next run goes on with the copies checked longest ago: a full pass over runs."""
    from hygieia.storage import MemoryBlobStore

    v = vault_factory(StoreSet([("m1", MemoryBlobStore()), ("m2", MemoryBlobStore())]))
    for i in range(3):
        v.put(payload(300_000, seed=20 + i), name=f"b{i}.bin")
    start = utcnow()
    seen: set[tuple[str, str]] = set()
    for run in range(1, 7):
        report = copies.scrub(v.db, v.stores, repair=False, budget_bytes=1, now=_ticking())
        assert report.checked == 1 and report.unfinished and not report.damaged
        rows = v.db.execute(
            select(RecordCopy.record_id, RecordCopy.store).where(RecordCopy.checked_at > start)
        ).all()
        v.db.commit()
        seen = {(r, s) for r, s in rows}
        assert len(seen) == run  # each run took a copy no earlier run had checked
    full = copies.scrub(v.db, v.stores, repair=False, now=_ticking())
    assert full.checked == 6 and not full.unfinished
