"""A hostile server rearranging records in its own database (issue 9, finding 13).

A real ``hygieia serve`` on SQLite and PostgreSQL; the test plays the compromised server
by rewriting its rows (each row's stored API rendering included, so the server serves
the forgery on every route). The client must refuse, never hand over the wrong record.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client import records as recs
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.db.engine import make_engine
from hygieia.db.models import Record
from hygieia.services.records import RecordRow, render_public
from tests.support.cli import Cli

PW = "binding test password 5"
# Everything a row says about its record except the id it is filed under.
CONTENT = ("cid", "size", "segments", "owner_pkesk", "sealed_metadata", "session_key_envelope")


@pytest.fixture
def rows(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def snapshot(rows: Engine, record_id: str) -> dict[str, Any]:
    with Session(rows) as db:
        rec = db.get(Record, record_id)
        assert rec is not None
        return {"owner_id": rec.owner_id, "created_at": rec.created_at} | {
            k: getattr(rec, k) for k in CONTENT
        }


def file_under(rows: Engine, record_id: str, values: dict[str, Any]) -> None:
    """Make row ``record_id`` (created if missing) say ``values``, as the server would."""
    with Session(rows) as db:
        rec = db.get(Record, record_id) or Record(id=record_id, **values, listing="")
        for name, value in values.items():
            setattr(rec, name, value)
        rec.listing = render_public(RecordRow(**{f: getattr(rec, f) for f in RecordRow._fields}))
        db.add(rec)
        db.commit()


def only(values: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: values[k] for k in names}


Vault = tuple[HygieiaClient, acct.LoggedIn, dict[str, str]]


@pytest.fixture
def vault(cli: Cli, tmp_path: Path) -> Vault:
    cli.new_account("binding@example.org", PW)  # logged in for the CLI too
    session = acct.login(HygieiaClient(cli.server), "binding@example.org", PW)
    api = HygieiaClient(cli.server, token=session.token)
    ids = {}
    for title, data in (("Blood count", b"haemoglobin 14.1 g/dl\n" * 100), ("Scan", b"\x89PNG")):
        path = tmp_path / f"{title}.txt"
        path.write_bytes(data)
        ids[title] = recs.put(api, session, path, recs.RecordFields(title=title)).id
    return api, session, ids


def said(text: str) -> str:
    """The CLI's words without Rich's line wrapping."""
    return " ".join(text.split())


def refused(api: HygieiaClient, session: acct.LoggedIn, record_id: str, tmp_path: Path) -> str:
    """Every read of ``record_id`` fails as a mismatch and writes nothing; the message."""
    target = tmp_path / "out.bin"
    with pytest.raises(recs.RecordMismatchError) as exc:
        recs.get(api, session, record_id, target)
    with pytest.raises(recs.RecordMismatchError):
        recs.get_raw(api, session, record_id, target)
    with pytest.raises(recs.RecordMismatchError):
        list(recs.iter_records(api, session.unlock()))
    assert not target.exists() and not target.with_name("out.bin.pkesk").exists()
    assert list(tmp_path.glob(".hygieia-*")) == []
    return str(exc.value)


def test_whole_record_swapped(vault: Vault, rows: Engine, cli: Cli, tmp_path: Path) -> None:
    """The server files record B (metadata, content, key packets) under A's id and
    the other way round. Failed before: asking for "Blood count" gave "Scan", verified,
    without an error, since B's metadata, CID and content agree with each other."""
    api, session, ids = vault
    a, b = ids["Blood count"], ids["Scan"]
    row_a, row_b = snapshot(rows, a), snapshot(rows, b)
    file_under(rows, a, only(row_b, *CONTENT))
    file_under(rows, b, only(row_a, *CONTENT))
    message = refused(api, session, a, tmp_path)
    assert f"record {b}'s sealed metadata for record {a}" in message
    # The CLI says so, and writes nothing.
    proc = cli.run("get", a, "-o", str(tmp_path / "cli.out"), password=PW, check=False)
    assert proc.returncode == 1 and "swapped, moved or resurrected" in said(proc.stderr)
    assert "nothing was written" in said(proc.stderr) and not (tmp_path / "cli.out").exists()
    proc = cli.run("ls", "--json", password=PW, check=False)
    assert proc.returncode == 1 and "swapped, moved or resurrected" in said(proc.stderr)


