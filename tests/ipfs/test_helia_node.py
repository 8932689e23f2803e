"""The second IPFS node: Helia pins from js-ipfs over bitswap and serves a trustless
gateway on its own; the tamper proxy in front of it lies in each of its ways."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hygieia.ipfs import CID, DAG_PB, RAW, FileImporter, decode_dag_pb, parse_cid
from hygieia.ipfs._cid import decode_varint
from hygieia.storage.kubo import KuboBlobStore
from tests.support import helia_node
from tests.support.helia_node import HeliaNode, helia_fixture, running_helia
from tests.support.ipfs_server import IpfsServerError, _repo_parent, running_ipfs
from tests.support.tamper_gateway import Tamper, TamperGateway, running_tamper_gateway

MiB = 1024 * 1024
CAR = "application/vnd.ipld.car"
RAW_TYPE = "application/vnd.ipld.raw"

Stored = tuple[CID, dict[CID, bytes], bytes]  # root, blocks, file


# -- helpers ---------------------------------------------------------------------------


def import_blocks(data: bytes) -> tuple[CID, dict[CID, bytes]]:
    """Hygieia's own UnixFS import (raw leaves, CIDv1, 1 MiB chunks): root and blocks."""
    blocks: dict[CID, bytes] = {}
    importer = FileImporter(blocks.__setitem__)
    importer.write(data)
    return importer.finish(), blocks


def read_car(body: bytes) -> list[tuple[CID, bytes]]:
    """The (CID, block) sections of a CARv1, header skipped (its roots are ignored)."""
    header_len, pos = decode_varint(body, 0)
    pos += header_len
    sections: list[tuple[CID, bytes]] = []
    while pos < len(body):
        size, pos = decode_varint(body, pos)
        section = body[pos : pos + size]
        assert len(section) == size, "a CAR section is cut short"
        pos += size
        cid_len = 34 if section[:2] == b"\x12\x20" else 36
        sections.append((CID.from_bytes(section[:cid_len]), section[cid_len:]))
    return sections


def reassemble(root: CID, blocks: dict[CID, bytes]) -> bytes:
    """The file's bytes from its verified blocks, walking the DAG; KeyError if one lacks."""
    block = blocks[root]
    if root.codec == RAW:
        return block
    node = decode_dag_pb(block)
    return (node.data or b"") + b"".join(reassemble(link, blocks) for link in node.links)


def verified_car(body: bytes) -> dict[CID, bytes]:
    """Every section's block hashed against its CID; a wrong one fails the assertion."""
    sections = read_car(body)
    for cid, block in sections:
        assert cid.verify(block), f"CAR block {cid} does not match its CID"
    return dict(sections)


def fetch_raw_dag(gateway: str, root: CID) -> dict[CID, bytes]:
    """Walk a DAG block by block over ``?format=raw``, hashing each block."""
    blocks: dict[CID, bytes] = {}
    todo = [root]
    while todo:
        cid = todo.pop()
        r = httpx.get(f"{gateway}/ipfs/{cid}", params={"format": "raw"}, timeout=30)
        assert r.status_code == 200, (cid, r.status_code, r.text)
        assert r.headers["content-type"] == RAW_TYPE
        assert cid.verify(r.content), f"raw block {cid} does not match its CID"
        blocks[cid] = r.content
        if cid.codec == DAG_PB:
            todo.extend(decode_dag_pb(r.content).links)
    return blocks


def put_dag(node: HeliaNode, data: bytes) -> tuple[CID, dict[CID, bytes]]:
    """Plant a file's blocks straight into the Helia node (no js-ipfs needed)."""
    root, blocks = import_blocks(data)
    for cid, block in blocks.items():
        stored = node.put_block(block, codec="raw" if cid.codec == RAW else "dag-pb")
        assert stored == str(cid)
    return root, blocks


def gateway_get(url: str, cid: CID | str, fmt: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}/ipfs/{cid}", params={"format": fmt, **params}, timeout=30)


@pytest.fixture(scope="module")
def helia() -> Iterator[HeliaNode]:
    yield from helia_fixture()


