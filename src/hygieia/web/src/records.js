// Record flows (protocol §3, §5): seal and upload, list with decrypted metadata,
// download and open segment by segment, delete. Only ciphertext leaves the page.
import { createSHA256 } from 'hash-wasm';
import * as c from './crypto/index.js';
import { session } from './session.js';

/** Decrypt the metadata of every record the server lists for us. */
export async function loadRecords(api) {
  const list = await api.json('GET', '/records');
  const items = Array.isArray(list) ? list : list.items;
  const out = [];
  for (const item of items) {
    let meta = null;
    try {
      meta = await c.openMetadata(c.fromB64(item.sealed_metadata), {
        privateKey: session.privateKey,
        verificationKeys: session.publicKey,
      });
    } catch {
      meta = null; // shown as "unreadable" rather than hiding the record
    }
    out.push({ ...item, meta });
  }
  session.records = out;
  return out;
}

/**
 * Seal `file` with `fields` (title, type, date, provider, tags) and upload it.
 * onProgress(phase, fraction) with phase 'encrypt' | 'upload'.
 */
export async function uploadRecord(api, file, fields, { onProgress = () => {}, signal } = {}) {
  const signingKey = session.privateKey;
  const publicKey = session.publicKey;
  const sessionKey = c.newSessionKey();
  const sha = await createSHA256();
  const parts = [];
  let cipherBytes = 0;
  let done = 0;
  const count = c.segmentCount(file.size);
  async function* sealed() {
    for await (const seg of c.sealBlob(file, { sessionKey, signingKey })) {
      if (signal?.aborted) throw new DOMException('upload cancelled', 'AbortError');
      // The plaintext digest is computed from the same bytes that were sealed.
      const start = seg.index * c.SEGMENT_SIZE;
      sha.update(new Uint8Array(await file.slice(start, start + seg.plainBytes).arrayBuffer()));
      parts.push(new Blob([seg.bytes]));
      cipherBytes += seg.bytes.length;
      done += 1;
      onProgress('encrypt', done / count);
      yield seg.bytes;
    }
  }
  const cid = await c.contentCid(sealed());
  const meta = c.recordMetadata({
    ...fields,
    filename: file.name || null,
    media_type: file.type || 'application/octet-stream',
    size: file.size,
    sha256: sha.digest('hex'),
    cid,
    segments: count,
    segment_size: c.SEGMENT_SIZE,
  });
  const keys = { publicKey, signingKey };
  const form = new FormData();
  form.append(
    'meta',
    new Blob(
      [
        JSON.stringify({
          cid,
          size: cipherBytes,
          segments: count,
          pkesk: c.toB64(await c.wrapSessionKey(sessionKey, publicKey)),
          sealed_metadata: c.toB64(await c.sealJson(meta, { encryptionKeys: publicKey, signingKeys: signingKey })),
          envelope: c.toB64(await c.sealEnvelope(sessionKey, keys)),
        }),
      ],
      { type: 'application/json' },
    ),
  );
  c.wipe(sessionKey);
  // The file part is named by the CID: the original file name is never sent.
  form.append('content', new Blob(parts, { type: 'application/octet-stream' }), cid);
  const record = await api.upload('POST', '/records', form, {
    signal,
    onProgress: (loaded, total) => onProgress('upload', loaded / total),
  });
  return { ...record, meta };
}

/**
 * Download and open a record: every segment decrypted and verified, the content
 * CID and the plaintext SHA-256 checked. Returns a Blob of the plaintext.
 */
export async function openRecord(api, record, { onProgress = () => {}, signal } = {}) {
  const meta = record.meta;
  const res = await api.raw('GET', `/records/${encodeURIComponent(record.id)}/content`, { signal });
  const total = Number(res.headers.get('Content-Length')) || record.size || 0;
  let received = 0;
  async function* body() {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      received += value.length;
      if (total) onProgress(Math.min(1, received / total));
      yield value;
    }
  }
  const sessionKey = record.envelope
    ? await c.openEnvelope(c.fromB64(record.envelope), {
        privateKey: session.privateKey,
        verificationKeys: session.publicKey,
      })
    : await c.unwrapSessionKey(c.fromB64(record.pkesk), session.privateKey);
  const sha = await createSHA256();
  const parts = [];
  let index = 0;
  const count = meta.segments;
  async function* opened() {
    for await (const seg of c.splitSegments(body())) {
      const chunk = await c.openSegment({
        bytes: seg,
        index,
        count,
        sessionKey,
        verificationKeys: session.publicKey,
      });
      sha.update(chunk);
      parts.push(new Blob([chunk]));
      index += 1;
      yield seg;
    }
  }
  const cid = await c.contentCid(opened());
  c.wipe(sessionKey);
  if (index !== count) throw new c.DecryptionError('record is missing segments');
  if (!c.sameCid(cid, meta.cid) || (record.cid && !c.sameCid(cid, record.cid))) {
    throw new c.DecryptionError('content does not match its CID');
  }
  if (sha.digest('hex') !== meta.sha256) throw new c.DecryptionError('content digest mismatch');
  return new Blob(parts, { type: safeType(meta.media_type) });
}

export async function deleteRecord(api, record) {
  await api.json('DELETE', `/records/${encodeURIComponent(record.id)}`);
  session.records = session.records.filter((r) => r.id !== record.id);
}

// Only these are shown in the page; everything else is offered as a download.
const INLINE = new Set(['application/pdf', 'image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp']);

export function inlineKind(type) {
  if (type === 'application/pdf') return 'pdf';
  return INLINE.has(type) ? 'image' : null;
}

function safeType(type) {
  return typeof type === 'string' && /^[\w.+-]+\/[\w.+-]+$/.test(type) ? type : 'application/octet-stream';
}
