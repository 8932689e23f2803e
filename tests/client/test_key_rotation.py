"""``hygieia key rotate`` and ``hygieia recovery rotate`` through the CLI against a real
server (both databases): records open with the new key, the old locked key and old
vault key open nothing current, ``--reencrypt`` gives new CIDs and unpins the old ones,
a rotation killed mid-way resumes, the old recovery code dies (protocol "Key rotation")."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient
from hygieia.storage import LocalBlobStore
from tests.support.accounts import TEST_KDF
from tests.support.cli import Cli
from tests.support.kdf import CLIENT_ENV

PW = "rotation cli password 58"


def _account(cli: Cli, email: str) -> str:
    """Sign up (cheap KDF), log the CLI in; returns the recovery code."""
    with HygieiaClient(cli.server) as api:
        code = acct.signup(api, email, PW, kdf=TEST_KDF).recovery_code
    cli.run("login", email, password=PW)
    return code


def _put(cli: Cli, path: Path) -> tuple[str, str]:
    out = cli.run("put", str(path), password=PW).stdout.strip().split()
    return out[0], out[1]


def _records(cli: Cli, tmp_path: Path, n: int) -> dict[str, bytes]:
    made: dict[str, bytes] = {}
    for i in range(n):
        data = os.urandom(1000 + i) + f"record {i}".encode()
        path = tmp_path / f"r{i}.bin"
        path.write_bytes(data)
        made[_put(cli, path)[0]] = data
    return made


def _old_secrets(cli: Cli, email: str) -> tuple[crypto.UnlockedKey, Any]:
    """The old locked key and vault key, as an attacker who had them would."""
    with HygieiaClient(cli.server) as api:
        session = acct.login(api, email, PW)
        return session.unlock(), session


def _assert_all_open(cli: Cli, tmp_path: Path, made: dict[str, bytes]) -> None:
    for rid, data in made.items():
        target = tmp_path / f"{rid}.out"
        cli.run("get", rid, "-o", str(target), password=PW)
        assert target.read_bytes() == data


def _assert_old_key_dead(cli: Cli, email: str, old: crypto.UnlockedKey) -> int:
    """Try the old key on every current PKESK, sealed metadata and envelope."""
    tried = 0
    with HygieiaClient(cli.server) as api:
        acct.login(api, email, PW)
        for item in api.list_records().items:
            with pytest.raises(crypto.DecryptionError):
                crypto.open_record_metadata(
                    item.sealed_metadata,
                    record_id=item.id,
                    key=old,
                    signer_public_key=old.public_key,
                )
            with pytest.raises(crypto.DecryptionError):
                crypto.open_session_key_envelope(
                    item.envelope, key=old, signer_public_key=old.public_key
                )
            with api.record_content(item.id) as chunks:
                content = b"".join(chunks)
            with pytest.raises(crypto.DecryptionError):
                for _ in crypto.open_segments(
                    io.BytesIO(content), signer_public_key=old.public_key, pkesk=item.pkesk, key=old
                ):
                    pass
            tried += 1
        me = api.me()
        with pytest.raises(crypto.DecryptionError):
            crypto.unlock(me.locked_secret_key, b"\0" * 32)
    return tried


def _pins(cli: Cli) -> set[str]:
    return set(LocalBlobStore(cli.data_dir / "blocks").pins())


def test_rotate_records_open_old_key_dead(cli: Cli, tmp_path: Path) -> None:
    ann = Cli(server=cli.server, home=tmp_path / "ann", data_dir=cli.data_dir)
    bob = Cli(server=cli.server, home=tmp_path / "bob", data_dir=cli.data_dir)
    code = _account(ann, "ann@example.org")
    bob_code = _account(bob, "bob@example.org")
    made = _records(ann, tmp_path, 3)
    shared_id = next(iter(made))
    ann.run("share", "add", shared_id, "--with", "bob@example.org", password=PW)
    bob.run("get", shared_id, "-o", str(tmp_path / "bob-before"), password=PW)
    old, old_session = _old_secrets(ann, "ann@example.org")
    cids = {i["id"]: i["cid"] for i in json.loads(ann.run("ls", "--json", password=PW).stdout)}

    wrong = ann.run("key", "rotate", password=PW, check=False, HYGIEIA_RECOVERY_CODE="A" * 32)
    assert wrong.returncode == 1 and "recovery code" in wrong.stderr
    done = ann.run("key", "rotate", password=PW, HYGIEIA_RECOVERY_CODE=code)
    assert "Key rotated" in done.stdout
    with HygieiaClient(ann.server) as api:
        new = acct.login(api, "ann@example.org", PW)
        assert new.account.fingerprint != old.fingerprint
        # The same password and the same recovery code unlock the new vault key.
        rkeys = crypto.derive_recovery_keys(
            crypto.parse_recovery_code(code), new.account.recovery_salt
        )
        assert (
            crypto.unwrap_vault_key(new.account.recovery_wrapped_vault_key, rkeys.wrap_key)
            == new.vault_key
        )
        assert new.vault_key != old_session.vault_key
    # Content untouched: the same CIDs; every record opens byte for byte.
    after = {i["id"]: i["cid"] for i in json.loads(ann.run("ls", "--json", password=PW).stdout)}
    assert after == cids
    _assert_all_open(ann, tmp_path, made)
    assert _assert_old_key_dead(ann, "ann@example.org", old) == 3
    # The old locked key with the old vault key still unlocks (it is the attacker's
    # copy), but the account's current locked key does not open with the old vault key.
    with HygieiaClient(ann.server) as api:
        acct.login(api, "ann@example.org", PW)
        with pytest.raises(crypto.CryptoError):
            crypto.unlock(api.me().locked_secret_key, old_session.vault_key)
    # The cached kit is the new key's.
    kit = json.loads((ann.home / "kit.json").read_text())
    assert kit["account"]["fingerprint"] != old.fingerprint
    assert len(kit["records"]) == 3
    # …and opens every record without the server (content verified with the signer the
    # re-sealed metadata names).
    ann.run("export", "car", "-o", str(tmp_path / "vault.car"))
    for rid, data in made.items():
        target = tmp_path / f"{rid}.offline"
        ann.run(
            "offline",
            "get",
            rid,
            "--car",
            str(tmp_path / "vault.car"),
            "-o",
            str(target),
            password=PW,
        )
        assert target.read_bytes() == data
    # Bob: the owner's key changed, so he is asked to accept it; then the share opens
    # (its grant was re-signed by the new key; the content by the old one, named in it).
    refused = bob.run("get", shared_id, "-o", str(tmp_path / "bob-x"), password=PW, check=False)
    assert refused.returncode == 1
    bob.run("get", shared_id, "-o", str(tmp_path / "bob-after"), "--accept-new-key", password=PW)
    assert (tmp_path / "bob-after").read_bytes() == made[shared_id]
    # Bob rotates his own key: Ann's grant stays sealed to his old key. His listing says
    # so instead of failing; only Ann can share it again.
    bob.run("key", "rotate", password=PW, HYGIEIA_RECOVERY_CODE=bob_code)
    listed = bob.run("shared", "ls", "--json", password=PW)
    assert json.loads(listed.stdout) == [] and "rotated away" in listed.stderr
    ann.run("share", "add", shared_id, "--with", "bob@example.org", "--accept-new-key", password=PW)
    bob.run("get", shared_id, "-o", str(tmp_path / "bob-again"), password=PW)
    assert (tmp_path / "bob-again").read_bytes() == made[shared_id]


def test_reencrypt_new_cids_old_unpinned(cli: Cli, tmp_path: Path) -> None:
    code = _account(cli, "ann@example.org")
    made = _records(cli, tmp_path, 2)
    old, _ = _old_secrets(cli, "ann@example.org")
    before = {i["id"]: i["cid"] for i in json.loads(cli.run("ls", "--json", password=PW).stdout)}
    assert set(before.values()) <= _pins(cli)
    out = cli.run("key", "rotate", "--reencrypt", password=PW, HYGIEIA_RECOVERY_CODE=code).stdout
    moved = dict(
        line.split(" -> ") for line in out.splitlines() if " -> " in line and "Key" not in line
    )
    assert set(moved) == set(made)
    after = {i["id"]: i["cid"] for i in json.loads(cli.run("ls", "--json", password=PW).stdout)}
    assert set(after) == set(moved.values())
    assert not set(after.values()) & set(before.values())
    pins = _pins(cli)
    assert not set(before.values()) & pins and set(after.values()) <= pins
    _assert_all_open(cli, tmp_path, {moved[k]: v for k, v in made.items()})
    assert _assert_old_key_dead(cli, "ann@example.org", old) == 2


def test_interrupted_rotation_resumes(cli: Cli, tmp_path: Path) -> None:
    code = _account(cli, "ann@example.org")
    made = _records(cli, tmp_path, 4)
    old, _ = _old_secrets(cli, "ann@example.org")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
    env.update(CLIENT_ENV)
    env.update(
        HYGIEIA_HOME=str(cli.home),
        HYGIEIA_SERVER=cli.server,
        HYGIEIA_PASSWORD=PW,
        HYGIEIA_RECOVERY_CODE=code,
        HYGIEIA_ROTATE_STALL_AFTER="2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hygieia", "key", "rotate"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line and "stalled after 2" not in line:
            line = proc.stderr.readline()
        assert "stalled after 2" in line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with HygieiaClient(cli.server) as api:
        acct.login(api, "ann@example.org", PW)
        state = api.key_rotation()
        assert state.pending is not None and state.remaining == 2
        assert api.me().fingerprint == old.fingerprint
    # Mid-way, every record still opens (each with the key it is sealed to).
    _assert_all_open(cli, tmp_path, made)
    # Resumed (no recovery code needed: the pending identity is on the server).
    again = cli.run("key", "rotate", password=PW)
    assert "Resumed" in again.stderr and "(2 record(s) re-sealed)" in again.stdout
    _assert_all_open(cli, tmp_path, made)
    assert _assert_old_key_dead(cli, "ann@example.org", old) == 4


def test_recovery_rotate(cli: Cli, tmp_path: Path) -> None:
    code = _account(cli, "ann@example.org")
    out = cli.run("recovery", "rotate", password=PW).stdout
    new_code = out.strip().splitlines()[-1].strip()
    crypto.parse_recovery_code(new_code)
    assert new_code != code
    refused = cli.run(
        "recover",
        "ann@example.org",
        check=False,
        HYGIEIA_RECOVERY_CODE=code,
        HYGIEIA_NEW_PASSWORD=PW + " two",
    )
    assert refused.returncode == 1 and "invalid_recovery_code" in refused.stderr
    cli.run(
        "recover",
        "ann@example.org",
        HYGIEIA_RECOVERY_CODE=new_code,
        HYGIEIA_NEW_PASSWORD=PW + " two",
    )
    cli.run("whoami")