@pytest.fixture(scope="module")
def stored(helia: HeliaNode) -> Stored:
    """A 3.5 MiB file (3 full leaves, a partial one, a dag-pb root) on the Helia node."""
    data = os.urandom(3 * MiB + MiB // 2)
    root, blocks = put_dag(helia, data)
    return root, blocks, data


@pytest.fixture
def tamper(helia: HeliaNode) -> Iterator[TamperGateway]:
    with running_tamper_gateway(helia.gateway_url) as gw:
        yield gw


# -- the replica: js-ipfs → bitswap → Helia, then js-ipfs gone -------------------------


def test_helia_pins_from_js_ipfs_and_serves_every_block_after_it_stops() -> None:
    big = os.urandom(9 * MiB + 12345)  # 10 leaves under one dag-pb root
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=_repo_parent())))
        try:
            helia = stack.enter_context(running_helia(tmp / "helia"))
            ipfs_stack = contextlib.ExitStack()
            stack.enter_context(ipfs_stack)
            api = ipfs_stack.enter_context(running_ipfs(tmp / "js-ipfs"))
        except (helia_node.HeliaNodeError, IpfsServerError) as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"IPFS test nodes unavailable in CI: {exc}", pytrace=False)
            pytest.skip(f"IPFS test nodes unavailable: {exc}")

        # Upload the way the server does, on js-ipfs; the CIDs are Hygieia's own.
        store = KuboBlobStore(api)
        stack.callback(store.close)
        files = {data: parse_cid(store.put([data])) for data in (b"", big)}
        for data, cid in files.items():
            assert cid == import_blocks(data)[0]

        helia.connect_to(api)
        assert helia.pin(str(files[big])) == 11
        assert helia.pin(str(files[b""])) == 1
        assert sorted(helia.pins()) == sorted(str(c) for c in files.values())

        ipfs_stack.close()  # js-ipfs is gone: everything now comes from Helia's disk
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{api}/api/v0/version", timeout=2)
        deadline = time.monotonic() + 10
        while helia.peers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert helia.peers() == []

        for data, root in files.items():
            blocks = fetch_raw_dag(helia.gateway_url, root)
            assert reassemble(root, blocks) == data

            r = gateway_get(helia.gateway_url, root, "car")
            assert r.status_code == 200
            assert r.headers["content-type"] == f"{CAR}; version=1; order=dfs; dups=n"
            from_car = verified_car(r.content)
            assert next(cid for cid, _ in read_car(r.content)) == root  # dfs: the root first
            assert from_car == blocks
            assert reassemble(root, from_car) == data

        # Nothing but loopback: the libp2p address, and every socket the node holds.
        assert all(ma.startswith("/ip4/127.0.0.1/tcp/") for ma in helia.multiaddrs)
        sockets = helia.sockets()
        assert sockets, "the node holds at least its two listeners"
        for sock in sockets:
            assert sock.proto.startswith("tcp"), sock
            assert ipaddress.ip_address(sock.local[0]).is_loopback, sock
            assert (
                sock.remote[0] in ("0.0.0.0", "::")
                or ipaddress.ip_address(sock.remote[0]).is_loopback
            ), sock


def test_pin_repairs_a_missing_block_from_a_peer(tmp_path: Path) -> None:
    """A block deleted on the Helia node (pinned or not) comes back over bitswap."""
    data = os.urandom(2 * MiB + 1)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=_repo_parent())))
        try:
            helia = stack.enter_context(running_helia(tmp / "helia"))
            api = stack.enter_context(running_ipfs(tmp / "js-ipfs"))
        except (helia_node.HeliaNodeError, IpfsServerError) as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"IPFS test nodes unavailable in CI: {exc}", pytrace=False)
            pytest.skip(f"IPFS test nodes unavailable: {exc}")
        store = KuboBlobStore(api)
        stack.callback(store.close)
        root = store.put([data])
        helia.connect_to(api)
        assert helia.pin(root) == 4
        leaf = decode_dag_pb(helia.get_block(root)).links[1]
        assert helia.remove_block(str(leaf))
        assert not helia.has(str(leaf))
        assert gateway_get(helia.gateway_url, leaf, "raw").status_code == 404
        assert helia.pin(root) == 4  # re-walks the pinned DAG, fetching what is missing
        assert helia.has(str(leaf))
        cid = parse_cid(root)
        assert reassemble(cid, fetch_raw_dag(helia.gateway_url, cid)) == data


