"""Decoy keys against the web app's own keys (OpenPGP.js): the same bytes, and usable.

A key lookup answers unknown emails with a decoy (hygieia.crypto._decoy). Keys made
in the web app have OpenPGP.js's layout, so decoys must have it too, or every such key
would be known to be an account's.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from openpgp.composed import SignedPublicKey

from hygieia import crypto
from hygieia.crypto import _decoy
from hygieia.crypto._framing import read_packet

pytestmark = pytest.mark.browser


def _signature_hash(armored: str) -> int:
    """The hash algorithm of a key's first self-signature: 8 for rPGP's layout, 10 for
    OpenPGP.js's."""
    raw = SignedPublicKey.from_armor(armored)[0].to_bytes()
    pos = 0
    while True:
        tag, body, pos = read_packet(raw, pos)
        if tag == 2:
            return body[3]


def test_openpgpjs_layout_is_byte_identical_to_the_web_apps_keys(web):
    """Rebuilt from a web-app key's seed, point, time and salts, the bytes are equal.

    Failed before: decoys were only ever in rPGP's layout (no OpenPGP.js builder).
    """
    web.goto()
    got = web.crypto(
        """async (c) => {
          const vaultKey = c.newVaultKey();
          const id = await c.generateIdentity({ email: 'web@example.org', vaultKey });
          const key = await c.unlockIdentity(id.lockedSecretKey, vaultKey);
          return {
            public: c.toB64(key.toPublic().write()),
            seed: c.toB64(key.keyPacket.privateParams.seed),
            point: c.toB64(key.subkeys[0].keyPacket.publicParams.Q),
          };
        }"""
    )
    raw = base64.b64decode(got["public"])
    salts, created, pos = [], None, 0
    while pos < len(raw):
        tag, body, pos = read_packet(raw, pos)
        if tag == 6:
            created = int.from_bytes(body[1:5], "big")
        if tag == 2:
            at = body.index(b"salt@notations.openpgpjs.org") + 28
            salts.append(body[at : at + 32])
    assert created is not None and len(salts) == 2
    rebuilt = _decoy._build_openpgpjs(
        base64.b64decode(got["seed"]),
        base64.b64decode(got["point"])[1:],  # 0x40 prefix
        "web@example.org",
        created,
        (salts[0], salts[1]),
    )
    assert rebuilt == raw


def test_web_app_reads_decoys_of_both_layouts(web):
    """What a sharing client does with a looked-up key: read it, find its encryption
    subkey, encrypt a session key to it."""
    web.goto()
    decoys = [
        crypto.decoy_public_key(
            hashlib.sha256(bytes([i])).digest(), "ghost@example.org", 1
        ).public_key
        for i in range(6)
    ]
    assert {_signature_hash(d) for d in decoys} == {8, 10}  # both layouts among them
    fingerprints = web.crypto(
        """async (c, keys) => {
          const out = [];
          for (const armored of keys) {
            const key = await c.readPublicKey(armored);
            await c.wrapSessionKey(c.newSessionKey(), key);
            out.push(key.getFingerprint().toUpperCase());
          }
          return out;
        }""",
        decoys,
    )
    assert fingerprints == [
        crypto.decoy_public_key(
            hashlib.sha256(bytes([i])).digest(), "ghost@example.org", 1
        ).fingerprint
        for i in range(6)
    ]
