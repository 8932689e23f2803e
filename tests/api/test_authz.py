"""Every authenticated account route by every kind of bad credential."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import update

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client import emergency as emg
from hygieia.client import records as recs
from hygieia.client import sharing as shr
from hygieia.client.contacts import Contacts
from hygieia.client.sdk import ApiError, FactorChallenge
from hygieia.crypto import jwe as link_jwe
from hygieia.db.models import AuthSession
from hygieia.encoding import to_b64
from hygieia.services.common import token_hash
from tests.support.accounts import TEST_KDF, new_account
from tests.support.live import LiveApp

PASSWORD = "authz test password 123"


def _body_for(route: str, auth_key: bytes) -> dict[str, object] | None:
    if route == "/auth/password":
        return {
            "auth_key": base64.b64encode(auth_key).decode(),
            "new_auth_key": base64.b64encode(b"\x01" * 32).decode(),
            "new_salt": base64.b64encode(b"\x02" * 16).decode(),
            "new_kdf": crypto.DEFAULT_KDF.to_dict(),
            "new_wrapped_vault_key": base64.b64encode(b"\x01" + b"\x03" * 60).decode(),
        }
    if route == "/auth/keys/rotation":
        return {
            "auth_key": base64.b64encode(auth_key).decode(),
            "factor": None,
            "public_key": "x",
            "locked_secret_key": "x",
            "wrapped_vault_key": base64.b64encode(b"\x01" * 61).decode(),
            "recovery_wrapped_vault_key": base64.b64encode(b"\x01" * 61).decode(),
        }
    if route == "/auth/keys/rotation/commit":
        return {"emergency_keys": [], "link_labels": []}
    if route == f"/records/{RID}/keys":
        return {
            "expected_fingerprint": "A" * 40,
            "pkesk": "AQ==",
            "sealed_metadata": "AQ==",
            "envelope": "AQ==",
        }
    if route == "/auth/recovery/rotate":
        return {
            "auth_key": base64.b64encode(auth_key).decode(),
            "factor": None,
            "recovery_salt": base64.b64encode(b"\x02" * 16).decode(),
            "recovery_verifier": base64.b64encode(b"\x03" * 32).decode(),
            "recovery_wrapped_vault_key": base64.b64encode(b"\x01" * 61).decode(),
        }
    if route == "/auth/account/delete":
        return {"auth_key": base64.b64encode(auth_key).decode(), "factor": None}
    if route == "/auth/factors/totp":
        return {"label": "Phone"}
    if route.endswith("/confirm"):
        return {"code": "123456"}
    if route.endswith("/remove") or route == "/auth/factors/backup-codes":
        return {
            "auth_key": base64.b64encode(auth_key).decode(),
            "factor": {"method": "totp", "code": "123456"},
        }
    if route == "/emergency/contacts":
        return {"email": "bob@example.org", "wait_days": 7, "sealed_vault_key": "AQ=="}
    if route == "/auth/factors/passkey":
        return {"label": "Key", "credential": {"id": "AA", "rawId": "AA", "response": {}}}
    if route == "/users/key":
        return {"email": "alice@example.org"}
    if route == "/grants":
        return {
            "grants": [
                {
                    "record_id": RID,
                    "email": "bob@example.org",
                    "pkesk": "AQ==",
                    "sealed_metadata": "AQ==",
                }
            ]
        }
    return None


RID = "0b5c9a8e-2f4a-4c1e-9d2b-7a6e5f4d3c2b"


ROUTES = [
    ("GET", "/me"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/password"),
    ("POST", "/auth/account/delete"),
    ("POST", "/users/key"),
    ("GET", "/audit"),
    # Key and recovery-code rotation (protocol "Key rotation").
    ("POST", "/auth/keys/rotation"),
    ("GET", "/auth/keys/rotation"),
    ("POST", "/auth/keys/rotation/commit"),
    ("PUT", f"/records/{RID}/keys"),
    ("POST", "/auth/recovery/rotate"),
    # Second factors (protocol §10).
    ("GET", "/auth/factors"),
    ("POST", "/auth/factors/totp"),
    ("POST", f"/auth/factors/totp/{RID}/confirm"),
    ("POST", f"/auth/factors/{RID}/remove"),
    ("POST", "/auth/factors/backup-codes"),
    # Passkeys (protocol §10).
    ("POST", "/auth/factors/passkey/options"),
    ("POST", "/auth/factors/passkey"),
    ("POST", "/auth/factors/proof/passkey-options"),
    # Sessions (protocol §11).
    ("GET", "/auth/sessions"),
    ("DELETE", f"/auth/sessions/{RID}"),
    ("POST", "/auth/sessions/revoke-others"),
    # Sharing (protocol §7).
    ("POST", "/grants"),
    ("GET", "/grants"),
    ("GET", f"/records/{RID}/grants"),
    ("DELETE", f"/grants/{RID}"),
    ("GET", "/shared"),
    ("GET", f"/shared/{RID}"),
    ("GET", f"/shared/{RID}/content"),
    ("DELETE", f"/shared/{RID}"),
    # Emergency access (protocol §8).
    ("POST", "/emergency/contacts"),
    ("GET", "/emergency/contacts"),
    ("DELETE", f"/emergency/contacts/{RID}"),
    ("POST", f"/emergency/contacts/{RID}/approve"),
    ("POST", f"/emergency/contacts/{RID}/deny"),
    ("GET", "/emergency/access"),
    ("POST", f"/emergency/access/{RID}/request"),
    ("GET", f"/emergency/access/{RID}/vault"),
    ("GET", f"/emergency/access/{RID}/records"),
    ("GET", f"/emergency/access/{RID}/records/{RID}"),
    ("GET", f"/emergency/access/{RID}/records/{RID}/content"),
]


@pytest.fixture
def accounts(live: LiveApp) -> dict[str, object]:
    api = live.client()
    acct.signup(api, "alice@example.org", PASSWORD, kdf=TEST_KDF)
    acct.signup(api, "mallory@example.org", PASSWORD, kdf=TEST_KDF)
    alice = acct.login(live.client(), "alice@example.org", PASSWORD)
    mallory = acct.login(live.client(), "mallory@example.org", PASSWORD)
    pre = api.prelogin("alice@example.org")
    alice_keys = crypto.derive_keys(PASSWORD, pre.salt, crypto.KdfParams.from_dict(pre.kdf))
    return {"alice": alice, "mallory": mallory, "alice_auth": alice_keys.auth_key}


def _bad_token(live: LiveApp, kind: str, accounts: dict[str, object]) -> dict[str, str]:
    if kind == "none":
        return {}
    if kind == "garbage":
        return {"authorization": "Bearer hyg_not-a-real-token"}
    if kind == "wrong_scheme":
        return {"authorization": "Basic YWxpY2U6cHc="}
    session = acct.login(live.client(), "alice@example.org", PASSWORD)
    with live.engine.begin() as conn:
        values = (
            {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}
            if kind == "expired"
            else {"revoked_at": datetime.now(UTC)}
        )
        conn.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash(session.token))
            .values(**values)
        )
    return {"authorization": f"Bearer {session.token}"}


EXPECTED = {
    "none": "unauthorized",
    "garbage": "invalid_token",
    "wrong_scheme": "invalid_token",
    "expired": "token_expired",
    "revoked": "token_revoked",
}


def test_bad_credentials_refused(live: LiveApp, accounts: dict[str, object]) -> None:
    """Every route x every kind of bad credential (one server and one pair of accounts)."""
    failures = []
    for method, route in ROUTES:
        for kind, code in EXPECTED.items():
            headers = _bad_token(live, kind, accounts)
            body = _body_for(route, accounts["alice_auth"])  # type: ignore[arg-type]
            r = httpx.request(method, f"{live.url}/api/v1{route}", headers=headers, json=body)
            got = (r.status_code, r.json().get("code"), r.headers.get("cache-control"))
            if got != (401, code, "no-store"):
                failures.append(f"{method} {route} with {kind} token: {got}")
    assert failures == []


def test_other_users_token_cannot_act_for_alice(live: LiveApp, accounts: dict[str, object]) -> None:
    mallory = accounts["mallory"]
    headers = {"authorization": f"Bearer {mallory.token}"}  # type: ignore[attr-defined]
    # /me answers for the token's owner only.
    me = httpx.get(f"{live.url}/api/v1/me", headers=headers).json()
    assert me["email"] == "mallory@example.org"
    # Alice's password proof under Mallory's token does not change anybody's password.
    body = _body_for("/auth/password", accounts["alice_auth"])  # type: ignore[arg-type]
    r = httpx.post(f"{live.url}/api/v1/auth/password", headers=headers, json=body)
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    acct.login(live.client(), "alice@example.org", PASSWORD)
    acct.login(live.client(), "mallory@example.org", PASSWORD)
    # Nor does it delete anybody's account.
    body = _body_for("/auth/account/delete", accounts["alice_auth"])  # type: ignore[arg-type]
    r = httpx.post(f"{live.url}/api/v1/auth/account/delete", headers=headers, json=body)
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    for email in ("alice@example.org", "mallory@example.org"):
        assert acct.login(live.client(), email, PASSWORD).account.email == email
    # Nor start a key rotation or change the recovery code, for either of them (the
    # failed proofs count on Mallory's own password counter: refused, then throttled).
    for route in ("/auth/keys/rotation", "/auth/recovery/rotate"):
        body = _body_for(route, accounts["alice_auth"])  # type: ignore[arg-type]
        r = httpx.post(f"{live.url}/api/v1{route}", headers=headers, json=body)
        assert r.json()["code"] in {"invalid_credentials", "rate_limited"}, route
    alice_rotation = live.client(accounts["alice"].token).key_rotation()  # type: ignore[attr-defined]
    assert alice_rotation.pending is None
    # Logging out with Mallory's token does not end Alice's session.
    httpx.post(f"{live.url}/api/v1/auth/logout", headers=headers)
    alice = accounts["alice"]
    assert live.client(alice.token).me().email == "alice@example.org"  # type: ignore[attr-defined]


# --- sharing: who may do what with a shared record ------------------------------------------
ROLES = ("owner", "recipient", "revoked", "stranger", "none")


@pytest.fixture
def shared(live: LiveApp, tmp_path: Path) -> dict[str, Any]:
    """Ann's record shared with Bob (live) and Carl (revoked); Dave is a stranger."""
    parties: dict[str, Any] = {}
    for role, name in (
        ("owner", "ann"),
        ("recipient", "bob"),
        ("revoked", "carl"),
        ("stranger", "dave"),
    ):
        api = live.client()
        session = new_account(api, f"{name}@example.org", PASSWORD)
        api.token = session.token
        parties[role] = (api, session)
    api, session = parties["owner"]
    src = tmp_path / "r.bin"
    src.write_bytes(b"shared record")
    rid = recs.put(api, session, src).id
    grants, _ = shr.share(
        api, session, [rid], ["bob@example.org", "carl@example.org"], contacts=Contacts(None)
    )
    by_email = {g.email: g.id for g in grants}
    shr.revoke(api, rid, "carl@example.org")
    return {"parties": parties, "rid": rid, "grant": by_email["bob@example.org"]}


