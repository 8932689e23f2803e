"""DESIGN §1.1: the server never receives the password, a derived key, the vault key,
an unlocked private key, record metadata (title, file name, provider, tags) or content,
whether a record is read by its owner, shared (§7) or opened through emergency access
(§8), nor when an account is deleted (§4).

A real ``hygieia serve`` (subprocess, fresh data dir) is driven through the SDK; every
request body and URL, every DB row, every file in the data dir (blobs included) and the
server log are then searched for those secrets.
"""

from __future__ import annotations

import base64
import os
import time
import unicodedata
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client import emergency as emg
from hygieia.client import links as lnk
from hygieia.client import records as recs
from hygieia.client import rotation as rot
from hygieia.client import sharing as shr
from hygieia.client.contacts import Contacts
from hygieia.client.passwords import WeakPassword
from hygieia.client.sdk import HygieiaClient
from hygieia.client.shlink import decode_link
from hygieia.encoding import to_b64
from tests.support.accounts import TEST_KDF
from tests.support.keys import secret_material
from tests.support.server import running_server
from tests.support.soft_authenticator import SoftAuthenticator
from tests.support.zk import RecordingTransport, Secrets, assert_nothing_leaks, files_under

TITLE = "Zq7 Oncology Biopsy Result Title"
FILENAME = "zq7-biopsy-report-private.pdf"
PROVIDER = "Zq7 Saint Distinctive Clinic"
TAG = "zq7-hiv-status-tag"
CONTENT_MARKER = b"Zq7 PLAINTEXT MEDICAL CONTENT MARKER 0123456789"

LINK_LABEL = "Zq7 link label for the ER"
RECIPIENT = "zk-recipient@example.org"
RECIPIENT_PASSWORD = "Zq7-recipient-distinctive-password-#4"
EXPORT_PASSPHRASE = "Zq7 distinctive export passphrase of its own #5"

PASSWORDS = [
    "Zq7-distinctive-Pässwörd-#1-\u212b",
    "Zq7-second-distinctive-password-#2",
    "Zq7-third-after-recovery-password-#3",
]


def _add_password_secrets(secrets: Secrets, n: int, api: HygieiaClient, email: str) -> bytes:
    password = PASSWORDS[n]
    secrets.add(f"password{n}", password)
    secrets.add(f"password{n}.nfkc", unicodedata.normalize("NFKC", password))
    pre = api.prelogin(email)
    keys = crypto.derive_keys(password, pre.salt, crypto.KdfParams.from_dict(pre.kdf))
    secrets.add(f"master{n}", keys.master)
    secrets.add(f"wrap_key{n}", keys.wrap_key)
    return keys.wrap_key


