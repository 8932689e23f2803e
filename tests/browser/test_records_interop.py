"""The browser and the CLI are one system: accounts made in either log in from the
other, and records uploaded by either are read byte-identical by the other (several
segments, so segment order and the per-segment header are exercised too)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import flows, media

pytestmark = pytest.mark.browser

PASSWORD = "interop passphrase 7 ✓"
MIB = 1024 * 1024


def _cli(home: Path, server: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
    env.update(HYGIEIA_HOME=str(home), HYGIEIA_SERVER=server, HYGIEIA_PASSWORD=PASSWORD)
    proc = subprocess.run(
        [sys.executable, "-m", "hygieia", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"hygieia {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _noise(size: int, seed: bytes) -> bytes:
    out = bytearray()
    block = seed
    while len(out) < size:
        block = hashlib.sha512(block).digest()
        out += block * 64
    return bytes(out[:size])


def _browser_upload(web, path: Path, **fields: str) -> dict:
    flows.open_upload(web)
    web.page.set_input_files("#up-file", str(path))
    flows.fill_upload_form(web, **fields)
    return flows.submit_upload(web)


def test_browser_record_read_by_cli_and_cli_record_opened_in_browser(web, server, tmp_path):
    page = web.page
    email = "interop-web@example.org"
    web.goto()
    flows.signup(web, email, PASSWORD)  # an account made in the browser...

    # A record sealed in the page: three segments, the last one short.
    data = _noise(2 * 4 * MIB + 777, b"browser")
    src = tmp_path / "MRI report (Müller) ☤.bin"
    src.write_bytes(data)
    rec = _browser_upload(
        web,
        src,
        title="MRI report",
        record_type="Imaging",
        date="2026-04-01",
        provider="Radiology Müller",
        tags="mri, knee",
    )
    assert rec["segments"] == 3

    home = tmp_path / "cli-home"
    _cli(home, server, "login", email)  # ...logs in from the CLI
    listing = json.loads(_cli(home, server, "ls", "--json"))
    (item,) = [it for it in listing if it["id"] == rec["id"]]
    assert item["title"] == "MRI report" and item["type"] == "Imaging"
    assert item["date"] == "2026-04-01" and item["provider"] == "Radiology Müller"
    assert item["tags"] == ["knee", "mri"] and item["filename"] == src.name
    assert item["size"] == len(data) and item["sha256"] == hashlib.sha256(data).hexdigest()
    out = tmp_path / "from-browser.bin"
    _cli(home, server, "get", rec["id"], "-o", str(out))
    assert out.read_bytes() == data

    # A record sealed by the CLI opens in the page, byte for byte, and inline.
    cli_data = _noise(4 * MIB + 4096, b"cli")
    cli_src = tmp_path / "discharge-letter.bin"
    cli_src.write_bytes(cli_data)
    put = _cli(
        home,
        server,
        "put",
        str(cli_src),
        "--title",
        "Discharge letter",
        "--type",
        "letter",
        "--date",
        "2026-04-03",
        "--tag",
        "ward-3",
    )
    cli_id = put.split()[0]
    image = media.png(120, 80, seed=9)
    img_src = tmp_path / "wound.png"
    img_src.write_bytes(image)
    img_id = _cli(home, server, "put", str(img_src), "--title", "Wound photo").split()[0]

    flows.go_records(web)
    item_text = flows.record_item(web, cli_id).inner_text()
    assert "Discharge letter" in item_text and "2026-04-03" in item_text and "ward-3" in item_text
    assert flows.download_record(web, cli_id) == cli_data
    flows.go_records(web)
    page.get_by_role("button", name="Wound photo", exact=True).click()
    img = page.locator("#rec-viewer img[data-kind=image]")
    img.wait_for()
    page.wait_for_function("() => document.querySelector('#rec-viewer img').complete")
    assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [120, 80]
    with page.expect_download() as dl:
        page.locator("#rec-download").click()
    assert dl.value.suggested_filename == "wound.png"
    assert Path(dl.value.path()).read_bytes() == image
    assert not web.problems, web.problems

    # Deleted in the page: gone for the CLI too.
    flows.go_records(web)
    flows.record_item(web, img_id).get_by_role("button", name="Delete").click()
    page.locator("dialog#confirm").get_by_role("button", name="Delete").click()
    assert "Deleted" in flows.flash_text(web)
    ids = {it["id"] for it in json.loads(_cli(home, server, "ls", "--json"))}
    assert ids == {rec["id"], cli_id}


def test_cli_account_logs_in_to_browser(web, server, tmp_path):
    email = "interop-cli@example.org"
    home = tmp_path / "cli-home"
    _cli(home, server, "signup", email)  # an account made by the CLI...
    data = _noise(1000, b"lab")
    src = tmp_path / "lab.txt"
    src.write_bytes(data)
    cli_id = _cli(home, server, "put", str(src), "--title", "Lab values").split()[0]

    web.goto()
    flows.login(web, email, PASSWORD)  # ...logs in from the browser
    assert flows.shown_ids(web) == [cli_id]
    assert flows.download_record(web, cli_id) == data

    page_src = tmp_path / "referral.pdf"
    pdf = media.pdf("Referral")
    page_src.write_bytes(pdf)
    flows.go_records(web)
    rec = _browser_upload(web, page_src, title="Referral", record_type="Letter")
    out = tmp_path / "referral-out.pdf"
    _cli(home, server, "get", rec["id"], "-o", str(out))
    assert out.read_bytes() == pdf
    assert not web.problems, web.problems
