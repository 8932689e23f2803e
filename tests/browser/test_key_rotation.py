"""Key and recovery-code rotation in the browser (protocol "Key rotation") against a real
server: Settings → "Rotate keys" re-seals every record in the page (content untouched),
the records still open there and in the CLI's SDK byte for byte, the old locked key and
old vault key open no current PKESK or metadata; "New recovery code" kills the old one.
"""

from __future__ import annotations

import io
import os
import time

import pyotp
import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client import records as recs
from hygieia.client.sdk import ApiError, HygieiaClient
from tests.browser import flows
from tests.support.browser import PageHandle

pytestmark = pytest.mark.browser

PW = "rotation web passphrase 9 ✓"
EMAIL = "rotate-web@example.org"


def _go_settings(web: PageHandle) -> None:
    web.page.locator("#nav").get_by_role("button", name="Settings").click()
    web.page.wait_for_selector("#view-settings:not([hidden])")


def test_rotate_keys_and_recovery_code_in_chromium(web: PageHandle, server: str, tmp_path) -> None:
    page = web.page
    page.goto(server + "/")
    code = flows.signup(web, EMAIL, PW)
    made: dict[str, bytes] = {}
    with HygieiaClient(server) as api:
        session = acct.login(api, EMAIL, PW)
        for i in range(2):
            data = os.urandom(2000) + f"web record {i}".encode()
            src = tmp_path / f"w{i}.bin"
            src.write_bytes(data)
            made[recs.put(api, session, src).id] = data
        old_key = session.unlock()
        old_vault = session.vault_key
        old_fingerprint = session.account.fingerprint

    _go_settings(web)
    page.locator("#rot-password").fill(PW)
    page.locator("#rot-code").fill("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA")
    page.locator("#form-rotate").get_by_role("button", name="Rotate keys").click()
    page.wait_for_selector("#rot-code[aria-invalid='true']")
    assert "recovery code" in page.locator("#form-rotate").inner_text()
    page.locator("#rot-password").fill(PW)
    page.locator("#rot-code").fill(code)
    page.locator("#form-rotate").get_by_role("button", name="Rotate keys").click()
    page.wait_for_selector("body[data-rotated]", timeout=120_000)
    assert "2 record(s)" in page.locator("#rot-progress").inner_text()
    new_fingerprint = page.evaluate("() => document.body.dataset.rotated")
    assert new_fingerprint != old_fingerprint

    # The records still open in the page, with the page's new key.
    for rid, data in made.items():
        flows.go_records(web)
        assert flows.download_record(web, rid) == data

    with HygieiaClient(server) as api:
        fresh = acct.login(api, EMAIL, PW)
        assert fresh.account.fingerprint == new_fingerprint
        for item in api.list_records().items:
            target = tmp_path / f"{item.id}.out"
            recs.get(api, fresh, item.id, target)
            assert target.read_bytes() == made[item.id]
            # The old key (unlocked with the old vault key) opens nothing current.
            with pytest.raises(crypto.DecryptionError):
                crypto.open_message(
                    item.sealed_metadata, key=old_key, signer_public_key=old_key.public_key
                )
            with api.record_content(item.id) as chunks:
                content = b"".join(chunks)
            with pytest.raises(crypto.DecryptionError):
                for _ in crypto.open_segments(
                    io.BytesIO(content),
                    signer_public_key=old_key.public_key,
                    pkesk=item.pkesk,
                    key=old_key,
                ):
                    pass
        with pytest.raises(crypto.CryptoError):
            crypto.unlock(fresh.account.locked_secret_key, old_vault)

    # New recovery code: shown once; the old one is refused, the new one recovers.
    _go_settings(web)
    page.locator("#nrc-password").fill(PW)
    page.locator("#form-recovery-code").get_by_role(
        "button", name="Make a new recovery code"
    ).click()
    page.wait_for_selector("#nrc-result:not([hidden])")
    new_code = page.locator("#nrc-code").inner_text().strip()
    crypto.parse_recovery_code(new_code)
    with HygieiaClient(server) as api:
        with pytest.raises(ApiError) as info:
            acct.recover(api, EMAIL, code, PW + " again")
        assert info.value.code == "invalid_recovery_code"
        back = acct.recover(api, EMAIL, new_code, PW + " again")
        assert back.account.fingerprint == new_fingerprint
    assert web.problems == []


