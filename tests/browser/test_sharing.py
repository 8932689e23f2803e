"""Sharing in the browser (protocol §7) against a real server, the CLI on the other side.

Both directions (shared from the page and opened with ``hygieia get``, shared by the CLI
and opened in the page): byte-identical content and metadata, a record of three
segments, the CID unchanged by sharing; revoking is a 404 for the recipient at once;
"Revoke and re-encrypt" makes a new record (new CID, the old one unpinned) that the
remaining recipient opens and the revoked one can't; the owner's access trail. The
lying server (keys and metadata substituted in its answers, by ``page.route``: the
attacker at the outer edge) is caught by the keys the page remembers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto
from hygieia.client import records as recs
from hygieia.client import sharing as shr
from hygieia.client.contacts import Contacts
from hygieia.client.sdk import HygieiaClient
from hygieia.storage import LocalBlobStore
from tests.browser import flows
from tests.support.accounts import new_account
from tests.support.browser import PageHandle, new_page
from tests.support.cli import Cli
from tests.support.databases import postgres_database
from tests.support.identities import make_person
from tests.support.server import running_server

pytestmark = pytest.mark.browser

PW = "sharing web passphrase 7 ✓"
MIB = 1024 * 1024


@contextmanager
def _served(tmp: Path, **env: str) -> Iterator[tuple[str, Path]]:
    data_dir = tmp / "data"
    with running_server(data_dir, **env) as url:
        yield url, data_dir


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with _served(tmp_path_factory.mktemp("share-web")) as s:
        yield s


@pytest.fixture(scope="module")
def server(served: tuple[str, Path]) -> str:
    """The conftest's page fixture (``web``) opens this module's server."""
    return served[0]


def _noise(size: int, seed: bytes) -> bytes:
    out = bytearray()
    block = seed
    while len(out) < size:
        block = hashlib.sha512(block).digest()
        out += block * 64
    return bytes(out[:size])


def _cli(served: tuple[str, Path], home: Path, email: str) -> Cli:
    cli = Cli(server=served[0], home=home, data_dir=served[1])
    cli.new_account(email, PW)
    return cli


def _fingerprint(cli: Cli) -> str:
    words = cli.run("whoami").stdout.split()
    return words[words.index("key") + 1]


def _pins(data_dir: Path) -> set[str]:
    return set(LocalBlobStore(data_dir / "blocks").pins())


def _upload(web: PageHandle, path: Path, **fields: str) -> dict[str, Any]:
    flows.open_upload(web)
    web.page.set_input_files("#up-file", str(path))
    flows.fill_upload_form(web, **fields)
    return flows.submit_upload(web)


def _web_fingerprint(web: PageHandle) -> str:
    return str(web.page.locator("#set-fingerprint").inner_text()).replace(" ", "")


# ---- the Share dialog ----------------------------------------------------------------


def _look_up(web: PageHandle, email: str) -> str:
    """Type the email, look up its key; the fingerprint shown ('' if refused)."""
    page = web.page
    page.wait_for_selector("dialog#share-dialog[open]")
    page.locator("#share-email").fill(email)
    page.locator("#share-submit").click()
    page.wait_for_selector("#share-key:not([hidden]), #share-error:not([hidden])")
    if page.locator("#share-key").is_hidden():
        return ""
    return str(page.locator("#share-fingerprint").inner_text())


def _confirm_share(web: PageHandle) -> str:
    """Press Share; the flash once the dialog closed, or the dialog's error."""
    page = web.page
    page.locator("#share-submit").click()
    page.wait_for_function(
        "() => !document.getElementById('share-dialog').open"
        " || !document.getElementById('share-error').hidden",
        timeout=120_000,
    )
    if page.locator("#share-error").is_visible():
        return "refused: " + str(page.locator("#share-error").inner_text())
    return flows.flash_text(web)


