"""The web app without its server (issue 10): the recovery kit kept in the browser and
downloaded from Settings, the whole vault as a CAR, and the offline mode — with the
Hygieia server stopped, the page (its shell from the service worker) lists the records
from the kept kit after a local unlock (password, then recovery code) and opens each
byte-identical from an IPFS gateway, every block checked in the page; a gateway that
flips a byte, serves a wrong block or lacks one is refused and nothing is saved.

The server stores on js-ipfs and a second real node, Helia, pins every record from it
over bitswap; the page reads from Helia's trustless gateway, through a proxy that lies
on demand (tests/support/tamper_gateway.py). The tests of this module share one vault
and run in order: the online ones first, then the server is stopped for good and its
data directory deleted (``offline``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hygieia.client.kit import check_keys, parse_kit
from hygieia.ipfs import DAG_PB, decode_dag_pb, parse_cid
from tests.browser import flows, media
from tests.support.browser import PageHandle, new_page
from tests.support.carfile import dag_blocks, read_car
from tests.support.cli import Cli
from tests.support.helia_node import HeliaNode
from tests.support.server import server_process, stop
from tests.support.tamper_gateway import Tamper, TamperGateway, running_tamper_gateway

pytestmark = pytest.mark.browser

PASSWORD = "offline vault passphrase 7 ☂"
EMAIL = "offline@example.org"
KIT_KEYS = ["format", "version", "created_at", "server", "account", "records"]
ACCOUNT_KEYS = [
    "id",
    "email",
    "fingerprint",
    "public_key",
    "locked_secret_key",
    "kdf",
    "salt",
    "wrapped_vault_key",
    "recovery_salt",
    "recovery_wrapped_vault_key",
]
RECORD_KEYS = [
    *("id", "cid", "size", "segments", "created_at"),
    *("pkesk", "sealed_metadata", "envelope"),
]
# The text of the kits the page keeps in IndexedDB (kit.js), one per account.
KEPT_KITS = """async () => {
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open('hygieia-kits');
    r.onsuccess = () => ok(r.result);
    r.onerror = no;
  });
  const all = await new Promise((ok) => {
    const r = db.transaction('kits').objectStore('kits').getAll();
    r.onsuccess = () => ok(r.result);
  });
  return all.map((e) => e.text);
}"""


@dataclass
class Vault:
    web: PageHandle
    gateway: TamperGateway  # in front of Helia's gateway
    helia: HeliaNode
    server_proc: Any
    data_dir: Path
    code: str
    files: dict[str, bytes] = field(default_factory=dict)  # title -> plaintext
    ids: dict[str, str] = field(default_factory=dict)  # title -> record id


def _upload(web: PageHandle, tmp: Path, title: str, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    flows.open_upload(web)
    web.page.set_input_files("#up-file", str(path))
    flows.fill_upload_form(web, title=title, record_type="Lab report")
    return str(flows.submit_upload(web, timeout_ms=180_000)["id"])


@pytest.fixture(scope="module")
def vault(
    browser: Any, ipfs_api: str, helia_node: HeliaNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vault]:
    """An account with 0 B, 1 B, multi-segment (≥ 9 MiB) and PDF records, made in the
    page on a server that stores on js-ipfs; every record pinned by Helia over bitswap;
    the app's service worker installed."""
    data_dir = tmp_path_factory.mktemp("offline-server")
    tmp = tmp_path_factory.mktemp("offline-files")
    with ExitStack() as stack:
        base, proc = stack.enter_context(server_process(data_dir, IPFS_API=ipfs_api))
        gateway = stack.enter_context(running_tamper_gateway(helia_node.gateway_url))
        page = contextmanager(new_page)(browser, base, viewport={"width": 1280, "height": 900})
        web = stack.enter_context(page)
        web.goto()
        code = flows.signup(web, EMAIL, PASSWORD)
        v = Vault(web, gateway, helia_node, proc, data_dir, code)
        big = os.urandom(9 * 1024 * 1024 + 12345)
        for title, name, data in [
            ("Empty note", "empty.txt", b""),
            ("One byte", "one.bin", b"\x07"),
            ("Big scan", "scan.bin", big),
            ("Blood panel", "blood.pdf", media.pdf("Haemoglobin 14.1 g/dL")),
        ]:
            v.ids[title] = _upload(web, tmp, title, name, data)
            v.files[title] = data
        assert web.page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")
        helia_node.connect_to(ipfs_api)
        for record in _kept_records(web):
            helia_node.pin(record["cid"])
        yield v