def test_server_learns_nothing(db_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    email = "zk@example.org"
    recorder = RecordingTransport()
    secrets = Secrets()
    with running_server(data_dir, DATABASE_URL=db_url) as url:
        api = HygieiaClient(url, transport=recorder)
        signed = acct.signup(api, email, PASSWORDS[0], kdf=TEST_KDF)
        session = acct.login(api, email, PASSWORDS[0])
        _add_password_secrets(secrets, 0, api, email)

        acct.change_password(api, PASSWORDS[0], PASSWORDS[1], kdf=TEST_KDF)
        acct.login(api, email, PASSWORDS[1])
        _add_password_secrets(secrets, 1, api, email)

        recovered = acct.recover(api, email, signed.recovery_code, PASSWORDS[2], kdf=TEST_KDF)
        after = acct.login(api, email, PASSWORDS[2])
        _add_password_secrets(secrets, 2, api, email)
        me = api.me()
        assert after.vault_key == session.vault_key == recovered.vault_key
        # Key lookups (own account and an unknown one) travel through the inspection too.
        assert api.user_key(email).fingerprint == me.fingerprint
        api.user_key("nobody-here@example.org")

        # Records: distinctive metadata and content go up, are listed and come back.
        content = os.urandom(5 * 1024 * 1024) + CONTENT_MARKER
        src = tmp_path / FILENAME
        src.write_bytes(content)
        fields = recs.RecordFields(
            title=TITLE, record_type="lab", provider=PROVIDER, tags=(TAG,), date="2026-11-01"
        )
        rec = recs.put(api, after, src, fields)
        listed = [r.meta for r in recs.iter_records(api, after.unlock())]
        assert listed[0]["title"] == TITLE
        back = tmp_path / "back.bin"
        recs.get(api, after, rec.id, back)
        assert back.read_bytes() == content

        # Sharing: grants to an account and to an unknown email; the recipient lists,
        # opens and downloads the record; the owner lists, reads the trail, revokes.
        rapi = HygieiaClient(url, transport=recorder)
        acct.signup(rapi, RECIPIENT, RECIPIENT_PASSWORD, kdf=TEST_KDF)
        rsession = acct.login(rapi, RECIPIENT, RECIPIENT_PASSWORD)
        shr.share(
            api, after, [rec.id], [RECIPIENT, "nobody-here@example.org"], contacts=Contacts(None)
        )
        shared = list(shr.iter_shared(rapi, rsession.unlock(), contacts=Contacts(None)))
        assert [s.meta["title"] for s in shared] == [TITLE]
        shr.get_shared(rapi, rsession, rec.id, tmp_path / "shared.bin", contacts=Contacts(None))
        assert (tmp_path / "shared.bin").read_bytes() == content
        assert len(api.record_grants(rec.id).items) == len(api.list_grants().items) == 2
        assert any(e.event == "share.content_read" for e in api.audit())
        shr.revoke(api, rec.id, "nobody-here@example.org")

        # Emergency access (protocol §8): the vault key sealed to the recipient (and to an
        # unknown email's decoy), a request, an early approval, the recipient reading the
        # vault, then the access ended. Only sealed messages may carry the vault key.
        emg.add_contact(api, after, RECIPIENT, wait_days=7, contacts=Contacts(None))
        emg.add_contact(api, after, "nobody-here@example.org", wait_days=1, contacts=Contacts(None))
        emg.request(rapi, email)
        emg.approve(api, RECIPIENT)
        vault = emg.open_vault(rapi, rsession, email, contacts=Contacts(None))
        assert [r.meta["title"] for r in emg.iter_records(rapi, vault)] == [TITLE]
        emg.get(rapi, vault, rec.id, tmp_path / "emergency.bin")
        assert (tmp_path / "emergency.bin").read_bytes() == content
        emg.deny(api, RECIPIENT)
        assert any(e.event == "emergency.content_read" for e in api.audit())
        # Sessions and the activity trail (protocol §11) travel through the inspection
        # too: listed, one ended, the trail read back a page at a time, by kind.
        sessions = api.sessions()
        assert sum(s.current for s in sessions) == 1 and len(sessions) >= 2
        api.revoke_session(next(s.id for s in sessions if not s.current))
        api.revoke_other_sessions()
        assert [s.current for s in api.sessions()] == [True]
        read = list(api.audit_all(kinds=["record", "records"], page=2))
        assert {"record.created", "record.viewed", "record.read", "records.listed"} <= {
            e.event for e in read
        }
        owner_key = after.unlock()
        session_key = crypto.open_session_key_envelope(
            api.get_record(rec.id).envelope, key=owner_key, signer_public_key=owner_key.public_key
        )
        # The recipient leaves: deleting an account sends its auth_key and nothing more.
        rpre = rapi.prelogin(RECIPIENT)
        rkeys_pw = crypto.derive_keys(
            RECIPIENT_PASSWORD, rpre.salt, crypto.KdfParams.from_dict(rpre.kdf)
        )
        acct.delete_account(rapi, RECIPIENT_PASSWORD)
        assert not api.list_grants().items  # the grant to the recipient went with it

        # A share link (SMART Health Link): made from the record and opened by a
        # reader without an account, through the recorder. The link key and the label
        # travel only in the link's fragment; the server stores JWEs.
        link, _ = lnk.create_link(
            api,
            after,
            [rec.id],
            expires_in=timedelta(days=1),
            passcode="zk link passcode 1",
            label=LINK_LABEL,
        )
        opened = lnk.open_link(
            link,
            tmp_path / "linked",
            passcode="zk link passcode 1",
            recipient="Zq7 ER",
            transport=recorder,
        )
        assert opened[0].attachment is not None
        assert opened[0].attachment.read_bytes() == content
        link_key = decode_link(link).key

        # Key and recovery-code rotation: a new recovery code, then a new key and vault
        # key; every record, emergency contact and the link label re-sealed here.
        new_code = rot.recovery_rotate(api, after, PASSWORDS[2])
        before_rotation = acct.unlock_vault(api, PASSWORDS[2])
        rot.rotate_keys(
            api, before_rotation, PASSWORDS[2], recovery_code=new_code, contacts=Contacts(None)
        )
        rotated = acct.login(api, email, PASSWORDS[2])
        assert rotated.vault_key != session.vault_key
        recs.get(api, rotated, rec.id, tmp_path / "rotated.bin")
        assert (tmp_path / "rotated.bin").read_bytes() == content

        # Exporting the key is purely local: no request may carry it.
        # It takes a passphrase of its own: the account password is refused.
        with pytest.raises(WeakPassword, match="account password"):
            acct.export_key(after, PASSWORDS[2], account_password=PASSWORDS[2])
        exported = acct.export_key(after, EXPORT_PASSPHRASE, account_password=PASSWORDS[2])
        assert "PRIVATE KEY" in exported

        # Second factors (protocol §10): enrol TOTP, log in with a code, renew the backup
        # codes. The TOTP secret is the server's to know, but only sealed at rest: no
        # row, file or log may hold it in clear.
        started = api.start_totp("Zq7 phone")
        totp = pyotp.TOTP(started.secret)
        confirmed = api.confirm_totp(started.factor_id, totp.now())
        assert confirmed.backup_codes is not None
        acct.login(api, email, PASSWORDS[2], factor=lambda ch: ("totp", totp.at(time.time() + 30)))
        assert len(api.factors().factors) == 1
        proof = acct.factor_proof(confirmed.backup_codes[0])
        api.renew_backup_codes(acct.password_proof(api, PASSWORDS[2]), proof)

        # A passkey (protocol §10) enrolled and used to log in, as the web app does it
        # (by http://localhost:PORT: an IP address can't be a WebAuthn RP ID). Only its
        # public key goes up; its private key must never travel.
        passkey = SoftAuthenticator()
        port = url.rsplit(":", 1)[1]
        origin = f"http://localhost:{port}"
        web = httpx.Client(
            base_url=f"{url}/api/v1", transport=recorder, headers={"host": f"localhost:{port}"}
        )
        bearer = {"authorization": f"Bearer {api.token}"}
        options = web.post("/auth/factors/passkey/options", headers=bearer).json()["options"]
        answer = passkey.register(options, origin=origin)
        added = web.post("/auth/factors/passkey", headers=bearer, json={"credential": answer})
        assert added.status_code == 200, added.text
        pre = api.prelogin(email)
        keys = crypto.derive_keys(PASSWORDS[2], pre.salt, crypto.KdfParams.from_dict(pre.kdf))
        auth_key = to_b64(keys.auth_key)
        step = web.post("/auth/login", json={"email": email, "auth_key": auth_key}).json()
        token = step["pending_token"]
        options = web.post("/auth/login/passkey/options", json={"pending_token": token})
        assertion = passkey.assert_(options.json()["options"], origin=origin)
        done = web.post(
            "/auth/login/factor",
            json={"pending_token": token, "method": "passkey", "credential": assertion},
        )
        assert done.status_code == 200, done.text
        secrets.add(
            "passkey_private_key",
            passkey.key.private_numbers().private_value.to_bytes(32, "big"),
        )
        api.logout()

    secrets.add("totp_secret", started.secret)
    secrets.add("totp_secret.bytes", base64.b32decode(started.secret))
    secrets.add("session_key", session_key)
    secrets.add("link_key", link_key)
    secrets.add("link_label", LINK_LABEL)
    secrets.add("recipient_password", RECIPIENT_PASSWORD)
    secrets.add("export_passphrase", EXPORT_PASSPHRASE)
    secrets.add("recipient_vault_key", rsession.vault_key)
    secrets.add("recipient_master", rkeys_pw.master)
    secrets.add("recipient_wrap_key", rkeys_pw.wrap_key)
    rmaterial = secret_material(
        rsession.account.locked_secret_key, crypto.vault_passphrase(rsession.vault_key)
    )
    for i, scalar in enumerate(rmaterial):
        secrets.add(f"recipient_secret_scalar{i}", scalar)
    vault_key = session.vault_key
    secrets.add("vault_key", vault_key)
    secrets.add("vault_passphrase", crypto.vault_passphrase(vault_key))
    code_bytes = crypto.parse_recovery_code(signed.recovery_code)
    secrets.add("recovery_code", signed.recovery_code)
    secrets.add("recovery_code.compact", signed.recovery_code.replace("-", ""))
    secrets.add("recovery_code.bytes", code_bytes)
    rkeys = crypto.derive_recovery_keys(code_bytes, me.recovery_salt)
    secrets.add("recovery_wrap_key", rkeys.wrap_key)
    new_code_bytes = crypto.parse_recovery_code(new_code)
    secrets.add("new_recovery_code", new_code)
    secrets.add("new_recovery_code.compact", new_code.replace("-", ""))
    secrets.add("new_recovery_code.bytes", new_code_bytes)
    new_rkeys = crypto.derive_recovery_keys(new_code_bytes, _recovery_salt(db_url, email))
    secrets.add("new_recovery_wrap_key", new_rkeys.wrap_key)
    secrets.add("rotated_vault_key", rotated.vault_key)
    secrets.add("rotated_vault_passphrase", crypto.vault_passphrase(rotated.vault_key))
    rotated_material = secret_material(
        rotated.account.locked_secret_key, crypto.vault_passphrase(rotated.vault_key)
    )
    for i, scalar in enumerate(rotated_material):
        secrets.add(f"rotated_secret_scalar{i}", scalar)
    material = secret_material(me.locked_secret_key, crypto.vault_passphrase(vault_key))
    assert len(material) == 2  # Ed25519 seed + X25519 scalar
    for i, scalar in enumerate(material):
        secrets.add(f"secret_scalar{i}", scalar)

    plain: dict[str, str | bytes] = {
        "title": TITLE,
        "filename": FILENAME,
        "provider": PROVIDER,
        "tag": TAG,
        "content_marker": CONTENT_MARKER,
    }
    for name, value in plain.items():
        secrets.add(name, value)
    for i, start in enumerate((0, 1024 * 1024 + 7, len(content) - 64)):
        secrets.add(f"content{i}", content[start : start + 48])

    log = (data_dir / "server.log").read_bytes()
    assert b"GET /api/v1/auth/prelogin" in log  # the log is real and was written
    scanned = assert_nothing_leaks(
        secrets,
        bodies=recorder.bodies,
        urls=recorder.urls,
        db_url=db_url,
        files=list(files_under(data_dir)),
    )
    assert scanned > 20
    assert any(p.parts[-2:-1] and "blocks" in p.parts for p, _ in files_under(data_dir)), (
        "no blob on disk was scanned"
    )
    # The e-mail address is personal data: the log shows paths, not query strings.
    assert b"zk@example.org" not in log
    assert RECIPIENT.encode() not in log  # nor does the deletion's line name the account
    assert b"account deleted: " in log  # ... which is there
    # Sanity: the scanner does find what was sent (auth_key is meant to be sent).
    sent = Secrets()
    sent.add(
        "auth_key",
        crypto.derive_keys(PASSWORDS[2], me.salt, TEST_KDF).auth_key,
    )
    assert any(sent.find_in(b) for b in recorder.bodies)


def _recovery_salt(db_url: str, email: str) -> bytes:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        salt = conn.execute(
            text("SELECT recovery_salt FROM users WHERE email = :e"), {"e": email}
        ).scalar_one()
    engine.dispose()
    return bytes(salt)