# -- the gateway on its own -------------------------------------------------------------


def test_probe_and_raw_block(helia: HeliaNode, stored: Stored) -> None:
    probe = gateway_get(helia.gateway_url, "bafkqaaa", "raw")
    assert (probe.status_code, probe.content) == (200, b"")
    root, blocks, _ = stored
    leaf = decode_dag_pb(blocks[root]).links[0]
    by_accept = httpx.get(f"{helia.gateway_url}/ipfs/{leaf}", headers={"Accept": RAW_TYPE})
    assert by_accept.status_code == 200
    assert by_accept.content == blocks[leaf] and leaf.verify(by_accept.content)
    assert by_accept.headers["access-control-allow-origin"] == "*"
    assert by_accept.headers["x-content-type-options"] == "nosniff"
    head = httpx.head(f"{helia.gateway_url}/ipfs/{leaf}?format=raw")
    assert head.status_code == 200 and head.headers["content-length"] == str(MiB)


def test_gateway_answers_only_what_it_holds(helia: HeliaNode) -> None:
    absent = CID.for_block(RAW, b"never stored anywhere " + os.urandom(8))
    assert gateway_get(helia.gateway_url, absent, "raw").status_code == 404
    assert gateway_get(helia.gateway_url, absent, "car").status_code == 404
    # Trustless only: no deserialized responses, no paths, no bad CIDs.
    assert httpx.get(f"{helia.gateway_url}/ipfs/bafkqaaa").status_code == 406
    assert gateway_get(helia.gateway_url, "not-a-cid", "raw").status_code == 400
    assert httpx.get(f"{helia.gateway_url}/ipfs/bafkqaaa/a?format=raw").status_code == 501