def _share_from_list(web: PageHandle, record_ids: list[str], email: str) -> tuple[str, str]:
    """Tick the records, "Share selected", look up ``email``, share: (fingerprint, flash)."""
    flows.go_records(web)
    for rid in record_ids:
        flows.record_item(web, rid).locator(".record-select").check()
    web.page.locator("#btn-share-selected").click()
    fingerprint = _look_up(web, email)
    return fingerprint, _confirm_share(web)


def _open_record(web: PageHandle, record_id: str) -> None:
    """Open one of my records' view and wait for its grants and access trail."""
    flows.go_records(web)
    flows.record_item(web, record_id).locator(".record-open").click()
    web.page.wait_for_selector(f'#view-record[data-record-id="{record_id}"]:not([hidden])')
    web.page.wait_for_selector("#rec-sharing:not([data-loading])", state="attached")


def _grant_row(web: PageHandle, email: str) -> Any:
    return web.page.locator(f'#rec-grants li[data-email="{email}"]')


def _go_shared(web: PageHandle) -> None:
    web.page.locator("#nav").get_by_role("button", name="Shared with me").click()
    web.page.wait_for_selector("#view-shared:not([hidden])")
    web.page.wait_for_selector("body:not([data-loading])", state="attached")


def _shared_item(web: PageHandle, record_id: str) -> Any:
    return web.page.locator(f'#shared-list li[data-record-id="{record_id}"]')


def _confirm(web: PageHandle, button: str) -> None:
    web.page.locator("dialog#confirm").get_by_role("button", name=button).click()


def _shown_meta(web: PageHandle) -> dict[str, str]:
    """The record view's metadata rows."""
    pairs = web.page.locator("#rec-meta").evaluate(
        "dl => [...dl.querySelectorAll('dt')].map(dt => [dt.textContent,"
        " dt.nextElementSibling.textContent])"
    )
    return {str(k): str(v) for k, v in pairs}


# ---- both directions ------------------------------------------------------------------