def _settings(web: PageHandle) -> None:
    web.page.locator("#nav").get_by_role("button", name="Settings").click()
    web.page.wait_for_selector("#view-settings:not([hidden])")


def _download(web: PageHandle, button: str, timeout_ms: float = 120_000) -> Path:
    """Click Settings' own download button (``button`` is its id; "Delete account" has
    buttons of the same names that click these)."""
    with web.page.expect_download(timeout=timeout_ms) as dl:
        web.page.locator(f"#{button}").click()
    return Path(dl.value.path())


def _kit(vault: Vault) -> dict[str, Any]:
    _settings(vault.web)
    path = _download(vault.web, "kit-download")
    text = path.read_text()
    # The Python reader takes it, and would write exactly the same file.
    kit = parse_kit(text)
    check_keys(kit)
    assert kit.to_json() == text
    return dict(json.loads(text))


# ---- online: the kit and the CAR from Settings ------------------------------------


def test_kit_download_matches_the_format(vault: Vault) -> None:
    kit = _kit(vault)
    assert "allows offline password guessing" in flows.flash_text(vault.web)
    vault.web.shot("settings-recovery-kit")
    assert list(kit) == KIT_KEYS
    assert (kit["format"], kit["version"]) == ("hygieia-recovery-kit", 1)
    assert list(kit["account"]) == ACCOUNT_KEYS
    assert kit["account"]["email"] == EMAIL
    assert kit["server"] == vault.web.base_url
    assert [list(r) for r in kit["records"]] == [RECORD_KEYS] * 4
    # Newest first, as the server lists them; every record of the account.
    assert [r["id"] for r in kit["records"]] == [vault.ids[t] for t in reversed(vault.ids)]
    big = next(r for r in kit["records"] if r["id"] == vault.ids["Big scan"])
    assert big["segments"] == 3
    text = json.dumps(kit)
    for title in vault.files:  # no plaintext metadata
        assert title not in text
    assert "blood.pdf" not in text and "Lab report" not in text
    # The kit kept in IndexedDB is the same (its creation time aside).
    (kept,) = vault.web.page.evaluate(KEPT_KITS)
    assert {**json.loads(kept), "created_at": None} == {**kit, "created_at": None}


def test_car_download_holds_every_record(vault: Vault, tmp_path: Path) -> None:
    kit = _kit(vault)
    path = _download(vault.web, "car-download")
    assert "CAR archive saved (4 records)" in flows.flash_text(vault.web)
    roots, blocks = read_car(path)  # every block hashed against its CID
    assert {str(r) for r in roots} == {str(parse_cid(r["cid"])) for r in kit["records"]}
    wanted: set[str] = set()
    for root in roots:
        wanted |= dag_blocks(root, blocks)  # every block of every record is there
    assert set(blocks) == wanted  # and nothing else
    for cid, block in blocks.items():  # the blocks IPFS holds (pinned over bitswap)
        assert vault.helia.get_block(cid) == block
    # The same archive as the CLI's `hygieia export car` (block order aside).
    cli = Cli(server=vault.web.base_url, home=tmp_path / "cli", data_dir=vault.data_dir)
    cli.run("login", EMAIL, password=PASSWORD)
    cli.run("export", "car", "-o", str(tmp_path / "cli.car"))
    cli_roots, cli_blocks = read_car(tmp_path / "cli.car")
    assert {str(r) for r in cli_roots} == {str(r) for r in roots}
    assert cli_blocks == blocks
    assert any(r.codec == DAG_PB for r in roots)  # the big one is a real tree


# ---- offline: the server stopped ----------------------------------------------------


@pytest.fixture(scope="module")
def offline(vault: Vault) -> Vault:
    """The server stopped for good and its data deleted; the page reloaded from the
    service worker's cache."""
    stop(vault.server_proc)
    shutil.rmtree(vault.data_dir)
    web = vault.web
    flows.logout(web)
    web.page.reload()
    web.page.wait_for_selector("body[data-ready=true]")
    web.page.wait_for_selector("#offline-offer:not([hidden])")
    assert "cannot be reached" in flows.flash_text(web)
    web.shot("offline-offer")
    return vault


def _api_requests(web: PageHandle, since: int) -> list[str]:
    return [r.url for r in web.requests[since:] if r.url.startswith(web.base_url + "/api/")]