def _call(
    live: LiveApp, shared: dict[str, Any], role: str, method: str, path: str, body: object = None
) -> int:
    headers = {}
    if role != "none":
        headers["authorization"] = f"Bearer {shared['parties'][role][0].token}"
    r = httpx.request(method, f"{live.url}/api/v1{path}", headers=headers, json=body)
    if r.status_code == 404:
        assert r.json() == {"code": "not_found", "detail": r.json()["detail"]}
    return r.status_code


def _grant_body(shared: dict[str, Any]) -> dict[str, object]:
    """A grant of the record to Dave, well-formed for Dave's key."""
    _, owner = shared["parties"]["owner"]
    _, dave = shared["parties"]["stranger"]
    key = owner.unlock()
    dave_pub = dave.account.public_key
    return {
        "grants": [
            {
                "record_id": shared["rid"],
                "email": "dave@example.org",
                "pkesk": to_b64(crypto.make_pkesk(crypto.new_session_key(), dave_pub)),
                "sealed_metadata": to_b64(
                    crypto.seal_message(b"{}", recipients=[dave_pub], signer=key)
                ),
            }
        ]
    }


def test_sharing_matrix(live: LiveApp, shared: dict[str, Any]) -> None:
    """Every sharing route (and the record routes a recipient might try) by every role.

    Only the owner manages grants and only the live recipient reads; everyone else gets
    the answer a missing record gets. Destructive calls come last, owner/recipient last.
    """
    rid, grant = shared["rid"], shared["grant"]
    readers = {"owner": 404, "recipient": 200, "revoked": 404, "stranger": 404, "none": 401}
    owners = {"owner": 200, "recipient": 404, "revoked": 404, "stranger": 404, "none": 401}
    expected: list[tuple[str, str, dict[str, int]]] = [
        ("GET", f"/records/{rid}/grants", owners),
        ("GET", f"/records/{rid}", owners),
        ("GET", f"/records/{rid}/content", owners),
        ("GET", f"/shared/{rid}", readers),
        ("GET", f"/shared/{rid}/content", readers),
    ]
    failures = []
    for method, path, want in expected:
        for role in ROLES:
            got = _call(live, shared, role, method, path)
            if got != want[role]:
                failures.append(f"{role} {method} {path}: {got} (want {want[role]})")
    # Re-sharing: only the owner's grant is taken.
    for role, status in (
        ("recipient", 404),
        ("revoked", 404),
        ("stranger", 404),
        ("none", 401),
        ("owner", 201),
    ):
        got = _call(live, shared, role, "POST", "/grants", _grant_body(shared))
        if got != status:
            failures.append(f"{role} POST /grants: {got} (want {status})")
    # Listings show each caller their own only.
    for role in ROLES[:4]:
        api = shared["parties"][role][0]
        mine = {g.record_id for g in api.list_grants().items}
        listed = {s.id for s in api.list_shared().items}
        want_grants = {rid} if role == "owner" else set()
        want_shared = {rid} if role in ("recipient", "stranger") else set()  # Dave: just granted
        if (mine, listed) != (want_grants, want_shared):
            failures.append(f"{role} listings: grants {mine}, shared {listed}")
    # Deleting: a grant only by the owner, a shared record only by its recipient, the
    # record only by the owner.
    for role in ("recipient", "revoked", "stranger", "none"):
        for method, path in (("DELETE", f"/grants/{grant}"), ("DELETE", f"/records/{rid}")):
            got = _call(live, shared, role, method, path)
            if got != (401 if role == "none" else 404):
                failures.append(f"{role} {method} {path}: {got}")
    for role in ("owner", "revoked", "none"):
        got = _call(live, shared, role, "DELETE", f"/shared/{rid}")
        if got != (401 if role == "none" else 404):
            failures.append(f"{role} DELETE /shared: {got}")
    assert failures == []
    # The owner revokes Bob: 404 at once; Dave removes it from his list himself.
    assert _call(live, shared, "owner", "DELETE", f"/grants/{grant}") == 204
    assert _call(live, shared, "recipient", "GET", f"/shared/{rid}") == 404
    assert _call(live, shared, "recipient", "GET", f"/shared/{rid}/content") == 404
    assert _call(live, shared, "owner", "DELETE", f"/grants/{grant}") == 404  # gone
    assert _call(live, shared, "stranger", "DELETE", f"/shared/{rid}") == 204
    assert _call(live, shared, "stranger", "GET", f"/shared/{rid}") == 404
    assert _call(live, shared, "owner", "GET", f"/records/{rid}") == 200  # still Ann's
    # Malformed and unknown ids answer like missing ones.
    for path in ("/shared/not-a-uuid", f"/shared/{RID}", "/records/not-a-uuid/grants"):
        assert _call(live, shared, "owner", "GET", path) == 404, path
    assert _call(live, shared, "owner", "DELETE", "/grants/not-a-uuid") == 404