def test_shared_from_the_web_read_by_the_cli_and_back(web, served, tmp_path):
    page = web.page
    bob_email, ann_email = "bob-both@example.org", "ann-both@example.org"
    bob = _cli(served, tmp_path / "bob", bob_email)
    web.goto()
    flows.signup(web, ann_email, PW)
    page.locator("#nav").get_by_role("button", name="Settings").click()
    ann_fp = _web_fingerprint(web)
    flows.go_records(web)

    # Two records sealed in the page: one of three segments, one small.
    big = _noise(2 * 4 * MIB + MIB + 4321, b"scan")
    (tmp_path / "knee scan (Müller).bin").write_bytes(big)
    scan = _upload(
        web,
        tmp_path / "knee scan (Müller).bin",
        title="Knee scan",
        record_type="Imaging",
        date="2026-03-01",
        provider="Radiology Müller",
        tags="mri, knee",
    )
    assert scan["segments"] == 3
    letter_bytes = b"%PDF-1.7 referral\n"
    (tmp_path / "referral.pdf").write_bytes(letter_bytes)
    letter = _upload(web, tmp_path / "referral.pdf", title="Referral", record_type="Letter")

    # Both at once, to Bob: his key's fingerprint shown (his own, not only the
    # server's word) and remembered on first use.
    flows.go_records(web)
    for rid in (scan["id"], letter["id"]):
        flows.record_item(web, rid).locator(".record-select").check()
    page.locator("#btn-share-selected").click()
    fingerprint = _look_up(web, bob_email)
    web.shot("share-dialog")
    flashed = _confirm_share(web)
    assert fingerprint.replace(" ", "") == _fingerprint(bob)
    assert f"Shared 2 records with {bob_email}" in flashed, flashed
    grants = flows.json_bodies(web, "/api/v1/grants")[-1]["grants"]
    assert {g["record_id"] for g in grants} == {scan["id"], letter["id"]}

    # Bob, with the CLI: Ann as owner (her key), the CID unchanged, every field as sealed.
    listed = {i["id"]: i for i in json.loads(bob.run("shared", "ls", "--json", password=PW).stdout)}
    assert set(listed) == {scan["id"], letter["id"]}
    item = listed[scan["id"]]
    assert (item["owner"], item["owner_fingerprint"]) == (ann_email, ann_fp)
    assert item["cid"] == scan["cid"] and listed[letter["id"]]["cid"] == letter["cid"]
    assert (item["title"], item["type"], item["date"]) == ("Knee scan", "Imaging", "2026-03-01")
    assert (item["provider"], item["tags"]) == ("Radiology Müller", ["knee", "mri"])
    assert item["filename"] == "knee scan (Müller).bin"
    assert item["size"] == len(big) and item["sha256"] == hashlib.sha256(big).hexdigest()
    assert listed[letter["id"]]["media_type"] == "application/pdf"
    bob.run("get", scan["id"], "-o", str(tmp_path / "b-scan"), password=PW)
    bob.run("get", letter["id"], "-o", str(tmp_path / "b-letter"), password=PW)
    assert (tmp_path / "b-scan").read_bytes() == big
    assert (tmp_path / "b-letter").read_bytes() == letter_bytes

    # Ann sees the grant and Bob's reads in the record's access trail.
    _open_record(web, scan["id"])
    row = _grant_row(web, bob_email)
    assert fingerprint in row.inner_text()
    web.shot("record-grants")
    trail = page.locator("#rec-activity").inner_text()
    assert f"Opened by {bob_email}" in trail and f"Shared with {bob_email}" in trail

    # Revoked in the page: Bob's next request is a 404.
    row.get_by_role("button", name="Remove").click()
    _confirm(web, "Remove")
    assert f"{bob_email} can no longer open" in flows.flash_text(web)
    gone = bob.run("get", scan["id"], "-o", str(tmp_path / "again"), password=PW, check=False)
    assert gone.returncode != 0 and "not_found" in gone.stderr
    assert not (tmp_path / "again").exists()
    page.wait_for_selector("#rec-grants-empty:not([hidden])")

    # And back: Bob shares a record of three segments from the CLI; it opens in the page.
    bob_data = _noise(2 * 4 * MIB + 99, b"bob")
    (tmp_path / "blood.csv").write_bytes(bob_data)
    put = bob.run(
        "put",
        str(tmp_path / "blood.csv"),
        "--title",
        "Blood count",
        "--type",
        "lab",
        "--date",
        "2026-02-02",
        "--tag",
        "haematology",
        password=PW,
    )
    bob_id, bob_cid = put.stdout.split()[:2]
    bob.run("share", "add", bob_id, "--with", ann_email, password=PW)
    (own,) = [i for i in json.loads(bob.run("ls", "--json", password=PW).stdout)]
    _go_shared(web)
    shared = _shared_item(web, bob_id)
    web.shot("shared-with-me")
    text = shared.inner_text()
    assert f"Shared by {bob_email}" in text and _spaced(_fingerprint(bob)) in text
    assert "Blood count" in text and "haematology" in text
    shared.locator(".record-open").click()
    page.wait_for_selector(f'#view-record[data-record-id="{bob_id}"]:not([hidden])')
    meta = _shown_meta(web)
    assert meta["Shared by"].startswith(bob_email)
    assert (meta["Type"], meta["Date"], meta["Tags"]) == ("lab", "2026-02-02", "haematology")
    assert (meta["File"], meta["Content ID"]) == ("blood.csv", bob_cid)
    assert meta["SHA-256"] == own["sha256"] == hashlib.sha256(bob_data).hexdigest()
    assert meta["Format"] == own["media_type"]
    # Someone else's record: no share, no delete.
    assert page.locator("#rec-share").is_hidden() and page.locator("#rec-delete").is_hidden()
    assert page.locator("#rec-sharing").is_hidden()
    with page.expect_download(timeout=120_000) as dl:
        page.locator("#rec-download").click()
    assert Path(dl.value.path()).read_bytes() == bob_data

    # Removed from Ann's list: gone for her, the owner keeps it.
    _go_shared(web)
    _shared_item(web, bob_id).get_by_role("button", name="from my list").click()
    _confirm(web, "Remove")
    assert "Removed from your list" in flows.flash_text(web)
    assert _shared_item(web, bob_id).count() == 0
    assert json.loads(bob.run("share", "ls", bob_id, "--json", password=PW).stdout) == []
    assert bob_id in bob.run("ls", password=PW).stdout
    assert not web.problems, web.problems


