"""Key and recovery-code rotation over the real API on both databases (protocol "Key
rotation"): the pending identity and its rules, the optimistic swap, the commit refused
while anything is on the old key, other sessions revoked, nobody else can touch it; an
account with a second factor proves one to start a rotation or make a new recovery code
(TOTP through the API, pyotp as the app)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client import emergency as emg
from hygieia.client import records as recs
from hygieia.client import rotation as rot
from hygieia.client import sharing as shr
from hygieia.client.contacts import ContactKeyRefused, Contacts
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.encoding import to_b64
from tests.support.accounts import TEST_KDF, new_account
from tests.support.live import LiveApp

PW = "rotation api password 47"


def _owner(live: LiveApp, email: str = "ann@example.org") -> tuple[HygieiaClient, Any, str]:
    api = live.client()
    made = acct.signup(api, email, PW, kdf=TEST_KDF)
    session = acct.login(api, email, PW)
    return api, session, made.recovery_code


def _record(api: HygieiaClient, session: Any, tmp_path: Path, name: str) -> str:
    (tmp_path / name).write_bytes(name.encode() * 100)
    return recs.put(api, session, tmp_path / name).id


def _start_body(session: acct.LoggedIn, code: str, auth_key: bytes | None = None) -> dict[str, Any]:
    rkeys = crypto.derive_recovery_keys(
        crypto.parse_recovery_code(code), session.account.recovery_salt
    )
    keys = crypto.derive_keys(PW, session.account.salt, TEST_KDF)
    vault = crypto.new_vault_key()
    ident = crypto.generate_identity(session.account.email, vault)
    return {
        "auth_key": to_b64(auth_key or keys.auth_key),
        "public_key": ident.public_key,
        "locked_secret_key": ident.locked_secret_key,
        "wrapped_vault_key": to_b64(crypto.wrap_vault_key(vault, keys.wrap_key)),
        "recovery_wrapped_vault_key": to_b64(crypto.wrap_vault_key(vault, rkeys.wrap_key)),
    }


def _code(call: Any) -> str:
    with pytest.raises(ApiError) as info:
        call()
    return info.value.code


def test_pending_rules_swap_and_commit(live: LiveApp, tmp_path: Path) -> None:
    api, session, code = _owner(live)
    other_session = live.client()
    acct.login(other_session, "ann@example.org", PW)
    bob = live.client()
    new_account(bob, "bob@example.org", PW)
    ids = [_record(api, session, tmp_path, f"r{i}.bin") for i in range(3)]
    contacts = Contacts(None)
    shr.share(api, session, ids[:1], ["bob@example.org"], contacts=contacts)
    emg.add_contact(api, session, "bob@example.org", wait_days=1, contacts=contacts)

    assert api.key_rotation().pending is None
    assert _code(lambda: api.commit_key_rotation({})) == "no_rotation"
    wrong = _start_body(session, code, auth_key=bytes(32))
    assert _code(lambda: api.start_key_rotation(wrong)) == "invalid_credentials"
    assert api.key_rotation().pending is None
    state = api.start_key_rotation(_start_body(session, code))
    pending = state.pending
    assert pending is not None and pending.fingerprint != session.account.fingerprint
    assert state.remaining == 3 and set(state.record_ids) == set(ids)
    assert len(state.emergency_contact_ids) == 1
    # One pending identity at a time: a second start is refused (resume instead).
    assert _code(lambda: api.start_key_rotation(_start_body(session, code))) == "rotation_pending"
    # Not while records remain on the old key.
    assert _code(lambda: api.commit_key_rotation({})) == "rotation_incomplete"

    old = session.unlock()
    item = api.get_record(ids[1])
    good = {
        "expected_fingerprint": session.account.fingerprint,
        "pkesk": to_b64(item.pkesk),  # still for the old key: refused
        "sealed_metadata": to_b64(item.sealed_metadata),
        "envelope": to_b64(item.envelope),
    }
    assert _code(lambda: api.swap_record_keys(ids[1], good)) == "pkesk_mismatch"
    # Another account can't touch it, or see or commit the rotation.
    assert _code(lambda: bob.swap_record_keys(ids[1], good)) == "not_found"
    assert bob.key_rotation().pending is None
    assert _code(lambda: bob.commit_key_rotation({})) == "no_rotation"
    # The optimistic check: the record must be on the key named.
    new_session = acct.pending_session(session, pending)
    new = new_session.unlock()
    _item, meta, session_key = shr.owned_session_key(api, old, ids[1])
    body = {
        "expected_fingerprint": pending.fingerprint,  # not what it is sealed to
        "pkesk": to_b64(crypto.make_pkesk(session_key, new.public_key)),
        "sealed_metadata": to_b64(
            rot._seal_metadata(item, meta, rot._fields(meta, old.public_key), new)
        ),
        "envelope": to_b64(
            crypto.seal_session_key_envelope(
                session_key, owner_public_key=new.public_key, signer=new
            )
        ),
    }
    assert _code(lambda: api.swap_record_keys(ids[1], body)) == "key_conflict"
    body["expected_fingerprint"] = session.account.fingerprint
    api.swap_record_keys(ids[1], body)
    assert _code(lambda: api.swap_record_keys(ids[1], body)) == "key_conflict"  # moved already
    assert api.key_rotation().remaining == 2
    # Opening during the rotation: each record with the key it is sealed to.
    moved = recs.open_metadata(api.get_record(ids[1]), new, record_id=ids[1])
    assert moved["content_signer"] == old.public_key
    recs.get(api, new_session, ids[1], tmp_path / "moved.out")
    assert (tmp_path / "moved.out").read_bytes() == b"r1.bin" * 100
    # Uploads during the rotation may be sealed to either key.
    during_old = _record(api, session, tmp_path, "old-key.bin")
    during_new = _record(api, new_session, tmp_path, "new-key.bin")
    state = api.key_rotation()
    assert during_old in state.record_ids and during_new not in state.record_ids

    report = rot.rotate_keys(api, session, PW, recovery_code=None, contacts=contacts)
    assert report.resumed and report.fingerprint == pending.fingerprint
    me = api.me()
    assert me.fingerprint == pending.fingerprint
    assert api.key_rotation().pending is None
    # Other sessions are revoked, this one lives.
    assert _code(other_session.me) == "token_revoked"
    events = [e.event for e in api.audit()]
    assert events.count("auth.key_rotated") == 1 and "auth.key_rotation_started" in events
    # Uploads sealed to the old key are refused from now on.
    assert _code(lambda: _record(api, session, tmp_path, "late.bin")) == "pkesk_mismatch"
    assert _code(lambda: api.commit_key_rotation({})) == "no_rotation"


def test_commit_needs_every_contact_and_label_resealed(live: LiveApp, tmp_path: Path) -> None:
    api, session, code = _owner(live)
    bob = live.client()
    new_account(bob, "bob@example.org", PW)
    emg.add_contact(api, session, "bob@example.org", wait_days=1, contacts=Contacts(None))
    state = api.start_key_rotation(_start_body(session, code))
    assert state.remaining == 0
    assert _code(lambda: api.commit_key_rotation({})) == "rotation_incomplete"
    contact_id = state.emergency_contact_ids[0]
    # A vault key sealed to someone else than the contact is refused.
    assert state.pending is not None
    new = acct.pending_session(session, state.pending).unlock()
    wrong = crypto.seal_message(b"x", recipients=[new.public_key], signer=new)
    body = {"emergency_keys": [{"id": contact_id, "sealed_vault_key": to_b64(wrong)}]}
    assert _code(lambda: api.commit_key_rotation(body)) == "pkesk_mismatch"
    rot.rotate_keys(api, session, PW, recovery_code=None, contacts=Contacts(None))
    assert api.me().fingerprint == state.pending.fingerprint


def test_password_change_refused_while_pending(live: LiveApp, tmp_path: Path) -> None:
    api, session, code = _owner(live)
    api.start_key_rotation(_start_body(session, code))
    with pytest.raises(ApiError) as info:
        acct.change_password(api, PW, PW + " new", kdf=TEST_KDF, floor=TEST_KDF)
    assert info.value.code == "rotation_pending"


def test_recovery_rotate(live: LiveApp) -> None:
    api, session, code = _owner(live)
    wrong = {
        "auth_key": to_b64(bytes(32)),
        "recovery_salt": to_b64(crypto.new_salt()),
        "recovery_verifier": to_b64(bytes(32)),
        "recovery_wrapped_vault_key": to_b64(bytes(61)),
    }
    assert _code(lambda: api.rotate_recovery(wrong)) == "invalid_credentials"
    new_code = rot.recovery_rotate(api, session, PW)
    assert new_code != code
    assert "auth.recovery_rotated" in [e.event for e in api.audit()]
    other = live.client()
    with pytest.raises(ApiError) as info:
        acct.recover(other, "ann@example.org", code, PW + " again", kdf=TEST_KDF, floor=TEST_KDF)
    assert info.value.code == "invalid_recovery_code"
    back = acct.recover(
        other, "ann@example.org", new_code, PW + " again", kdf=TEST_KDF, floor=TEST_KDF
    )
    assert back.vault_key == session.vault_key


def test_recovery_during_a_rotation_keeps_it_finishable(live: LiveApp, tmp_path: Path) -> None:
    api, session, code = _owner(live)
    ids = [_record(api, session, tmp_path, f"r{i}.bin") for i in range(2)]
    state = api.start_key_rotation(_start_body(session, code))
    assert state.pending is not None
    # An old client (no pending vault key re-wrapped) is refused, nothing changes.
    other = live.client()
    rkeys = crypto.derive_recovery_keys(
        crypto.parse_recovery_code(code), session.account.recovery_salt
    )
    grant = other.recover("ann@example.org", to_b64(rkeys.auth_key))
    assert grant.pending_recovery_wrapped_vault_key is not None
    keys = crypto.derive_keys(PW + " lost", session.account.salt, TEST_KDF)
    old_body = {
        "recovery_token": grant.recovery_token,
        "new_auth_key": to_b64(keys.auth_key),
        "new_salt": to_b64(session.account.salt),
        "new_kdf": TEST_KDF.to_dict(),
        "new_wrapped_vault_key": to_b64(crypto.wrap_vault_key(session.vault_key, keys.wrap_key)),
    }
    assert _code(lambda: other.recover_complete(old_body)) == "rotation_pending"
    # This client re-wraps the pending vault key too; the rotation then finishes with
    # the new password.
    back = acct.recover(other, "ann@example.org", code, PW + " lost", kdf=TEST_KDF, floor=TEST_KDF)
    report = rot.rotate_keys(other, back, PW + " lost", recovery_code=None, contacts=Contacts(None))
    assert report.resumed and report.fingerprint == state.pending.fingerprint
    fresh = acct.login(other, "ann@example.org", PW + " lost")
    for rid in ids:
        recs.get(other, fresh, rid, tmp_path / f"{rid}.out")


def test_emergency_contact_link_label_and_share_after_rotation(
    live: LiveApp, tmp_path: Path
) -> None:
    """What embeds the owner's key or vault key is sealed anew: the contact opens the
    vault (once they accept the owner's new key), the link label opens with the new
    key, the recipient reads the share (content verified with the signer it names)."""
    from datetime import timedelta

    from hygieia.client import links as lnk

    api, session, code = _owner(live)
    bob = live.client()
    bob_session = new_account(bob, "bob@example.org", PW)
    rid = _record(api, session, tmp_path, "r.bin")
    shr.share(api, session, [rid], ["bob@example.org"], contacts=Contacts(None))
    emg.add_contact(api, session, "bob@example.org", wait_days=1, contacts=Contacts(None))
    lnk.create_link(api, session, [rid], expires_in=timedelta(days=1), label="For the ER")
    bob_contacts = Contacts(None)
    shr.get_shared(bob, bob_session, rid, tmp_path / "before", contacts=bob_contacts)

    rot.rotate_keys(api, session, PW, recovery_code=code, contacts=Contacts(None))
    fresh = acct.login(api, "ann@example.org", PW)
    assert [link.label for link in lnk.list_links(api, fresh)] == ["For the ER"]
    # The owner's key changed: Bob's client refuses it until he accepts it.
    with pytest.raises(ContactKeyRefused):
        shr.get_shared(bob, bob_session, rid, tmp_path / "x", contacts=bob_contacts)
    shr.get_shared(
        bob, bob_session, rid, tmp_path / "after", contacts=bob_contacts, accept_new=True
    )
    assert (tmp_path / "after").read_bytes() == (tmp_path / "r.bin").read_bytes()
    emg.request(bob, "ann@example.org")
    emg.approve(api, "bob@example.org")
    vault = emg.open_vault(bob, bob_session, "ann@example.org", contacts=bob_contacts)
    assert vault.key.fingerprint == fresh.account.fingerprint
    emg.get(bob, vault, rid, tmp_path / "emergency")
    assert (tmp_path / "emergency").read_bytes() == (tmp_path / "r.bin").read_bytes()


def test_a_record_uploaded_before_the_commit_is_moved_too(live: LiveApp, tmp_path: Path) -> None:
    """Another device uploads to the old key between this client's last pass and its
    commit: the server refuses the commit and the client moves the newcomer, then commits."""
    api, session, code = _owner(live)
    other = live.client()
    other_session = acct.login(other, "ann@example.org", PW)
    _record(api, session, tmp_path, "first.bin")
    late: list[str] = []
    commit = api.commit_key_rotation

    def commit_after_an_upload(body: Any) -> None:
        if not late:
            late.append(_record(other, other_session, tmp_path, "late.bin"))
        commit(body)

    api.commit_key_rotation = commit_after_an_upload  # type: ignore[method-assign]
    report = rot.rotate_keys(api, session, PW, recovery_code=code, contacts=Contacts(None))
    assert report.records == 2 and late
    fresh = acct.login(api, "ann@example.org", PW)
    recs.get(api, fresh, late[0], tmp_path / "late.out")
    assert (tmp_path / "late.out").read_bytes() == (tmp_path / "late.bin").read_bytes()


def test_an_account_with_a_factor_must_prove_it(live: LiveApp) -> None:
    """Starting a key rotation and making a new recovery code: no factor (factor_required)
    or a wrong or replayed one (factor_invalid) changes nothing; a current TOTP code or a
    backup code is accepted."""
    api, session, code = _owner(live)
    started = api.start_totp("Phone")
    totp = pyotp.TOTP(started.secret)
    used = totp.now()  # spent by the confirmation: a replay is refused too
    confirmed = api.confirm_totp(started.factor_id, used)
    assert confirmed.backup_codes
    live.clock.advance(minutes=5)  # the app's (test) clock: TOTP codes go by real time
    valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)
    refused: list[tuple[dict[str, str] | None, str]] = [
        (None, "factor_required"),
        ({"method": "totp", "code": wrong}, "factor_invalid"),
        ({"method": "totp", "code": used}, "factor_invalid"),
        ({"method": "backup_code", "code": "not-a-backup-code"}, "factor_invalid"),
    ]

    for factor, expected in refused:
        body = {**_start_body(session, code), "factor": factor}
        assert _code(lambda b=body: api.start_key_rotation(b)) == expected, factor
        with pytest.raises(ApiError) as info:
            rot.recovery_rotate(api, session, PW, factor=factor)
        assert info.value.code == expected, factor
    assert api.key_rotation().pending is None
    events = [e.event for e in api.audit()]
    assert "auth.factor_failed" in events and "auth.recovery_rotated" not in events
    assert api.me().recovery_salt == session.account.recovery_salt  # the old code stands

    backup = {"method": "backup_code", "code": confirmed.backup_codes[0]}
    new_code = rot.recovery_rotate(api, session, PW, factor=backup)
    assert new_code != code and "auth.recovery_rotated" in [e.event for e in api.audit()]
    session = acct.unlock_vault(api, PW)
    body = _start_body(session, new_code)
    body["factor"] = {"method": "totp", "code": totp.at(time.time() + 30)}
    state = api.start_key_rotation(body)
    assert state.pending is not None and state.pending.fingerprint != session.account.fingerprint
