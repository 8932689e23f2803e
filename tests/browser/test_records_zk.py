"""Zero knowledge in a browser records session: every byte the page sends (captured on
the wire by a relay, whole upload bodies included) is searched for the password, every
key (derived, vault, secret scalars, each record's session key), the metadata a person
typed (title, type, date, provider, tags), the file names and the plaintext content."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto
from tests.browser import flows, media
from tests.browser.proxy import RecordingRelay, recording_relay
from tests.support.browser import PageHandle, new_page
from tests.support.keys import secret_material
from tests.support.zk import Secrets

pytestmark = pytest.mark.browser

PASSWORD = "zero knowledge passphrase ☯ 42"
MIB = 1024 * 1024


@pytest.fixture
def relayed(browser: Any, server: str) -> Iterator[tuple[PageHandle, RecordingRelay]]:
    with recording_relay(server) as relay:
        pages = new_page(browser, relay.base_url, viewport={"width": 1280, "height": 900})
        handle = next(pages)
        try:
            yield handle, relay
        finally:
            pages.close()


def test_browser_records_session_sends_no_secret(relayed, tmp_path: Path):
    web, relay = relayed
    page = web.page
    email = "zk-records@example.org"
    web.goto()
    flows.signup(web, email, PASSWORD)

    pdf = media.pdf("Confidential diagnosis: hypothyroidism stage two")
    pdf_path = tmp_path / "haem-panel-q1-confidential.pdf"
    pdf_path.write_bytes(pdf)
    flows.open_upload(web)
    page.set_input_files("#up-file", str(pdf_path))
    flows.fill_upload_form(
        web,
        title="Quarterly haematology panel",
        record_type="Haematology report",
        date="2026-03-14",
        provider="St Elsewhere Haematology Lab",
        tags="cardiology-followup, haematology-annual",
    )
    pdf_rec = flows.submit_upload(web)

    blob = os.urandom(4 * MIB + 5000)  # two segments of high-entropy plaintext
    flows.drop_file(web, "dropzone-list", "genome-export-private.bin", "", blob)
    page.wait_for_selector("#view-upload:not([hidden])")
    flows.fill_upload_form(
        web, title="Genome export from sequencing", provider="Helix Sequencing Partners"
    )
    bin_rec = flows.submit_upload(web)

    # Use it: search, filter, view inline, download, lock and unlock, delete.
    flows.go_records(web)
    page.locator("#f-text").fill("haematology")
    page.locator("#f-tag").select_option("cardiology-followup")
    page.locator("#form-filter").get_by_role("button", name="Clear").click()
    page.get_by_role("button", name="Quarterly haematology panel", exact=True).click()
    page.locator("#rec-viewer iframe").wait_for()
    flows.go_records(web)
    assert flows.download_record(web, bin_rec["id"]) == blob
    page.get_by_role("button", name="Lock").click()
    page.locator("#unlock-password").fill(PASSWORD)
    page.get_by_role("button", name="Unlock").click()
    flows.list_ready(web)
    flows.record_item(web, bin_rec["id"]).get_by_role("button", name="Delete").click()
    page.locator("dialog#confirm").get_by_role("button", name="Delete").click()
    flows.flash_text(web)
    flows.list_ready(web)
    assert not web.problems, web.problems

    # Every key there is, recomputed from what the test knows.
    (signup,) = flows.json_bodies(web, "/auth/signup")
    keys = crypto.derive_keys(PASSWORD, base64.b64decode(signup["salt"]))
    vault_key = crypto.unwrap_vault_key(
        base64.b64decode(signup["wrapped_vault_key"]), keys.wrap_key
    )
    unlocked = crypto.unlock(signup["locked_secret_key"], vault_key)
    secrets = Secrets()
    secrets.add("password", PASSWORD)
    secrets.add("master key", keys.master)
    secrets.add("wrap key", keys.wrap_key)
    secrets.add("vault key", vault_key)
    secrets.add("vault key passphrase", vault_key.hex())
    for i, scalar in enumerate(secret_material(signup["locked_secret_key"], vault_key.hex())):
        secrets.add(f"secret scalar {i}", scalar)
    for rec in (pdf_rec, bin_rec):
        session_key = crypto.open_session_key_envelope(
            base64.b64decode(rec["envelope"]), key=unlocked, signer_public_key=unlocked.public_key
        )
        secrets.add(f"session key of {rec['id']}", session_key)
    for name, text in {
        "title": "Quarterly haematology panel",
        "title 2": "Genome export from sequencing",
        "type": "Haematology report",
        "date": "2026-03-14",
        "provider": "St Elsewhere Haematology Lab",
        "provider 2": "Helix Sequencing Partners",
        "tag 1": "cardiology-followup",
        "tag 2": "haematology-annual",
        "file name": "haem-panel-q1-confidential",
        "file name 2": "genome-export-private",
        "pdf text": "hypothyroidism",
    }.items():
        secrets.add(name, text)
    for off in (0, len(blob) // 3, 4 * MIB - 20, len(blob) - 48):
        secrets.add(f"content bytes at {off}", blob[off : off + 48])
    secrets.add("pdf content", pdf[-120:])
    secrets.add("pdf digest", hashlib.sha256(pdf).digest())

    sent = relay.sent()
    wire = b"".join(sent)
    # The relay really saw the sessions: both uploads, whole, named by CID.
    for rec in (pdf_rec, bin_rec):
        assert f'name="content"; filename="{rec["cid"]}"'.encode() in wire
    assert len(wire) > len(blob)
    assert b"POST /api/v1/records HTTP/1.1" in wire and b"DELETE /api/v1/records/" in wire
    for i, data in enumerate(sent):
        hits = secrets.find_in(data)
        assert not hits, f"connection {i} carried {hits}"
    # And the (decoded) URLs Playwright saw, for good measure.
    for r in web.requests:
        assert not secrets.find_in(r.url.encode()), r.url