def test_grants_checked_against_the_recipients_key(live: LiveApp, shared: dict[str, Any]) -> None:
    body = _grant_body(shared)
    _, bob = shared["parties"]["recipient"]
    item = body["grants"][0]  # type: ignore[index]
    wrong = {
        **item,
        "pkesk": to_b64(crypto.make_pkesk(crypto.new_session_key(), bob.account.public_key)),
    }
    r = httpx.post(
        f"{live.url}/api/v1/grants",
        json={"grants": [wrong]},
        headers={"authorization": f"Bearer {shared['parties']['owner'][0].token}"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "pkesk_mismatch")
    to_self = {**item, "email": "ann@example.org"}
    r = httpx.post(
        f"{live.url}/api/v1/grants",
        json={"grants": [to_self]},
        headers={"authorization": f"Bearer {shared['parties']['owner'][0].token}"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "share_to_self")
    twice = {"grants": [item, item]}
    r = httpx.post(
        f"{live.url}/api/v1/grants",
        json=twice,
        headers={"authorization": f"Bearer {shared['parties']['owner'][0].token}"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")


# --- emergency access: who may do what with an owner's vault --------------------------------
EROLES = ("owner", "contact", "removed", "stranger", "none")


@pytest.fixture
def emergency(live: LiveApp, tmp_path: Path) -> dict[str, Any]:
    """Ann names Bob (granted, early approval) and Carl (granted, then removed); Dave is
    a stranger."""
    parties: dict[str, Any] = {}
    for role, name in (
        ("owner", "ann"),
        ("contact", "bob"),
        ("removed", "carl"),
        ("stranger", "dave"),
    ):
        api = live.client()
        session = new_account(api, f"{name}@example.org", PASSWORD)
        api.token = session.token
        parties[role] = (api, session)
    ann, ann_s = parties["owner"]
    src = tmp_path / "r.bin"
    src.write_bytes(b"emergency record")
    rid = recs.put(ann, ann_s, src).id
    ids = {}
    for role in ("contact", "removed"):
        email = f"{'bob' if role == 'contact' else 'carl'}@example.org"
        made, _ = emg.add_contact(ann, ann_s, email, wait_days=7, contacts=Contacts(None))
        emg.request(parties[role][0], "ann@example.org")
        emg.approve(ann, email)
        ids[role] = made.id
    carl_access = emg.find_access(parties["removed"][0], "ann@example.org").id
    emg.remove_contact(ann, "carl@example.org")
    return {"parties": parties, "rid": rid, "ids": ids, "carl_access": carl_access}


def test_emergency_matrix(live: LiveApp, emergency: dict[str, Any]) -> None:
    """Every emergency route by every role: only the owner manages contacts, only the
    granted contact reads (read-only), everyone else gets the answer a missing one gets."""
    rid, bob_id = emergency["rid"], emergency["ids"]["contact"]
    carl_id = emergency["ids"]["removed"]
    failures = []

    def expect(method: str, path: str, want: dict[str, int], body: object = None) -> None:
        for role in EROLES:
            got = _call(live, emergency, role, method, path, body)
            if got != want[role]:
                failures.append(f"{role} {method} {path}: {got} (want {want[role]})")

    readers = {"owner": 404, "contact": 200, "removed": 404, "stranger": 404, "none": 401}
    owners = {"owner": 200, "contact": 404, "removed": 404, "stranger": 404, "none": 401}
    gone = {"owner": 404, "contact": 404, "removed": 404, "stranger": 404, "none": 401}
    for access in (bob_id, emergency["carl_access"]):
        want = readers if access == bob_id else gone
        base = f"/emergency/access/{access}"
        expect("GET", f"{base}/vault", want)
        expect("GET", f"{base}/records", want)
        expect("GET", f"{base}/records/{rid}", want)
        expect("GET", f"{base}/records/{rid}/content", want)
        expect("POST", f"{base}/request", want)
    expect("POST", f"/emergency/contacts/{carl_id}/deny", gone)
    expect("POST", f"/emergency/contacts/{carl_id}/approve", gone)
    expect("DELETE", f"/emergency/contacts/{carl_id}", gone)
    # Read-only: the contact can't write, delete or share the owner's records, nor
    # manage the owner's contacts.
    not_owner = {"contact": 404, "removed": 404, "stranger": 404, "none": 401}
    for method, path in (
        ("DELETE", f"/records/{rid}"),
        ("GET", f"/records/{rid}/grants"),
        ("POST", f"/emergency/contacts/{bob_id}/deny"),
        ("POST", f"/emergency/contacts/{bob_id}/approve"),
        ("DELETE", f"/emergency/contacts/{bob_id}"),
    ):
        for role, status in not_owner.items():
            got = _call(live, emergency, role, method, path)
            if got != status:
                failures.append(f"{role} {method} {path}: {got} (want {status})")
    grant = {
        "grants": [
            {
                "record_id": rid,
                "email": "dave@example.org",
                "pkesk": "AQ==",
                "sealed_metadata": "AQ==",
            }
        ]
    }
    got = _call(live, emergency, "contact", "POST", "/grants", grant)
    if got not in (404,):
        failures.append(f"contact POST /grants: {got}")
    # Listings show each caller their own only.
    for role in EROLES[:4]:
        api = emergency["parties"][role][0]
        contacts = [c.email for c in api.emergency_contacts().items]
        owners_ = [a.owner.email for a in api.emergency_access().items]
        want_c = ["bob@example.org"] if role == "owner" else []
        want_o = ["ann@example.org"] if role == "contact" else []
        if (contacts, owners_) != (want_c, want_o):
            failures.append(f"{role} listings: {contacts} {owners_}")
    expect(
        "GET", "/emergency/contacts", {**owners, "contact": 200, "removed": 200, "stranger": 200}
    )
    assert failures == []
    # The owner ends Bob's access: 404 at once; then removes him.
    assert _call(live, emergency, "owner", "POST", f"/emergency/contacts/{bob_id}/deny") == 200
    assert _call(live, emergency, "contact", "GET", f"/emergency/access/{bob_id}/vault") == 404
    assert _call(live, emergency, "contact", "GET", f"/emergency/access/{bob_id}/records") == 404
    assert _call(live, emergency, "owner", "DELETE", f"/emergency/contacts/{bob_id}") == 204
    assert _call(live, emergency, "contact", "POST", f"/emergency/access/{bob_id}/request") == 404
    assert _call(live, emergency, "owner", "GET", f"/records/{rid}") == 200  # still Ann's
    for path in ("/emergency/access/not-a-uuid/vault", f"/emergency/access/{RID}/records"):
        assert _call(live, emergency, "owner", "GET", path) == 404, path
    assert _call(live, emergency, "owner", "DELETE", "/emergency/contacts/not-a-uuid") == 404


def test_link_management_matrix(live: LiveApp, shared: dict[str, Any]) -> None:
    """Share links (protocol §8): only the owner lists, reads and revokes a link, or
    makes one from a record; everyone else gets a missing link's answer."""
    from hygieia.client import links as lnk
    from hygieia.client.shlink import decode_link

    api, session = shared["parties"]["owner"]
    link, created = lnk.create_link(api, session, [shared["rid"]], expires_in=timedelta(days=1))
    lid = created["id"]
    owners = {"owner": 200, "recipient": 404, "revoked": 404, "stranger": 404, "none": 401}
    failures = []
    for role in ROLES:
        got = _call(live, shared, role, "GET", f"/links/{lid}")
        if got != owners[role]:
            failures.append(f"{role} GET /links/{{id}}: {got}")
        if role != "none":
            mine = {i["id"] for i in shared["parties"][role][0].list_links()}
            if mine != ({lid} if role == "owner" else set()):
                failures.append(f"{role} GET /links: {mine}")
        elif _call(live, shared, role, "GET", "/links") != 401:
            failures.append("none GET /links")
    for role in ("recipient", "revoked", "stranger", "none"):
        got = _call(live, shared, role, "DELETE", f"/links/{lid}")
        if got != (401 if role == "none" else 404):
            failures.append(f"{role} DELETE /links/{{id}}: {got}")
    # A link from a record that is not the caller's is refused like a missing record.
    jwe = link_jwe.encrypt_link_file(
        b"{}", key=link_jwe.new_link_key(), content_type="application/fhir+json"
    ).encode()
    meta = {
        "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "record_ids": [shared["rid"]],
        "files": [{"content_type": "application/fhir+json", "size": len(jwe)}],
    }
    for role in ("recipient", "stranger", "none"):
        headers = {}
        if role != "none":
            headers["authorization"] = f"Bearer {shared['parties'][role][0].token}"
        r = httpx.post(
            f"{live.url}/api/v1/links",
            headers=headers,
            data={"meta": json.dumps(meta)},
            files=[("file", ("f", jwe, "application/jose"))],
        )
        if r.status_code != (401 if role == "none" else 404):
            failures.append(f"{role} POST /links: {r.status_code}")
    for path in ("/links/not-a-uuid", f"/links/{RID}"):
        if _call(live, shared, "owner", "GET", path) != 404:
            failures.append(f"owner GET {path}")
    assert failures == []
    assert _call(live, shared, "owner", "DELETE", f"/links/{lid}") == 204
    assert _call(live, shared, "owner", "DELETE", f"/links/{lid}") == 204  # already ended
    assert httpx.post(decode_link(link).url, json={"recipient": "x"}).status_code == 404


# --- second factors: only the owner's session touches a factor ---------------------------
def test_factor_matrix(live: LiveApp, accounts: dict[str, Any]) -> None:
    alice, mallory = accounts["alice"], accounts["mallory"]
    aapi, mapi = live.client(alice.token), live.client(mallory.token)
    started = aapi.start_totp("Phone")
    totp = pyotp.TOTP(started.secret)
    # Mallory can neither confirm Alice's enrolment nor remove her factor.
    with pytest.raises(ApiError) as e:
        mapi.confirm_totp(started.factor_id, totp.now())
    assert (e.value.status, e.value.code) == (404, "factor_not_found")
    done = aapi.confirm_totp(started.factor_id, totp.now())
    assert done.backup_codes is not None
    mallory_key = to_b64(
        crypto.derive_keys(PASSWORD, mapi.prelogin("mallory@example.org").salt, TEST_KDF).auth_key
    )
    with pytest.raises(ApiError) as e:
        mapi.remove_factor(started.factor_id, mallory_key, None)
    assert (e.value.status, e.value.code) == (404, "factor_not_found")
    assert mapi.factors().factors == ()
    assert [f.id for f in aapi.factors().factors] == [started.factor_id]
    # Alice's proofs under Mallory's token don't renew Alice's backup codes.
    proof = {"method": "backup_code", "code": done.backup_codes[0]}
    with pytest.raises(ApiError) as e:
        mapi.renew_backup_codes(to_b64(accounts["alice_auth"]), proof)
    assert e.value.code == "invalid_credentials"
    # A pending login is no session.
    pending = live.client().login("alice@example.org", to_b64(accounts["alice_auth"]))
    assert isinstance(pending, FactorChallenge)
    r = httpx.get(
        f"{live.url}/api/v1/me", headers={"authorization": f"Bearer {pending.pending_token}"}
    )
    assert (r.status_code, r.json()["code"]) == (401, "invalid_token")