def test_a_rotation_cut_short_elsewhere_is_resumed_in_the_page(
    web: PageHandle, server: str, tmp_path
) -> None:
    """A rotation started by the CLI and cut short after one record: Settings says so
    and "Resume key rotation" (password only) finishes it; every record opens."""
    from hygieia.client import rotation as rot
    from hygieia.client.contacts import Contacts

    email = "resume-web@example.org"
    page = web.page
    page.goto(server + "/")
    code = flows.signup(web, email, PW)
    made: dict[str, bytes] = {}
    with HygieiaClient(server) as api:
        session = acct.login(api, email, PW)
        for i in range(3):
            data = os.urandom(1500) + f"resume record {i}".encode()
            src = tmp_path / f"r{i}.bin"
            src.write_bytes(data)
            made[recs.put(api, session, src).id] = data
        state = rot._start(api, session, PW, code, None)
        assert state.pending is not None
        fresh = acct.pending_session(session, state.pending)
        first = state.record_ids[0]
        rot._rekey(
            api,
            first,
            session.unlock(),
            fresh.unlock(),
            session.account.fingerprint,
            contacts=Contacts(None),
            accept_new=False,
        )
        assert api.key_rotation().remaining == 2

    # Logged in again during the rotation, the page opens every record, each with the
    # key it is sealed to (the moved one with the pending key).
    flows.logout(web)
    flows.login(web, email, PW)
    for rid, data in made.items():
        flows.go_records(web)
        assert flows.download_record(web, rid) == data
    _go_settings(web)
    page.wait_for_selector("#rot-pending:not([hidden])")
    assert "2 record(s)" in page.locator("#rot-pending").inner_text()
    page.locator("#rot-password").fill(PW)
    page.locator("#form-rotate").get_by_role("button", name="Resume key rotation").click()
    page.wait_for_selector("body[data-rotated]", timeout=120_000)
    assert page.evaluate("() => document.body.dataset.rotated") == state.pending.fingerprint
    for rid, data in made.items():
        flows.go_records(web)
        assert flows.download_record(web, rid) == data
    with HygieiaClient(server) as api:
        acct.login(api, email, PW)
        assert api.key_rotation().pending is None
        assert api.me().fingerprint == state.pending.fingerprint
    assert web.problems == []


def test_rotations_ask_for_the_second_factor(web: PageHandle, server: str) -> None:
    """An account with TOTP (enrolled through the SDK; pyotp is the app): Rotate keys and
    New recovery code ask for a code and refuse a wrong one (nothing sent without one);
    a current code rotates the keys, a backup code makes the new recovery code."""
    page = web.page
    page.goto(server + "/")
    email = "rotate-factor@example.org"
    code = flows.signup(web, email, PW)
    with HygieiaClient(server) as api:
        api.token = acct.login(api, email, PW).token
        started = api.start_totp("Phone")
        totp = pyotp.TOTP(started.secret)
        backup = api.confirm_totp(started.factor_id, totp.now()).backup_codes
        assert backup
    rotate = page.locator("#form-rotate")
    recovery = page.locator("#form-recovery-code")

    _go_settings(web)
    page.locator("#rot-password").fill(PW)
    page.locator("#rot-code").fill(code)
    rotate.get_by_role("button", name="Rotate keys").click()
    page.wait_for_selector("#rot-factor[aria-invalid='true']")
    assert page.locator("#rot-factor").is_visible()
    valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)
    page.locator("#rot-factor").fill(wrong)
    rotate.get_by_role("button", name="Rotate keys").click()
    page.wait_for_function("() => document.body.innerText.includes('not right')")
    page.locator("#rot-factor").fill(totp.at(time.time() + 30))
    rotate.get_by_role("button", name="Rotate keys").click()
    page.wait_for_selector("body[data-rotated]", timeout=120_000)
    assert not page.locator("#rot-factor").is_visible()

    page.locator("#nrc-password").fill(PW)
    recovery.get_by_role("button", name="Make a new recovery code").click()
    page.wait_for_selector("#nrc-factor[aria-invalid='true']")
    assert flows.json_bodies(web, "/auth/recovery/rotate") == []
    page.locator("#nrc-factor").fill(backup[0])
    recovery.get_by_role("button", name="Make a new recovery code").click()
    page.wait_for_selector("#nrc-result:not([hidden])")
    bodies = flows.json_bodies(web, "/auth/keys/rotation")
    assert [b["factor"]["method"] for b in bodies] == ["totp", "totp"]
    rotated = flows.json_bodies(web, "/auth/recovery/rotate")
    assert [b["factor"]["method"] for b in rotated] == ["backup_code"]
    assert web.problems == []
