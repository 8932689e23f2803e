from __future__ import annotations

import base64
import json

import pytest

from hygieia import crypto
from tests.support.identities import Person


def test_seal_and_open_for_several_readers(alice: Person, bob: Person) -> None:
    metadata = json.dumps({"v": 1, "title": "Röntgen"}).encode()
    msg = crypto.seal_message(
        metadata, recipients=[alice.identity.public_key, bob.identity.public_key], signer=alice.key
    )
    for reader in (alice, bob):
        opened = crypto.open_message(
            msg, key=reader.key, signer_public_key=alice.identity.public_key
        )
        assert opened == metadata


def test_open_failures(alice: Person, bob: Person) -> None:
    msg = crypto.seal_message(b"x", recipients=[alice.identity.public_key], signer=alice.key)
    with pytest.raises(crypto.DecryptionError):  # not a recipient
        crypto.open_message(msg, key=bob.key, signer_public_key=alice.identity.public_key)
    with pytest.raises(crypto.DecryptionError):  # wrong signer
        crypto.open_message(msg, key=alice.key, signer_public_key=bob.identity.public_key)
    for i in (len(msg) // 2, len(msg) - 3):
        bad = bytearray(msg)
        bad[i] ^= 1
        with pytest.raises(crypto.DecryptionError):
            crypto.open_message(
                bytes(bad), key=alice.key, signer_public_key=alice.identity.public_key
            )
    for junk in (b"", b"junk", msg[:-1]):
        with pytest.raises(crypto.DecryptionError):
            crypto.open_message(junk, key=alice.key, signer_public_key=alice.identity.public_key)


def test_seal_argument_checks(alice: Person) -> None:
    with pytest.raises(ValueError):
        crypto.seal_message(b"x", recipients=[], signer=alice.key)
    with pytest.raises(crypto.InvalidKeyMaterial):
        crypto.seal_message(b"x", recipients=["nope"], signer=alice.key)


def test_session_key_envelope(alice: Person, bob: Person) -> None:
    session_key = crypto.new_session_key()
    envelope = crypto.seal_session_key_envelope(
        session_key, owner_public_key=alice.identity.public_key, signer=alice.key
    )
    assert (
        crypto.open_session_key_envelope(
            envelope, key=alice.key, signer_public_key=alice.identity.public_key
        )
        == session_key
    )
    inner = crypto.open_message(
        envelope, key=alice.key, signer_public_key=alice.identity.public_key
    )
    assert json.loads(inner) == {
        "v": 1,
        "alg": "aes256",
        "key": base64.b64encode(session_key).decode(),
    }
    with pytest.raises(crypto.DecryptionError):
        crypto.open_session_key_envelope(
            envelope, key=bob.key, signer_public_key=alice.identity.public_key
        )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"v":2,"alg":"aes256","key":"AAAA"}',
        b'{"v":1,"alg":"aes256","key":"AAAA"}',
        b'{"v":1,"alg":"aes128","key":"' + base64.b64encode(bytes(32)) + b'"}',
    ],
)
def test_envelope_rejects_bad_contents(alice: Person, body: bytes) -> None:
    msg = crypto.seal_message(body, recipients=[alice.identity.public_key], signer=alice.key)
    with pytest.raises(crypto.DecryptionError):
        crypto.open_session_key_envelope(
            msg, key=alice.key, signer_public_key=alice.identity.public_key
        )
