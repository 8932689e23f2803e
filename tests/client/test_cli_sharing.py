"""Sharing through the CLI between two accounts on a real server (both databases):
share, read as the recipient, revoke, rotate, remove from my list, the access trail, and
the trust-on-first-use checks of keys (protocol §7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hygieia.storage import LocalBlobStore
from tests.support.cli import Cli

PW = "sharing cli password 77"


def put(cli: Cli, path: Path, *args: str) -> tuple[str, str]:
    out = cli.run("put", str(path), *args, password=PW).stdout.strip().split()
    return out[0], out[1]


def _pair(cli: Cli, tmp_path: Path) -> tuple[Cli, Cli]:
    ann = Cli(server=cli.server, home=tmp_path / "ann", data_dir=cli.data_dir)
    bob = Cli(server=cli.server, home=tmp_path / "bob", data_dir=cli.data_dir)
    ann.new_account("ann@example.org", PW)
    bob.new_account("bob@example.org", PW)
    return ann, bob


def _pins(cli: Cli) -> set[str]:
    return set(LocalBlobStore(cli.data_dir / "blocks").pins())


def test_share_both_ways_revoke_rotate(cli: Cli, tmp_path: Path) -> None:
    ann, bob = _pair(cli, tmp_path)
    carl = Cli(server=cli.server, home=tmp_path / "carl", data_dir=cli.data_dir)
    carl.new_account("carl@example.org", PW)
    big = os.urandom(9 * 1024 * 1024 + 12345)  # three segments
    small = b"%PDF-1.7 small\n"
    (tmp_path / "scan.bin").write_bytes(big)
    (tmp_path / "letter.pdf").write_bytes(small)
    big_id, big_cid = put(ann, tmp_path / "scan.bin", "--title", "Scan", "--type", "imaging")
    small_id, small_cid = put(ann, tmp_path / "letter.pdf", "--tag", "gp", "--date", "2026-01-02")

    # Ann shares both with Bob and Carl; the first use of each key is announced.
    added = ann.run(
        "share",
        "add",
        big_id,
        small_id,
        "--with",
        "bob@example.org",
        "--with",
        "carl@example.org",
        password=PW,
    )
    assert "new contact bob@example.org" in added.stderr
    assert added.stdout.count("shared ") == 4
    contacts = json.loads((ann.home / "contacts.json").read_text())
    assert {k.split()[1] for k in contacts} == {"bob@example.org", "carl@example.org"}
    assert oct((ann.home / "contacts.json").stat().st_mode & 0o777) == "0o600"

    # Bob sees them, with Ann as owner, and gets byte-identical content and metadata.
    listed = json.loads(bob.run("shared", "ls", "--json", password=PW).stdout)
    by_id = {item["id"]: item for item in listed}
    assert set(by_id) == {big_id, small_id}
    assert by_id[big_id]["owner"] == "ann@example.org"
    assert (by_id[big_id]["cid"], by_id[small_id]["cid"]) == (big_cid, small_cid)  # unchanged
    own = {i["id"]: i for i in json.loads(ann.run("ls", "--json", password=PW).stdout)}
    for rid in (big_id, small_id):
        for field in ("title", "type", "date", "tags", "filename", "media_type", "size", "sha256"):
            assert by_id[rid][field] == own[rid][field], field
    bob.run("get", big_id, "-o", str(tmp_path / "b-big"), password=PW)
    bob.run("get", small_id, "-o", str(tmp_path / "b-small"), password=PW)
    assert (tmp_path / "b-big").read_bytes() == big
    assert (tmp_path / "b-small").read_bytes() == small

    # And the other way: Bob shares with Ann, who opens it.
    (tmp_path / "bob.txt").write_bytes(b"bob's record")
    bob_id, _ = put(bob, tmp_path / "bob.txt")
    bob.run("share", "add", bob_id, "--with", "ann@example.org", password=PW)
    ann.run("get", bob_id, "-o", str(tmp_path / "a-bob"), password=PW)
    assert (tmp_path / "a-bob").read_bytes() == b"bob's record"

    # Bob can neither delete nor re-share Ann's record.
    assert "not_found" in bob.run("rm", big_id, check=False).stderr
    reshare = bob.run(
        "share", "add", big_id, "--with", "carl@example.org", password=PW, check=False
    )
    assert reshare.returncode == 1 and "not_found" in reshare.stderr

    # Access trail: Ann's has Bob's reads; Bob's has none of Ann's records.
    trail = json.loads(ann.run("audit", "--json").stdout)
    reads = {(e["event"], e.get("record_id"), e.get("recipient")) for e in trail}
    assert ("share.content_read", big_id, "bob@example.org") in reads
    assert ("share.metadata_read", big_id, "bob@example.org") in reads
    assert all(
        e["address"] is None
        for e in trail
        if e["event"].startswith("share.") and e["event"].endswith("_read")
    )
    bob_trail = json.loads(bob.run("audit", "--json").stdout)
    assert not any(e.get("record_id") in {big_id, small_id} for e in bob_trail)

    # Listing grants.
    grants = json.loads(ann.run("share", "ls", big_id, "--json").stdout)
    assert {g["email"] for g in grants} == {"bob@example.org", "carl@example.org"}
    assert len(json.loads(ann.run("share", "ls", "--json").stdout)) == 4

    # Revoke Bob: 404 at once.
    ann.run("share", "rm", big_id, "--with", "bob@example.org")
    gone = bob.run("get", big_id, "-o", str(tmp_path / "x"), password=PW, check=False)
    assert gone.returncode == 1 and "not_found" in gone.stderr
    assert not (tmp_path / "x").exists()

    # Rotate: new id and CID, old CID unpinned, Carl still opens it, Bob's old key doesn't.
    assert big_cid in _pins(ann)
    rotated = ann.run("share", "rotate", big_id, password=PW)
    new_id = rotated.stdout.strip()
    assert new_id != big_id
    own = {i["id"]: i for i in json.loads(ann.run("ls", "--json", password=PW).stdout)}
    assert big_id not in own and own[new_id]["title"] == "Scan"
    new_cid = own[new_id]["cid"]
    assert new_cid != big_cid
    assert big_cid not in _pins(ann) and new_cid in _pins(ann)
    carl.run("get", new_id, "-o", str(tmp_path / "c-big"), password=PW)
    assert (tmp_path / "c-big").read_bytes() == big
    assert {g["email"] for g in json.loads(ann.run("share", "ls", new_id, "--json").stdout)} == {
        "carl@example.org"
    }
    assert (
        not (ann.home / "rotations.json").exists()
        or json.loads((ann.home / "rotations.json").read_text()) == {}
    )

    # Carl removes the small one from his list; Ann keeps it.
    carl.run("shared", "rm", small_id)
    assert small_id not in {
        i["id"] for i in json.loads(carl.run("shared", "ls", "--json", password=PW).stdout)
    }
    assert small_id in {i["id"] for i in json.loads(ann.run("ls", "--json", password=PW).stdout)}
    assert "share.removed" in {e["event"] for e in json.loads(ann.run("audit", "--json").stdout)}


def test_changed_key_refused_until_accepted(cli: Cli, tmp_path: Path) -> None:
    """A different key for a remembered email (here: the pin edited to another
    fingerprint, as a substituted key would look) is refused with a clear warning."""
    ann, bob = _pair(cli, tmp_path)
    (tmp_path / "r.txt").write_bytes(b"x")
    rid, _ = put(ann, tmp_path / "r.txt")
    ann.run("share", "add", rid, "--with", "bob@example.org", password=PW)
    path = ann.home / "contacts.json"
    pins = json.loads(path.read_text())
    key = next(k for k in pins if k.endswith(" bob@example.org"))
    real = pins[key]["fingerprint"]
    pins[key]["fingerprint"] = "0" * 40
    path.write_text(json.dumps(pins))
    refused = ann.run("share", "add", rid, "--with", "bob@example.org", password=PW, check=False)
    assert refused.returncode == 1
    assert "has CHANGED" in refused.stderr and "--accept-new-key" in refused.stderr
    ann.run("share", "add", rid, "--with", "bob@example.org", "--accept-new-key", password=PW)
    assert json.loads(path.read_text())[key]["fingerprint"] == real

    # The recipient pins the owner the same way.
    bob.run("shared", "ls", password=PW)
    bpath = bob.home / "contacts.json"
    bpins = json.loads(bpath.read_text())
    bkey = next(k for k in bpins if k.endswith(" ann@example.org"))
    bpins[bkey]["fingerprint"] = "F" * 40
    bpath.write_text(json.dumps(bpins))
    refused = bob.run("get", rid, "-o", str(tmp_path / "y"), password=PW, check=False)
    assert refused.returncode == 1 and "has CHANGED" in refused.stderr
    assert not (tmp_path / "y").exists()
