from __future__ import annotations

import os

from hygieia import crypto


def test_hash_and_verify() -> None:
    secret = os.urandom(32)
    stored = crypto.hash_secret(secret)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert crypto.verify_secret(stored, secret)
    assert not crypto.verify_secret(stored, os.urandom(32))
    assert crypto.hash_secret(secret) != stored  # salted
    assert not crypto.needs_rehash(stored)


def test_verify_never_raises() -> None:
    assert not crypto.verify_secret("", b"x")
    assert not crypto.verify_secret("not a hash", b"x")
    assert not crypto.verify_secret("$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB", b"x")


def test_dummy_verify_costs_a_real_verification() -> None:
    from hygieia.crypto import _verifier

    # Same parameters as real hashes, so it takes as long as a real verify.
    assert not crypto.needs_rehash(_verifier._DUMMY_HASH)
    assert crypto.verify_secret(_verifier._DUMMY_HASH, b"hygieia dummy secret")
    crypto.dummy_verify(os.urandom(32))
