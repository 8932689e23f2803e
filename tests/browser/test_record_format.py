"""Records sealed in the page open with the Python crypto package, and the other way
round: the segment format, PKESK, sealed metadata and session-key envelope agree
(protocol §3)."""

from __future__ import annotations

import base64
import io

import pytest

from hygieia import crypto
from tests.crypto.forgery import forged_message, forged_segment

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
          const recordId = c.newRecordId();
          const meta = await c.sealMetadata({ title: 'Blood panel', tags: ['lab'], size,
                                              cid: await c.contentCid([cipher]) },
                                            { recordId, publicKey: pub, signingKey: key });
          return {
            locked: id.lockedSecretKey, pub: id.publicKey, vault: c.toB64(vaultKey),
            cipher: c.toB64(cipher), sk: c.toB64(sessionKey),
            pkesk: c.toB64(await c.wrapSessionKey(sessionKey, pub)),
            envelope: c.toB64(
              await c.sealEnvelope(sessionKey, { publicKey: pub, signingKey: key })),
            meta: c.toB64(meta), segs: segs.map((s) => s.length), recordId,
          };
        }""",
        size,
    )
    text = {"locked", "pub", "segs", "recordId"}
    b = {k: base64.b64decode(v) for k, v in got.items() if k not in text}
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
    rid = got["recordId"]
    assert crypto.is_record_id(rid)
    meta = crypto.open_record_metadata(
        b["meta"], record_id=rid, key=key, signer_public_key=got["pub"]
    )
    assert meta["v"] == 2 and meta["id"] == rid
    assert meta["title"] == "Blood panel" and meta["tags"] == ["lab"]
    with pytest.raises(crypto.RecordMismatch):
        crypto.open_record_metadata(
            b["meta"], record_id=crypto.new_record_id(), key=key, signer_public_key=got["pub"]
        )


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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_browser_refuses_compressed_packets_unread(web):
    """Issue 9, finding 6: compressed metadata, envelopes and segments are refused.

    The forgeries are validly signed by the reader's own key, so only the packet
    check can stop them. Failed before the change: OpenPGP.js inflated each bomb
    (256 MiB for the metadata and the envelope, taking seconds) and accepted the
    segment as one 64 MiB chunk.
    """
    web.goto()
    vault_key = crypto.new_vault_key()
    ident = crypto.generate_identity("bomb@example.org", vault_key)
    key = crypto.unlock(ident.locked_secret_key, vault_key)
    session_key = crypto.new_session_key()
    got = web.crypto(
        """async (c, a) => {
          const key = await c.unlockIdentity(a.locked, c.fromB64(a.vault));
          const pub = await c.readPublicKey(a.pub);
          const message = c.fromB64(a.message);
          const opens = {
            metadata: () => c.openMetadata(message, { privateKey: key, verificationKeys: pub }),
            envelope: () => c.openEnvelope(message, { privateKey: key, verificationKeys: pub }),
            segment: () => c.openSegment({ bytes: c.fromB64(a.segment), index: 0, count: 1,
                                           sessionKey: c.fromB64(a.sk), verificationKeys: pub }),
          };
          const out = {};
          for (const [name, open] of Object.entries(opens)) {
            const t0 = performance.now();
            let result;
            try { const r = await open(); result = `opened ${r.length ?? ''}`; }
            catch (e) { result = e.name; }
            out[name] = { result, ms: performance.now() - t0 };
          }
          return out;
        }""",
        {
            "locked": ident.locked_secret_key,
            "vault": _b64(vault_key),
            "pub": ident.public_key,
            "sk": _b64(session_key),
            "message": _b64(forged_message(key, ident.public_key, 256 * MIB)),
            "segment": _b64(forged_segment(key, session_key, 64 * MIB)),
        },
    )
    for name in ("metadata", "envelope", "segment"):
        assert got[name]["result"] == "DecryptionError", (name, got)
        assert got[name]["ms"] < 1000, (name, got)


def test_browser_refuses_segments_of_the_wrong_size(web):
    """Every segment holds exactly segment_size bytes, the last one at most that.

    Failed before the change: openSegment took no size and accepted all three.
    """
    web.goto()
    vault_key = crypto.new_vault_key()
    ident = crypto.generate_identity("size@example.org", vault_key)
    key = crypto.unlock(ident.locked_secret_key, vault_key)
    session_key = crypto.new_session_key()

    def seal(size: int, segment_size: int) -> list[str]:
        data = bytes(size)
        segments = crypto.seal_segments(
            io.BytesIO(data),
            session_key=session_key,
            signer=key,
            size=size,
            segment_size=segment_size,
        )
        return [_b64(s) for s in segments]

    got = web.crypto(
        """async (c, a) => {
          const pub = await c.readPublicKey(a.pub);
          const out = {};
          for (const [name, segs] of Object.entries(a.cases)) {
            try {
              for (let i = 0; i < segs.length; i++) {
                await c.openSegment({ bytes: c.fromB64(segs[i]), index: i, count: segs.length,
                                      sessionKey: c.fromB64(a.sk), verificationKeys: pub,
                                      segmentSize: 1000 });
              }
              out[name] = 'opened';
            } catch (e) { out[name] = e.name; }
          }
          return out;
        }""",
        {
            "pub": ident.public_key,
            "sk": _b64(session_key),
            "cases": {
                "exact": seal(2500, 1000),
                "lone one byte long": seal(1001, 1001),
                "middle one byte short": seal(2997, 999),
                "three in one": seal(3000, 3000),
            },
        },
    )
    assert got == {
        "exact": "opened",
        "lone one byte long": "DecryptionError",
        "middle one byte short": "DecryptionError",
        "three in one": "DecryptionError",
    }