def _open_offline(vault: Vault, *, code: str | None = None, shot: str = "") -> None:
    page = vault.web.page
    page.locator("#offline-kits").get_by_role("button", name=f"Open offline — {EMAIL}").click()
    page.wait_for_selector("#view-offline:not([hidden])")
    if code is None:
        page.locator("#offline-password").fill(PASSWORD)
    else:
        page.get_by_label("Use my recovery code instead").check()
        page.locator("#offline-code").fill(code)
    page.get_by_label("IPFS gateway").fill(vault.gateway.url)
    if shot:
        vault.web.shot(shot)
    page.locator("#form-offline").get_by_role("button", name="Open offline").click()
    flows.list_ready(vault.web)
    page.wait_for_selector("body[data-offline=true]", state="attached")


def _download_record(web: PageHandle, record_id: str) -> bytes:
    """``flows.download_record``, saying what the page showed if nothing came."""
    flows.go_records(web)
    try:
        return flows.download_record(web, record_id, timeout_ms=120_000)
    except Exception as exc:
        shown = web.page.locator("#flash").inner_text()
        raise AssertionError(f"no download of {record_id}: {shown!r} {web.problems}") from exc


def _titles(web: PageHandle) -> set[str]:
    return set(web.page.locator("#records-list .record-open").all_inner_texts())


def test_offline_lists_and_opens_every_record_from_the_gateway(offline: Vault) -> None:
    web = offline.web
    # A log-in attempt says the server is away and points at the offline mode.
    before = len(web.requests)
    flows.submit_login(web, EMAIL, PASSWORD)
    assert "You can open your records offline below" in flows.flash_text(web)
    assert [r.url for r in web.requests[before:] if "/api/" in r.url] == [
        f"{web.base_url}/api/v1/auth/prelogin?email={EMAIL.replace('@', '%40')}"
    ]
    since = len(web.requests)
    _open_offline(offline, shot="offline-unlock")
    assert _titles(web) == set(offline.files)
    # Read-only: nothing that needs the server.
    assert not web.page.locator("#view-records").get_by_role("button", name="Upload").is_visible()
    assert not web.page.get_by_role("button", name="Delete").first.is_visible()
    web.shot("offline-records")
    for title, data in offline.files.items():
        got = _download_record(web, offline.ids[title])
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), title
    web.shot("offline-record-pdf")
    assert offline.gateway.requests, "nothing came from the gateway"
    assert _api_requests(web, since) == []
    assert not web.problems, web.problems

    # Again with the recovery code instead of the password.
    flows.logout(web)
    _open_offline(offline, code=offline.code)
    assert _titles(web) == set(offline.files)
    got = _download_record(web, offline.ids["One byte"])
    assert got == offline.files["One byte"]
    assert _api_requests(web, since) == []


@pytest.mark.parametrize("mode", ["flip", "another", "missing"])
def test_offline_refuses_a_tampering_gateway(offline: Vault, mode: str) -> None:
    web = offline.web
    if web.page.locator("body[data-offline=true]").count() == 0:
        _open_offline(offline)
    flows.go_records(web)
    record_id = offline.ids["Big scan"]
    root = next(r["cid"] for r in _kept_records(web) if r["id"] == record_id)
    leaves = decode_dag_pb(offline.helia.get_block(root)).links
    assert len(leaves) >= 9
    target = str(leaves[4])
    other = offline.helia.get_block(str(leaves[5]))
    lies = len(offline.gateway.tampered)
    offline.gateway.add(
        {
            "flip": Tamper("flip", cid=target),
            "another": Tamper("substitute", cid=target, block=other),
            "missing": Tamper("drop", cid=target),
        }[mode]
    )
    saved: list[Any] = []

    def on_download(download: Any) -> None:
        saved.append(download)

    web.page.on("download", on_download)
    try:
        flows.record_item(web, record_id).get_by_role("button", name="Download").click()
        text = flows.flash_text(web)
        web.page.wait_for_timeout(500)  # a download would have started by now
        lied = len(offline.gateway.tampered) > lies
    finally:
        offline.gateway.clear()
        web.page.remove_listener("download", on_download)
    expected = {
        "flip": f"Block {target} from the gateway does not match its content ID",
        "another": f"Block {target} from the gateway does not match its content ID",
        "missing": f"The gateway does not have block {target} (HTTP 404)",
    }[mode]
    assert "This record was not opened." in text and expected in text, text
    assert saved == []
    assert lied, "the gateway did not lie"
    assert web.page.locator("#rec-viewer img, #rec-viewer iframe").count() == 0
    web.shot(f"offline-refused-{mode}")


def _kept_records(web: PageHandle) -> list[dict[str, Any]]:
    (text,) = web.page.evaluate(KEPT_KITS)
    return list(json.loads(text)["records"])