def test_metadata_swapped(vault: Vault, rows: Engine, tmp_path: Path) -> None:
    """Only the sealed metadata changes places: A is listed as "Scan" and B as "Blood
    count". Failed before in the listing (``ls`` showed the swapped titles, verified);
    ``get`` caught it by the sealed CID, as it still does, now with the id."""
    api, session, ids = vault
    a, b = ids["Blood count"], ids["Scan"]
    row_a, row_b = snapshot(rows, a), snapshot(rows, b)
    file_under(rows, a, only(row_b, "sealed_metadata"))
    file_under(rows, b, only(row_a, "sealed_metadata"))
    refused(api, session, a, tmp_path)
    refused(api, session, b, tmp_path)


def test_content_swapped(vault: Vault, rows: Engine, tmp_path: Path) -> None:
    """A keeps its metadata but is given B's content (CID, sizes and PKESK, so that it
    decrypts). Refused before as well, by the CID sealed in A's metadata: kept as the
    check that content stays bound through it."""
    api, session, ids = vault
    a, b = ids["Blood count"], ids["Scan"]
    row_b = snapshot(rows, b)
    file_under(rows, a, only(row_b, "cid", "size", "segments", "owner_pkesk"))
    refused(api, session, a, tmp_path)
    # Content alone, the row left as it was: the download's CID is checked too.
    file_under(rows, a, only(snapshot(rows, b), "cid"))
    with pytest.raises(recs.RecordVerificationError):
        recs.get(api, session, a, tmp_path / "x")


def test_deleted_record_resurrected_under_another_id(
    vault: Vault, rows: Engine, tmp_path: Path
) -> None:
    """The owner deletes "Blood count"; the server keeps its rows' worth and serves it
    again under a fresh id. Failed before: the resurrected record opened, verified."""
    api, session, ids = vault
    gone = ids["Blood count"]
    row = snapshot(rows, gone)
    recs.remove(api, gone)
    with pytest.raises(ApiError) as exc:  # really gone
        recs.get(api, session, gone, tmp_path / "x")
    assert exc.value.status == 404
    ghost = crypto.new_record_id()
    file_under(rows, ghost, row)
    message = refused(api, session, ghost, tmp_path)
    assert f"record {gone}'s sealed metadata for record {ghost}" in message


def test_legacy_record_opens_flagged_unbound(vault: Vault, cli: Cli, tmp_path: Path) -> None:
    """A record sealed before the binding (version-1 metadata, no id sent) still opens,
    everywhere marked as unbound (legacy)."""
    api, session, _ = vault
    key = session.unlock()
    src = tmp_path / "old.txt"
    src.write_bytes(b"an old letter")
    session_key = crypto.new_session_key()
    sealed, digest = recs.seal_file(src, session_key=session_key, signer=key, workdir=tmp_path)
    fields = recs.build_metadata(
        src, sealed=sealed, sha256=digest, fields=recs.RecordFields(title="Old letter")
    )
    legacy = json.dumps({"v": 1, **fields}).encode()
    meta = {
        "cid": sealed.cid,
        "size": sealed.size,
        "segments": sealed.segments,
        "pkesk": base64.b64encode(crypto.make_pkesk(session_key, key.public_key)).decode(),
        "sealed_metadata": base64.b64encode(
            crypto.seal_message(legacy, recipients=[key.public_key], signer=key)
        ).decode(),
        "envelope": base64.b64encode(
            crypto.seal_session_key_envelope(
                session_key, owner_public_key=key.public_key, signer=key
            )
        ).decode(),
    }
    r = httpx.post(
        f"{cli.server}/api/v1/records",
        headers={"authorization": f"Bearer {session.token}"},
        files={
            "meta": (None, json.dumps(meta)),
            "content": (sealed.cid, sealed.path.read_bytes(), "application/octet-stream"),
        },
    )
    assert r.status_code == 201, r.text
    old = r.json()["id"]
    got = recs.get(api, session, old, tmp_path / "old.out")
    assert (tmp_path / "old.out").read_bytes() == b"an old letter"
    assert not crypto.metadata_is_bound(got)
    listed = {i.id: i for i in recs.iter_records(api, key)}
    assert not listed[old].bound and listed[old].as_json()["bound"] is False
    assert all(i.bound for i in listed.values() if i.id != old)
    proc = cli.run("get", old, "-o", str(tmp_path / "cli.out"), password=PW)
    assert "unbound (legacy) record" in said(proc.stderr)
    proc = cli.run("ls", password=PW)
    assert "1 unbound (legacy) record" in said(proc.stderr) and old in said(proc.stderr)