def _spaced(fingerprint: str) -> str:
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


# ---- revoke and re-encrypt -----------------------------------------------------------


def test_revoke_and_reencrypt_in_the_web(web, served, tmp_path):
    page = web.page
    _, data_dir = served
    bob = _cli(served, tmp_path / "bob", "bob-rot@example.org")
    carl = _cli(served, tmp_path / "carl", "carl-rot@example.org")
    web.goto()
    flows.signup(web, "ann-rot@example.org", PW)
    data = _noise(4 * MIB + 10, b"rotate")
    (tmp_path / "ecg.bin").write_bytes(data)
    rec = _upload(web, tmp_path / "ecg.bin", title="ECG", record_type="Cardiology", tags="heart")
    old_id, old_cid = rec["id"], rec["cid"]
    _share_from_list(web, [old_id], "bob-rot@example.org")
    # The second share from the record's own view.
    _open_record(web, old_id)
    page.locator("#rec-share").click()
    _look_up(web, "carl-rot@example.org")
    assert "Shared “ECG” with carl-rot@example.org" in _confirm_share(web)
    page.wait_for_selector('#rec-grants li[data-email="carl-rot@example.org"]')
    carl.run("get", old_id, "-o", str(tmp_path / "c-old"), password=PW)
    assert old_cid in _pins(data_dir)

    # Carl is revoked and the record re-encrypted: a new record, shared again with Bob.
    _grant_row(web, "carl-rot@example.org").get_by_role("button", name="Revoke").click()
    _confirm(web, "Re-encrypt")
    # The share's message may still be up while the record is re-sealed: wait for
    # this action's own (or its error, which the assertion then shows).
    done = page.locator("#flash:not([hidden])", has_text=re.compile("Re-encrypted|ould not|efused"))
    done.wait_for(timeout=120_000)
    flashed = done.inner_text()
    assert "Re-encrypted “ECG” as a new record" in flashed, flashed
    page.wait_for_selector("#view-record:not([hidden])")
    new_id = page.locator("#view-record").get_attribute("data-record-id")
    assert new_id and new_id != old_id
    page.wait_for_selector("#rec-sharing:not([data-loading])", state="attached")
    assert _grant_row(web, "bob-rot@example.org").count() == 1
    assert _grant_row(web, "carl-rot@example.org").count() == 0
    meta = _shown_meta(web)
    new_cid = meta["Content ID"]
    assert new_cid != old_cid and (meta["Type"], meta["Tags"]) == ("Cardiology", "heart")
    assert meta["File"] == "ecg.bin" and meta["SHA-256"] == hashlib.sha256(data).hexdigest()

    pins = _pins(data_dir)
    assert new_cid in pins and old_cid not in pins
    flows.go_records(web)
    assert flows.shown_ids(web) == [new_id]
    listed = json.loads(bob.run("shared", "ls", "--json", password=PW).stdout)
    assert [(i["id"], i["cid"]) for i in listed] == [(new_id, new_cid)]
    bob.run("get", new_id, "-o", str(tmp_path / "b-new"), password=PW)
    assert (tmp_path / "b-new").read_bytes() == data
    for rid in (new_id, old_id):
        refused = carl.run("get", rid, "-o", str(tmp_path / "c-new"), password=PW, check=False)
        assert refused.returncode != 0 and "not_found" in refused.stderr
    assert json.loads(carl.run("shared", "ls", "--json", password=PW).stdout) == []
    assert not web.problems, web.problems


# ---- a lying server ------------------------------------------------------------------


