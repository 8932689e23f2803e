"""Records sealed in the page open with the Python crypto package, and the other way
round: the segment format, PKESK, sealed metadata and session-key envelope agree
(protocol §3)."""

from __future__ import annotations

import base64
import io
import json

import pytest

from hygieia import crypto

pytestmark = pytest.mark.browser

MIB = 1024 * 1024


def test_browser_sealed_record_opens_in_python(web):
    web.goto()
    size = 4 * MIB + 12345  # two segments, the second short
    got = web.crypto(
        """async (c, size) => {
          const vaultKey = c.newVaultKey();
          const id = await c.generateIdentity({ email: 'fmt@example.org', vaultKey });
          const key = await c.unlockIdentity(id.lockedSecretKey, vaultKey);
          const pub = key.toPublic();
          const data = new Uint8Array(size);
          for (let i = 0; i < size; i++) data[i] = (i * 13) & 0xff;
          const sessionKey = c.newSessionKey();
          const segs = [];
          for await (const s of c.sealBlob(new Blob([data]), { sessionKey, signingKey: key })) {
            segs.push(s.bytes);
          }
          const cipher = c.concat(...segs);
          const meta = await c.sealMetadata({ title: 'Blood panel', tags: ['lab'], size,
                                              cid: await c.contentCid([cipher]) },
                                            { publicKey: pub, signingKey: key });
          return {
            locked: id.lockedSecretKey, pub: id.publicKey, vault: c.toB64(vaultKey),
            cipher: c.toB64(cipher), sk: c.toB64(sessionKey),
            pkesk: c.toB64(await c.wrapSessionKey(sessionKey, pub)),
            envelope: c.toB64(
              await c.sealEnvelope(sessionKey, { publicKey: pub, signingKey: key })),
            meta: c.toB64(meta), segs: segs.map((s) => s.length),
          };
        }""",
        size,
    )
    b = {k: base64.b64decode(v) for k, v in got.items() if k not in {"locked", "pub", "segs"}}
    key = crypto.unlock(got["locked"], b["vault"])
    # Every segment packet has the fixed 5-byte length header.
    off = 0
    for n in got["segs"]:
        seg = b["cipher"][off : off + n]
        assert seg[0] == 0xD2 and seg[1] == 0xFF
        assert int.from_bytes(seg[2:6], "big") == n - 6
        off += n
    assert len(got["segs"]) == 2
    expected = bytes((i * 13) & 0xFF for i in range(size))
    plain = b"".join(
        crypto.open_segments(
            io.BytesIO(b["cipher"]), signer_public_key=got["pub"], pkesk=b["pkesk"], key=key
        )
    )
    assert plain == expected
    assert (
        crypto.open_session_key_envelope(b["envelope"], key=key, signer_public_key=got["pub"])
        == b["sk"]
    )
    meta = json.loads(crypto.open_message(b["meta"], key=key, signer_public_key=got["pub"]))
    assert meta["v"] == 1 and meta["title"] == "Blood panel" and meta["tags"] == ["lab"]


def test_python_sealed_record_opens_in_browser(web):
    web.goto()
    vault_key = crypto.new_vault_key()
    ident = crypto.generate_identity("py@example.org", vault_key)
    key = crypto.unlock(ident.locked_secret_key, vault_key)
    session_key = crypto.new_session_key()
    size = 4 * MIB + 999
    data = bytes((i * 7 + 1) & 0xFF for i in range(size))
    cipher = b"".join(
        crypto.seal_segments(io.BytesIO(data), session_key=session_key, signer=key, size=size)
    )
    got = web.crypto(
        """async (c, a) => {
          const key = await c.unlockIdentity(a.locked, c.fromB64(a.vault));
          const pub = await c.readPublicKey(a.pub);
          const sk = await c.unwrapSessionKey(c.fromB64(a.pkesk), key);
          const cipher = c.fromB64(a.cipher);
          const parts = [];
          let i = 0;
          const pieces = [cipher.subarray(0, 777), cipher.subarray(777)];
          for await (const seg of c.splitSegments(pieces)) {
            parts.push(await c.openSegment({ bytes: seg, index: i++, count: 2, sessionKey: sk,
                                             verificationKeys: pub }));
          }
          const plain = c.concat(...parts);
          const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', plain));
          // Dropping the last segment must not go unnoticed.
          let dropped = 'accepted';
          try {
            const first = [];
            for await (const seg of c.splitSegments([cipher])) { first.push(seg); }
            await c.openSegment({ bytes: first[1], index: 0, count: 2, sessionKey: sk,
                                  verificationKeys: pub });
          } catch (e) { dropped = e.name; }
          return { n: plain.length, sha: c.toHex(digest), dropped };
        }""",
        {
            "locked": ident.locked_secret_key,
            "pub": ident.public_key,
            "vault": base64.b64encode(vault_key).decode(),
            "pkesk": base64.b64encode(crypto.make_pkesk(session_key, ident.public_key)).decode(),
            "cipher": base64.b64encode(cipher).decode(),
        },
    )
    import hashlib

    assert got == {"n": size, "sha": hashlib.sha256(data).hexdigest(), "dropped": "DecryptionError"}