def test_cors_preflight(helia: HeliaNode) -> None:
    r = httpx.options(
        f"{helia.gateway_url}/ipfs/bafkqaaa",
        headers={
            "Origin": "http://127.0.0.1:9",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "accept",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "GET" in r.headers["access-control-allow-methods"]


def test_car_scopes_and_accept(helia: HeliaNode) -> None:
    root, blocks = put_dag(helia, os.urandom(MiB + 7))
    by_accept = httpx.get(
        f"{helia.gateway_url}/ipfs/{root}",
        headers={"Accept": f"{CAR}; version=1; order=dfs; dups=y"},
    )
    assert by_accept.status_code == 200
    assert by_accept.headers["content-type"] == f"{CAR}; version=1; order=dfs; dups=y"
    assert verified_car(by_accept.content) == blocks
    only_root = gateway_get(helia.gateway_url, root, "car", **{"dag-scope": "block"})
    assert [cid for cid, _ in read_car(only_root.content)] == [root]
    assert gateway_get(helia.gateway_url, root, "car", **{"car-version": "2"}).status_code == 400


def test_car_stops_at_a_missing_child(helia: HeliaNode) -> None:
    data = os.urandom(3 * MiB)
    root, blocks = put_dag(helia, data)
    links = decode_dag_pb(blocks[root]).links
    assert helia.remove_block(str(links[1]))
    r = gateway_get(helia.gateway_url, root, "car")
    assert r.status_code == 200  # the spec's "cut short": the client must notice
    assert [cid for cid, _ in read_car(r.content)] == [root, links[0]]
    with pytest.raises(KeyError):
        reassemble(root, verified_car(r.content))


# -- the tamper proxy ---------------------------------------------------------------------


def test_tamper_passes_through_untouched(tamper: TamperGateway, stored: Stored) -> None:
    root, _blocks, data = stored
    assert reassemble(root, fetch_raw_dag(tamper.url, root)) == data
    car = gateway_get(tamper.url, root, "car")
    assert car.headers["content-type"].startswith(CAR)
    assert reassemble(root, verified_car(car.content)) == data
    probe = httpx.options(f"{tamper.url}/ipfs/bafkqaaa")
    assert probe.headers["access-control-allow-origin"] == "*"
    assert tamper.requests and not tamper.tampered


def test_tamper_flip_raw_and_car(tamper: TamperGateway, stored: Stored) -> None:
    root, blocks, _ = stored
    leaf = decode_dag_pb(blocks[root]).links[2]
    tamper.add(Tamper("flip", cid=str(leaf)))
    raw = gateway_get(tamper.url, leaf, "raw").content
    assert len(raw) == len(blocks[leaf]) and raw != blocks[leaf]
    assert not leaf.verify(raw)
    sections = read_car(gateway_get(tamper.url, root, "car").content)
    bad = [cid for cid, block in sections if not cid.verify(block)]
    assert bad == [leaf] and len(sections) == len(blocks)
    assert len(tamper.tampered) == 2


def test_tamper_substitute_a_valid_block(tamper: TamperGateway, stored: Stored) -> None:
    root, blocks, _ = stored
    first, second = decode_dag_pb(blocks[root]).links[:2]
    tamper.add(Tamper("substitute", cid=str(first), block=blocks[second]))
    raw = gateway_get(tamper.url, first, "raw").content
    assert raw == blocks[second] and second.verify(raw) and not first.verify(raw)
    sections = dict(read_car(gateway_get(tamper.url, root, "car").content))
    assert sections[first] == blocks[second]


def test_tamper_truncate(tamper: TamperGateway, stored: Stored) -> None:
    root, blocks, _ = stored
    tamper.add(Tamper("truncate", format="car", keep=2))
    body = gateway_get(tamper.url, root, "car").content
    assert len(verified_car(body)) == 2
    with pytest.raises(KeyError):
        reassemble(root, verified_car(body))
    tamper.clear()
    leaf = decode_dag_pb(blocks[root]).links[3]
    tamper.add(Tamper("truncate", cid=str(leaf), cut_inside=True))
    with pytest.raises(AssertionError, match="cut short"):
        read_car(gateway_get(tamper.url, root, "car").content)
    raw = gateway_get(tamper.url, leaf, "raw").content
    assert len(raw) == len(blocks[leaf]) // 2 and not leaf.verify(raw)


def test_tamper_drop(tamper: TamperGateway, stored: Stored) -> None:
    root, blocks, _ = stored
    leaf = decode_dag_pb(blocks[root]).links[1]
    tamper.add(Tamper("drop", cid=str(leaf), times=2))
    body = gateway_get(tamper.url, root, "car").content
    got = verified_car(body)  # every block served is genuine …
    assert leaf not in got and len(got) == len(blocks) - 1
    with pytest.raises(KeyError):  # … but the file can't be rebuilt
        reassemble(root, got)
    assert gateway_get(tamper.url, leaf, "raw").status_code == 404
    assert gateway_get(tamper.url, leaf, "raw").status_code == 200  # times=2 used up


def test_tamper_targets_one_root(helia: HeliaNode, tamper: TamperGateway, stored: Stored) -> None:
    root, _blocks, data = stored
    other, _other_blocks = put_dag(helia, os.urandom(1000))
    tamper.add(Tamper("flip", root=str(other)))
    assert reassemble(root, verified_car(gateway_get(tamper.url, root, "car").content)) == data
    body = gateway_get(tamper.url, other, "car").content
    assert not all(cid.verify(block) for cid, block in read_car(body))
    assert [r.tampered for r in tamper.requests] == [False, True]


# -- the fixture's policy --------------------------------------------------------------


@contextlib.contextmanager
def broken(tmp_dir: Path) -> Iterator[HeliaNode]:
    raise helia_node.HeliaNodeError("npm ci failed")
    yield  # pragma: no cover


def test_fixture_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helia_node, "running_helia", broken)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        next(helia_node.helia_fixture())


def test_fixture_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helia_node, "running_helia", broken)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        next(helia_node.helia_fixture())


def test_cache_lives_outside_the_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYGIEIA_TEST_CACHE", str(tmp_path))
    assert helia_node.install_dir().parent == tmp_path / "helia"
