"""The WebAuthn ceremonies of services/passkeys.py against a software authenticator.

Each refusal is checked next to an acceptance that differs only in the one thing made
wrong, so the test fails if the check it names is missing.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hygieia.errors import FactorInvalid, PasskeyUnavailable
from hygieia.services import passkeys
from tests.support.soft_authenticator import SoftAuthenticator, b64u

ORIGIN = "http://localhost:8123"
RP = passkeys.RelyingParty(id="localhost", origin=ORIGIN)
USER = b"user-1"


def _enrolled() -> tuple[SoftAuthenticator, passkeys.StoredCredential]:
    auth = SoftAuthenticator()
    challenge = passkeys.new_challenge()
    options = passkeys.registration_options(
        RP, user_handle=USER, user_name="a@example.org", existing=[], challenge=challenge
    )
    new = passkeys.verify_registration(
        RP, credential=auth.register(options, origin=ORIGIN), challenge=challenge
    )
    assert new.credential_id == auth.credential_id
    assert new.transports == ["internal"]
    return auth, passkeys.StoredCredential(new.credential_id, new.public_key, new.sign_count)


def _request(stored: passkeys.StoredCredential) -> tuple[bytes, dict[str, Any]]:
    challenge = passkeys.new_challenge()
    return challenge, passkeys.authentication_options(RP, allowed=[stored], challenge=challenge)


def _verify(stored: passkeys.StoredCredential, challenge: bytes, answer: dict[str, Any]) -> int:
    return passkeys.verify_assertion(
        RP, credential=answer, challenge=challenge, stored=stored, user_handle=USER
    )


def test_relying_party() -> None:
    rp = passkeys.relying_party(public_url="", scheme="http", host="LocalHost:8000")
    assert rp == passkeys.RelyingParty(id="localhost", origin="http://localhost:8000")
    rp = passkeys.relying_party(
        public_url="https://vault.example.org", scheme="http", host="127.0.0.1:8000"
    )
    assert rp.id == "vault.example.org" and rp.origin == "https://vault.example.org"
    rp = passkeys.relying_party(public_url="", scheme="https", host="vault.example.org:443")
    assert rp.origin == "https://vault.example.org"  # as the browser writes it
    rp = passkeys.relying_party(public_url="", scheme="http", host="localhost:443")
    assert rp.origin == "http://localhost:443"
    for host in ("127.0.0.1:8000", "[::1]:8000", "10.0.0.1"):
        with pytest.raises(PasskeyUnavailable):
            passkeys.relying_party(public_url="", scheme="http", host=host)


def test_registration_options_exclude_existing() -> None:
    _, stored = _enrolled()
    options = passkeys.registration_options(
        RP, user_handle=USER, user_name="a", existing=[stored], challenge=b"c" * 32
    )
    assert options["rp"] == {"id": "localhost", "name": "Hygieia"}
    assert options["excludeCredentials"][0]["id"] == b64u(stored.credential_id)
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"


def test_registration_refusals() -> None:
    auth = SoftAuthenticator()
    challenge = passkeys.new_challenge()
    options = passkeys.registration_options(
        RP, user_handle=USER, user_name="a", existing=[], challenge=challenge
    )
    good = auth.register(options, origin=ORIGIN)
    passkeys.verify_registration(RP, credential=good, challenge=challenge)
    with pytest.raises(FactorInvalid):  # another challenge
        passkeys.verify_registration(RP, credential=good, challenge=passkeys.new_challenge())
    with pytest.raises(FactorInvalid):  # another origin (port differs)
        passkeys.verify_registration(
            RP,
            credential=auth.register(options, origin="http://localhost:8124"),
            challenge=challenge,
        )
    with pytest.raises(FactorInvalid):  # another RP ID hash
        passkeys.verify_registration(
            RP,
            credential=auth.register(options, origin=ORIGIN, rp_id="evil.example"),
            challenge=challenge,
        )
    for junk in ({}, {"id": "x"}, {"id": 1, "rawId": [], "response": "no"}):
        with pytest.raises(FactorInvalid):
            passkeys.verify_registration(RP, credential=junk, challenge=challenge)


def test_assertion_accepted_and_counts() -> None:
    auth, stored = _enrolled()
    challenge, options = _request(stored)
    assert options["allowCredentials"][0]["id"] == b64u(stored.credential_id)
    assert options["userVerification"] == "preferred"
    answer = auth.assert_(options, origin=ORIGIN)
    assert passkeys.credential_id_of(answer) == stored.credential_id
    assert _verify(stored, challenge, answer) == 1


def test_assertion_refusals() -> None:
    auth, stored = _enrolled()
    stored = passkeys.StoredCredential(stored.credential_id, stored.public_key, sign_count=5)
    auth.sign_count = 5
    challenge, options = _request(stored)
    stranger = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "wrong key": auth.assert_(options, origin=ORIGIN, key=stranger),
        "wrong challenge": auth.assert_(options, origin=ORIGIN, challenge=b64u(b"x" * 32)),
        "wrong origin": auth.assert_(options, origin="https://localhost:8123"),
        "wrong rp id hash": auth.assert_(options, origin=ORIGIN, rp_id="example.org"),
        "sign count regressed": auth.assert_(options, origin=ORIGIN, sign_count=4),
        "sign count repeated": auth.assert_(options, origin=ORIGIN, sign_count=5),
        "registration type": auth.assert_(options, origin=ORIGIN, kind="webauthn.create"),
        "another user handle": auth.assert_(options, origin=ORIGIN, user_handle=b"user-2"),
    }
    for name, answer in cases.items():
        with pytest.raises(FactorInvalid):
            _verify(stored, challenge, answer)
            pytest.fail(name)
    other = SoftAuthenticator()  # a valid signature, but from another credential
    other.user_handle = USER
    with pytest.raises(FactorInvalid):
        _verify(stored, challenge, other.assert_(options, origin=ORIGIN))
    # and the unmodified answer still passes: the refusals above were for their one fault
    assert _verify(stored, challenge, auth.assert_(options, origin=ORIGIN, sign_count=6)) == 6


@pytest.mark.parametrize(
    "junk",
    [{}, {"id": "", "rawId": ""}, {"id": "!!", "rawId": "!!", "response": {}}, {"response": 3}],
)
def test_malformed_assertions(junk: dict[str, Any]) -> None:
    _, stored = _enrolled()
    with pytest.raises(FactorInvalid):
        passkeys.credential_id_of(junk)
    with pytest.raises(FactorInvalid):
        _verify(stored, b"c" * 32, junk)
