"""Share links through the CLI on a real server (both databases): create, open from the
CLI byte-identical (a PDF wrapped in a DocumentReference, a FHIR bundle as it is),
passcode, max opens, list, revoke, the owner's access trail, and the encrypted copy
unpinned when the link ends (protocol §8)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hygieia.client.shlink import decode_link
from hygieia.storage import LocalBlobStore
from tests.support.cli import Cli

PW = "link cli password 42"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [{"resource": {"resourceType": "Patient", "name": [{"family": "Brown"}]}}],
}


def put(cli: Cli, path: Path, *args: str) -> str:
    return cli.run("put", str(path), *args, password=PW).stdout.split()[0]


def _pins(cli: Cli) -> set[str]:
    return set(LocalBlobStore(cli.data_dir / "blocks").pins())


def _link(cli: Cli, *args: str, passcode: str | None = None) -> str:
    env: dict[str, Any] = {"HYGIEIA_LINK_PASSCODE": passcode} if passcode else {}
    proc = cli.run("link", "create", *args, "--no-qr", password=PW, **env)
    (line,) = [x for x in proc.stdout.splitlines() if x.strip()]
    return line.strip()


def test_create_open_revoke(cli: Cli, tmp_path: Path) -> None:
    cli.new_account("ann@example.org", PW)
    (tmp_path / "letter.pdf").write_bytes(PDF)
    (tmp_path / "bundle.json").write_text(json.dumps(BUNDLE))
    pdf_id = put(
        cli, tmp_path / "letter.pdf", "--title", "Discharge letter", "--date", "2026-03-04"
    )
    fhir_id = put(cli, tmp_path / "bundle.json", "--type", "fhir")
    pins_before = _pins(cli)

    link = _link(cli, pdf_id, fhir_id, "--label", "For the ER", "--expires", "2d")
    assert link.startswith(cli.server + "/#shlink:/")
    payload = decode_link(link)
    assert payload.label == "For the ER" and payload.flag == "" and len(payload.key) == 32
    assert payload.url.startswith(cli.server + "/api/v1/shl/") and len(payload.url) <= 128
    assert len(_pins(cli) - pins_before) == 2  # one JWE per record, pinned

    out = tmp_path / "opened"
    opened = cli.run("link", "open", link, "-o", str(out), "--recipient", "Dr. Who, ER")
    assert (out / "Discharge letter.pdf").read_bytes() == PDF
    doc = json.loads((out / "link-1.json").read_text())
    assert doc["resourceType"] == "DocumentReference"
    assert doc["content"][0]["attachment"]["contentType"] == "application/pdf"
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == PDF
    assert doc["date"] == "2026-03-04T00:00:00Z" and doc["description"] == "Discharge letter"
    assert json.loads((out / "link-2.json").read_text()) == BUNDLE  # FHIR as it is
    assert "Discharge letter.pdf" in opened.stdout

    listed = json.loads(cli.run("link", "ls", "--json", password=PW).stdout)
    (info,) = listed
    assert info["label"] == "For the ER" and info["records"] == [pdf_id, fhir_id]
    assert info["state"] == "active" and info["opens"] == 1

    trail = json.loads(cli.run("audit", "--json").stdout)
    opens = [e for e in trail if e["event"] == "link.opened"]
    assert opens and opens[0]["recipient"] == "Dr. Who, ER" and opens[0]["address"]

    cli.run("link", "revoke", info["id"][:8])
    assert _pins(cli) == pins_before  # the JWEs are unpinned
    gone = cli.run("link", "open", link, "-o", str(tmp_path / "again"), check=False)
    assert gone.returncode != 0 and "not active" in gone.stderr
    listed = json.loads(cli.run("link", "ls", "--json", password=PW).stdout)
    assert listed[0]["state"] == "revoked"


def test_passcode_and_max_opens(cli: Cli, tmp_path: Path) -> None:
    cli.new_account("ann@example.org", PW)
    (tmp_path / "bundle.json").write_text(json.dumps(BUNDLE))
    rid = put(cli, tmp_path / "bundle.json")
    link = _link(cli, rid, "--passcode", "--max-opens", "2", passcode="open sesame 1")
    assert decode_link(link).flag == "P"
    out = tmp_path / "o"
    missing = cli.run("link", "open", link, "-o", str(out), check=False)
    assert missing.returncode == 3 and "needs a passcode" in missing.stderr
    wrong = cli.run(
        "link", "open", link, "-o", str(out), "--passcode", check=False, HYGIEIA_LINK_PASSCODE="no"
    )
    assert wrong.returncode == 3 and "9 attempts left" in wrong.stderr
    code: dict[str, Any] = {"HYGIEIA_LINK_PASSCODE": "open sesame 1"}
    for _ in range(2):
        cli.run("link", "open", link, "-o", str(out), "--passcode", **code)
    third = cli.run("link", "open", link, "-o", str(out), "--passcode", check=False, **code)
    assert third.returncode != 0 and "not active" in third.stderr
    (info,) = json.loads(cli.run("link", "ls", "--json", password=PW).stdout)
    assert info["state"] == "exhausted" and info["opens"] == 2 and info["attempts_left"] == 9


def test_direct_link_and_qr(cli: Cli, tmp_path: Path) -> None:
    cli.new_account("ann@example.org", PW)
    (tmp_path / "bundle.json").write_text(json.dumps(BUNDLE))
    rid = put(cli, tmp_path / "bundle.json")
    proc = cli.run("link", "create", rid, "--direct", "--qr", password=PW)
    link = proc.stdout.splitlines()[0].strip()
    assert decode_link(link).flag == "U"
    assert "\u2580" in proc.stdout or "\u2584" in proc.stdout or "\u2588" in proc.stdout
    out = tmp_path / "u"
    cli.run("link", "open", link, "-o", str(out))
    assert json.loads((out / "link-1.json").read_text()) == BUNDLE