def _rewrite(web: PageHandle, pattern: str, change: Any) -> None:
    """Answer requests matching ``pattern`` with the server's JSON, changed by ``change``."""

    def handle(route: Any) -> None:
        response = route.fetch()
        body = change(route.request, response.json()) if response.status == 200 else None
        if body is None:
            route.fulfill(response=response)
        else:
            route.fulfill(response=response, json=body)

    web.page.route(pattern, handle)


def test_a_changed_recipient_key_is_refused_until_accepted(web, served, tmp_path):
    page = web.page
    carl_email = "carl-tofu@example.org"
    carl = _cli(served, tmp_path / "carl", carl_email)
    with HygieiaClient(served[0]) as api:
        mallory = new_account(api, "mallory-tofu@example.org", PW).account
    web.goto()
    flows.signup(web, "ann-tofu@example.org", PW)
    (tmp_path / "a.txt").write_bytes(b"allergy list")
    (tmp_path / "b.txt").write_bytes(b"x-ray report")
    first = _upload(web, tmp_path / "a.txt", title="Allergies")
    second = _upload(web, tmp_path / "b.txt", title="X-ray")
    fingerprint, _ = _share_from_list(web, [first["id"]], carl_email)
    assert fingerprint.replace(" ", "") == _fingerprint(carl)  # pinned on first use

    # The server now hands out Mallory's key for Carl.
    _rewrite(
        web,
        "**/api/v1/users/key",
        lambda _req, body: (
            body | {"fingerprint": mallory.fingerprint, "public_key": mallory.public_key}
        ),
    )
    flows.go_records(web)
    flows.record_item(web, second["id"]).get_by_role("button", name="Share").click()
    shown = _look_up(web, carl_email)
    assert shown.replace(" ", "") == mallory.fingerprint
    note = page.locator("#share-key-note").inner_text()
    assert "has CHANGED" in note and _spaced(fingerprint.replace(" ", "")) in note
    assert page.locator("#share-accept").is_visible()
    posted = len(flows.json_bodies(web, "/api/v1/grants"))
    refused = _confirm_share(web)  # without accepting the new key
    assert refused.startswith("refused: ") and "has CHANGED" in refused, refused
    assert mallory.fingerprint[:4] in refused
    assert len(flows.json_bodies(web, "/api/v1/grants")) == posted  # nothing was sent
    page.locator("#share-cancel").click()
    listed = json.loads(carl.run("shared", "ls", "--json", password=PW).stdout)
    assert [i["id"] for i in listed] == [first["id"]]

    # A fingerprint that is not the key's is refused, even for a new contact.
    page.unroute("**/api/v1/users/key")
    _rewrite(web, "**/api/v1/users/key", lambda _req, body: body | {"fingerprint": "A" * 40})
    flows.record_item(web, second["id"]).get_by_role("button", name="Share").click()
    assert _look_up(web, "dora-tofu@example.org") == ""
    assert "not that of the key it sent" in page.locator("#share-error").inner_text()
    page.locator("#share-cancel").click()
    assert len(flows.json_bodies(web, "/api/v1/grants")) == posted
    page.unroute("**/api/v1/users/key")

    # The envelope is not bound to its record: one swapped in from another record is
    # caught before any PKESK is written, since its key does not open this content.
    def swap_envelope(route: Any) -> None:
        response = route.fetch()
        other = route.fetch(url=route.request.url.replace(second["id"], first["id"]))
        route.fulfill(
            response=response, json=response.json() | {"envelope": other.json()["envelope"]}
        )

    page.route(f"**/api/v1/records/{second['id']}", swap_envelope)
    flows.record_item(web, second["id"]).get_by_role("button", name="Share").click()
    assert _look_up(web, carl_email).replace(" ", "") == _fingerprint(carl)
    refused = _confirm_share(web)
    assert "its session key does not open its content" in refused, refused
    assert len(flows.json_bodies(web, "/api/v1/grants")) == posted
    assert not web.problems, web.problems


