"""Share links (SMART Health Links) in Chromium against a real server, the CLI on the
other side, on both databases (protocol §8).

The spec's example vectors in the page (payload encoding, JWE decryption). A link made
in the page's "Share link" dialog (passcode, QR code) opened in a fresh browser context
with no account: the PDF shown inline and downloaded byte-identical; the same link
opened by ``hygieia link open``. A link made by the CLI (a FHIR bundle) shown and
downloaded in the page. The link key is in no request either page made. Settings lists
the links and revokes one; the viewer then says the link is no longer active.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hygieia.client.shlink import decode_link
from tests.browser import flows
from tests.support.browser import PageHandle, new_page
from tests.support.cli import Cli
from tests.support.databases import postgres_database
from tests.support.server import running_server

pytestmark = pytest.mark.browser

PW = "links web passphrase 7 ✓"
VECTORS = Path(__file__).parents[1] / "vectors" / "shl_example.json"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n" + bytes(range(256)) * 50 + b"\n%%EOF\n"
BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [{"resource": {"resourceType": "Patient", "name": [{"family": "Zq7Brown"}]}}],
}


@contextmanager
def _served(tmp: Path, **env: str) -> Iterator[tuple[str, Path]]:
    data_dir = tmp / "data"
    with running_server(data_dir, **env) as url:
        yield url, data_dir


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("links-web")
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        with postgres_database() as url, _served(tmp, DATABASE_URL=url) as s:
            yield s
    else:
        with _served(tmp) as s:
            yield s


@pytest.fixture
def page(browser: Any, served: tuple[str, Path]) -> Iterator[PageHandle]:
    yield from new_page(browser, served[0], viewport={"width": 1280, "height": 900})


@pytest.fixture
def viewer(browser: Any, served: tuple[str, Path]) -> Iterator[PageHandle]:
    """A second, fresh browser context: no account, nothing stored."""
    yield from new_page(browser, served[0], viewport={"width": 1280, "height": 900})


def test_spec_example_in_the_browser(page: PageHandle) -> None:
    v = json.loads(VECTORS.read_text())
    page.goto()
    got = page.page.evaluate(
        """async (v) => {
          const m = await import('/app/main.js');
          const c = m.crypto;
          const p = m.decodeLink(v.viewer_link);
          const { plaintext, cty } = await c.decryptLinkFile(v.jwe, p.key);
          const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', plaintext));
          let wrong = 'decrypted';
          try { await c.decryptLinkFile(v.jwe, new Uint8Array(32)); } catch (e) { wrong = e.name; }
          return {
            link: m.encodePayload(v.payload),
            flag: p.flag, label: p.label, size: plaintext.length, cty,
            sha256: c.toHex(digest), wrong,
          };
        }""",
        v,
    )
    assert got["link"] == v["link"]
    assert (got["flag"], got["label"]) == ("LP", v["payload"]["label"])
    assert got["size"] == v["plaintext_size"] and got["cty"] == v["cty"]
    assert got["sha256"] == v["plaintext_sha256"]
    assert got["wrong"] == "DecryptionError"
    # A file with a kid and no cty (as the spec's demo data has), made in Python.
    from joserfc import jwe
    from joserfc.jwk import OctKey

    key = decode_link(v["viewer_link"]).key
    header = {"alg": "dir", "enc": "A256GCM", "kid": "x"}
    foreign = jwe.encrypt_compact(header, b"{}", OctKey.import_key(key))
    opened = page.page.evaluate(
        """async ([jwe, key]) => {
          const c = (await import('/app/main.js')).crypto;
          const r = await c.decryptLinkFile(jwe, new Uint8Array(key));
          return [new TextDecoder().decode(r.plaintext), r.cty];
        }""",
        [foreign, list(key)],
    )
    assert opened == ["{}", None]
    assert not page.problems, page.problems


def _open_in_viewer(viewer: PageHandle, link: str, *, passcode: str | None = None) -> None:
    viewer.page.goto("about:blank")  # a new load, not a same-page fragment change
    viewer.goto(link[len(viewer.base_url) :])
    p = viewer.page
    p.wait_for_selector("#view-link:not([hidden])")
    p.locator("#link-recipient").fill("Dr. Zq7 Viewer, ER")
    if passcode is not None:
        p.locator("#link-passcode").fill(passcode)
    p.get_by_role("button", name="Open", exact=True).click()


def _download(viewer: PageHandle, which: str) -> bytes:
    with viewer.page.expect_download() as dl:
        viewer.page.locator(f'[data-download="{which}"]').first.click()
    with open(dl.value.path(), "rb") as fh:
        return fh.read()


def test_links_between_web_and_cli(
    page: PageHandle, viewer: PageHandle, served: tuple[str, Path], tmp_path: Path
) -> None:
    url, data_dir = served
    email = f"ann-{tmp_path.name[-12:]}@example.org".lower()
    cli = Cli(server=url, home=tmp_path / "cli", data_dir=data_dir)
    # Signed up in the page (the page refuses the suite's cheap KDF), then the CLI logs in.
    page.goto()
    flows.signup(page, email, PW)
    cli.run("login", email, password=PW)
    (tmp_path / "letter.pdf").write_bytes(PDF)
    (tmp_path / "bundle.json").write_text(json.dumps(BUNDLE))
    pdf_id = cli.run("put", str(tmp_path / "letter.pdf"), "--title", "Zq7 Letter", password=PW)
    pdf_id_s = pdf_id.stdout.split()[0]
    fhir_id = cli.run("put", str(tmp_path / "bundle.json"), password=PW).stdout.split()[0]

    # The web: open the PDF, make a link with a passcode.
    flows.go_records(page)
    p = page.page
    flows.record_item(page, pdf_id_s).locator(".record-open").click()
    p.wait_for_selector("#view-record:not([hidden])")
    p.locator("#rec-link").click()
    p.locator("#link-label-input").fill("Zq7 for the ER")
    p.locator("#link-passcode-new").fill("zq7 passcode")
    p.locator("#link-submit").click()
    p.wait_for_selector("#link-result:not([hidden])")
    link = p.locator("#link-text").input_value()
    assert link.startswith(url + "/#shlink:/")
    payload = decode_link(link)
    assert payload.flag == "P" and payload.label == "Zq7 for the ER"
    assert p.locator("#link-qr").get_attribute("src").startswith("data:image/svg+xml")
    assert p.locator("#link-qr").get_attribute("data-ecl") == "M"
    page.shot("share-link-dialog")
    p.locator("#link-close").click()

    # A fresh context with no account: passcode, the PDF inline, the download identical.
    _open_in_viewer(viewer, link, passcode="wrong one")
    assert "wrong" in flows.flash_text(viewer)
    viewer.page.locator("#link-passcode").fill("zq7 passcode")
    viewer.page.get_by_role("button", name="Open", exact=True).click()
    viewer.page.wait_for_selector("body[data-link-opened=true]")
    assert viewer.page.locator('#link-files iframe[data-kind="pdf"]').count() == 1
    viewer.shot("share-link-viewer")
    assert _download(viewer, "attachment") == PDF

    # The CLI opens the page's link.
    out = tmp_path / "from-web"
    code: dict[str, Any] = {"HYGIEIA_LINK_PASSCODE": "zq7 passcode"}
    cli.run("link", "open", link, "-o", str(out), "--passcode", **code)
    assert (out / "Zq7 Letter.pdf").read_bytes() == PDF

    # A CLI link (FHIR bundle, no passcode) shown and downloaded in the viewer.
    cli_link = cli.run("link", "create", fhir_id, "--no-qr", password=PW).stdout.strip()
    _open_in_viewer(viewer, cli_link)
    viewer.page.wait_for_selector("body[data-link-opened=true]")
    shown = viewer.page.locator('#link-files pre[data-kind="fhir"]').inner_text()
    assert "Zq7Brown" in shown and json.loads(shown) == BUNDLE
    assert json.loads(_download(viewer, "file")) == BUNDLE

    # The link keys were never sent, by either page.
    keys: dict[str, bytes | str] = {
        "web link key": payload.key,
        "cli link key": decode_link(cli_link).key,
    }
    flows.assert_never_sent(page, keys)
    flows.assert_never_sent(viewer, keys)
    # Nor the link itself (the fragment carries the key inside its base64url payload).
    for handle in (page, viewer):
        for r in handle.requests:
            assert "shlink" not in r.url and b"shlink" not in r.body, r.url

    # Settings lists both links; revoking the page's ends it.
    p.locator("#nav").get_by_role("button", name="Settings").click()
    p.wait_for_selector("#links-list li")
    items = p.locator("#links-list li")
    assert items.count() == 2
    labelled = p.locator("#links-list li", has_text="Zq7 for the ER")
    assert labelled.get_attribute("data-state") == "active"
    labelled.get_by_role("button", name="Revoke").click()
    p.wait_for_selector('#links-list li[data-state="revoked"]')
    page.shot("share-links-settings")
    _open_in_viewer(viewer, link, passcode="zq7 passcode")
    assert "no longer active" in flows.flash_text(viewer)
    trail = json.loads(cli.run("audit", "--json").stdout)
    assert any(
        e["event"] == "link.opened" and e["recipient"] == "Dr. Zq7 Viewer, ER" for e in trail
    )
    assert not page.problems, page.problems
    assert not viewer.problems, viewer.problems
