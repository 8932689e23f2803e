"""The recovery-kit vector (tests/vectors/recovery_kit.json, written by the Python side)
opens in the browser too: with the server gone, the page takes the kit as a file,
unlocks it with the vector's password and again with its recovery code, lists what the
vector expects (titles, the legacy record flagged) and opens each record from a real
IPFS gateway (Helia, holding the vector's CAR) to the expected SHA-256."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from hygieia.ipfs import DAG_PB, parse_cid
from tests.browser import flows
from tests.support.browser import PageHandle, new_page
from tests.support.carfile import read_car
from tests.support.helia_node import HeliaNode
from tests.support.server import server_process, stop

pytestmark = pytest.mark.browser

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "recovery_kit.json"


@pytest.fixture(scope="module")
def offline_page(
    browser: Any, helia_node: HeliaNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PageHandle, dict[str, Any], Path]]:
    """The app loaded once (its service worker installed), then its server stopped and
    the page reloaded; Helia holds the vector's blocks. Yields (page, vector, kit file)."""
    vector = json.loads(VECTOR.read_text())
    tmp = tmp_path_factory.mktemp("kit-vector")
    car = tmp / "vector.car"
    car.write_bytes(base64.b64decode(vector["car_b64"]))
    _, blocks = read_car(car)
    for cid, block in blocks.items():
        codec = "dag-pb" if parse_cid(cid).codec == DAG_PB else "raw"
        assert helia_node.put_block(block, codec=codec, cid=cid) == cid
    kit_file = tmp / "hygieia-recovery-kit.json"
    kit_file.write_text(json.dumps(vector["kit"], indent=2))
    with ExitStack() as stack:
        base, proc = stack.enter_context(server_process(tmp / "server"))
        page = contextmanager(new_page)(browser, base, viewport={"width": 1280, "height": 900})
        web = stack.enter_context(page)
        web.goto()
        assert web.page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")
        stop(proc)
        web.page.reload()
        web.page.wait_for_selector("body[data-ready=true]")
        web.page.wait_for_selector("#offline-offer:not([hidden])")
        yield web, vector, kit_file


def _open(web: PageHandle, kit_file: Path, gateway: str, **secret: str) -> None:
    page = web.page
    page.set_input_files("#offline-kit-file", str(kit_file))
    page.wait_for_selector("#view-offline:not([hidden])")
    if "code" in secret:
        page.get_by_label("Use my recovery code instead").check()
        page.locator("#offline-code").fill(secret["code"])
    else:
        page.locator("#offline-password").fill(secret["password"])
    page.get_by_label("IPFS gateway").fill(gateway)
    page.locator("#form-offline").get_by_role("button", name="Open offline").click()
    flows.list_ready(web)


def _check_list(web: PageHandle, expected: list[dict[str, Any]]) -> None:
    for e in expected:
        item = flows.record_item(web, e["id"])
        assert item.locator(".record-open").inner_text() == e["title"]
        assert (item.locator(".unbound").count() == 0) == e["bound"], e


@pytest.mark.parametrize("by", ["password", "code"])
def test_the_kit_vector_opens_offline(
    offline_page: tuple[PageHandle, dict[str, Any], Path], helia_node: HeliaNode, by: str
) -> None:
    web, vector, kit_file = offline_page
    since = len(web.requests)
    if by == "password":
        _open(web, kit_file, helia_node.gateway_url, password=vector["password"])
    else:
        _open(web, kit_file, helia_node.gateway_url, code=vector["recovery_code"])
    expected = vector["expected"]
    assert sorted(flows.shown_ids(web)) == sorted(e["id"] for e in expected)
    _check_list(web, expected)
    web.shot(f"offline-kit-vector-{by}")
    for e in expected if by == "password" else expected[:1]:
        flows.go_records(web)
        got = flows.download_record(web, e["id"])
        assert (len(got), hashlib.sha256(got).hexdigest()) == (e["size"], e["sha256"]), e
    assert [r.url for r in web.requests[since:] if "/api/" in r.url] == []
    assert not web.problems, web.problems
    flows.logout(web)


def test_a_kit_with_weak_kdf_is_refused_before_deriving(
    offline_page: tuple[PageHandle, dict[str, Any], Path], tmp_path: Path
) -> None:
    """A kit's kdf passes the bounds and the floor, as a server's answer does."""
    web, vector, _ = offline_page
    kit = json.loads(json.dumps(vector["kit"]))
    kit["account"]["kdf"] = {"alg": "argon2id", "v": 19, "m": 8192, "t": 1, "p": 1}
    weak = tmp_path / "weak-kit.json"
    weak.write_text(json.dumps(kit))
    page = web.page
    page.set_input_files("#offline-kit-file", str(weak))
    page.wait_for_selector("#view-offline:not([hidden])")
    page.locator("#offline-password").fill(vector["password"])
    page.locator("#form-offline").get_by_role("button", name="Open offline").click()
    assert "password protection this app does not accept" in flows.flash_text(web)
    assert page.locator("body[data-offline]").count() == 0
    page.locator("#offline-cancel").click()