def test_shared_metadata_signed_by_another_key_is_refused(web, served, tmp_path):
    page = web.page
    bob_email = "bob-forged@example.org"
    web.goto()
    flows.signup(web, bob_email, PW)
    mallory = make_person("mallory-forged@example.org")
    with HygieiaClient(served[0]) as api:
        ann = new_account(api, "ann-forged@example.org", PW)
        api.token = ann.token
        (tmp_path / "r.txt").write_bytes(b"vaccination record")
        rid = recs.put(api, ann, tmp_path / "r.txt").id
        shr.share(api, ann, [rid], [bob_email], contacts=Contacts(None))
        key = ann.unlock()
        fields = recs.open_metadata(api.get_record(rid), key, record_id=rid)
        bob_key = api.user_key(bob_email).public_key
    _go_shared(web)
    assert "Shared by ann-forged@example.org" in _shared_item(web, rid).inner_text()  # pinned

    # The server serves metadata sealed to Bob with the right id and CID, but signed by
    # Mallory: first as Ann's (her key unchanged), then with Mallory's key as Ann's.
    forged = base64.b64encode(
        crypto.seal_record_metadata(
            {k: v for k, v in fields.items() if k not in ("v", "id")} | {"title": "Forged"},
            record_id=rid,
            recipients=[bob_key],
            signer=mallory.key,
        )
    ).decode()

    def forge(_req: Any, body: dict[str, Any]) -> dict[str, Any]:
        for item in body.get("items", [body]):
            item["sealed_metadata"] = forged
        return body

    _rewrite(web, "**/api/v1/shared?*", forge)
    _go_shared(web)
    item = _shared_item(web, rid)
    text = item.inner_text()
    assert "Refused record" in text and "not signed by its owner ann-forged@example.org" in text
    assert "Forged" not in text
    assert item.get_by_role("button", name="Download").is_disabled()

    def swap_owner(req: Any, body: dict[str, Any]) -> dict[str, Any]:
        body = forge(req, body)
        for entry in body.get("items", [body]):
            entry["owner"] |= {
                "fingerprint": mallory.identity.fingerprint,
                "public_key": mallory.identity.public_key,
            }
        return body

    page.unroute("**/api/v1/shared?*")
    _rewrite(web, "**/api/v1/shared?*", swap_owner)
    _go_shared(web)
    text = _shared_item(web, rid).inner_text()
    assert "has CHANGED" in text and "Forged" not in text
    assert _shared_item(web, rid).get_by_role("button", name="Accept new key").is_visible()
    assert not web.problems, web.problems


# ---- PostgreSQL ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with postgres_database() as url, _served(tmp_path_factory.mktemp("pg"), DATABASE_URL=url) as s:
        yield s


@pytest.fixture
def pg_web(browser: Any, pg_served: tuple[str, Path]) -> Iterator[PageHandle]:
    yield from new_page(browser, pg_served[0], viewport={"width": 1280, "height": 900})


def test_shared_from_the_web_read_by_the_cli_on_postgres(pg_web, pg_served, tmp_path):
    bob = _cli(pg_served, tmp_path / "bob", "bob-pg@example.org")
    pg_web.goto()
    flows.signup(pg_web, "ann-pg@example.org", PW)
    data = _noise(4 * MIB + 5, b"pg")
    (tmp_path / "pg.bin").write_bytes(data)
    rec = _upload(pg_web, tmp_path / "pg.bin", title="Discharge letter")
    _, flashed = _share_from_list(pg_web, [rec["id"]], "bob-pg@example.org")
    assert "Shared “Discharge letter” with bob-pg@example.org" in flashed
    bob.run("get", rec["id"], "-o", str(tmp_path / "out"), password=PW)
    assert (tmp_path / "out").read_bytes() == data
    (listed,) = json.loads(bob.run("shared", "ls", "--json", password=PW).stdout)
    assert (listed["cid"], listed["title"]) == (rec["cid"], "Discharge letter")
    assert not pg_web.problems, pg_web.problems
