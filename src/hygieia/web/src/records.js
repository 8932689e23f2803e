// Record flows (protocol §3, §5): seal and upload, list with decrypted metadata,
// download and open segment by segment, delete. Only ciphertext leaves the page.
//
// The checks mirror hygieia.client.records: metadata must carry the owner's own
// signature and name the record it is listed under (else RecordMismatchError; legacy
// metadata without an id opens, flagged `bound: false`); content opens with the owner
// PKESK (never the envelope); the downloaded ciphertext's CID must equal both the
// sealed and the server's CID; the plaintext SHA-256 and size must equal the sealed
// ones. Nothing is handed over (no view, no download) unless every check passed.
//
// Offline (session.offline), the list comes from the kept recovery kit and content
// from the IPFS gateway the user set, block by block verified (gateway.js); the same
// checks then apply, with the kit's own key as the signer.
import { createSHA256 } from 'hash-wasm';
import * as c from './crypto/index.js';
import { getGateway, verifiedContent } from './gateway.js';
import { buildKit, storeKit } from './kit.js';
import { scratchFile } from './scratch.js';
import { session } from './session.js';

const PAGE = 200; // the server's maximum page size

export class RecordCheckError extends c.DecryptionError {}

/**
 * The verified metadata of `item` (a record listed, fetched or shared), opened for its
 * id and signed by `signer` (the owner's key: ours unless it was shared with us).
 */
export async function openMeta(item, { signer = session.publicKey } = {}) {
  // Our own record during a key rotation may be sealed to, and signed by, the pending key.
  const own = signer === session.publicKey && session.pendingKey;
  const meta = await c.openMetadata(c.fromB64(item.sealed_metadata), {
    recordId: item.id,
    privateKey: ownKeys(),
    verificationKeys: own ? [signer, session.pendingKey.toPublic()] : signer,
  });
  // The sealed metadata must describe this very ciphertext.
  if (!c.sameCid(meta.cid, item.cid) || meta.segments !== item.segments) {
    throw new RecordCheckError('the server’s record differs from its sealed metadata');
  }
  return meta;
}

/** Our decryption keys: the account's, and during a key rotation the pending one's. */
export function ownKeys() {
  return session.pendingKey ? [session.privateKey, session.pendingKey] : session.privateKey;
}

/**
 * A listed record's {meta, bound, refused}. Metadata that does not open is null, and
 * the record shown as unreadable rather than hidden; one refused as another record's
 * keeps the reason (`refused`), for the list to say so.
 */
async function openListed(item) {
  try {
    const meta = await openMeta(item);
    return { meta, bound: c.metadataIsBound(meta), refused: null };
  } catch (err) {
    return {
      meta: null,
      bound: false,
      refused: err instanceof c.RecordMismatchError ? err.message : null,
    };
  }
}

/**
 * Keep the latest recovery kit of the account in this browser. A kit that can't be
 * kept (storage switched off or full) leaves the listing as it is.
 */
async function keepKit(records) {
  try {
    await storeKit(buildKit({ account: session.account, records, server: location.origin }));
  } catch {
    /* the offline mode then opens an older kit, or none */
  }
}

/**
 * Every record of ours (all pages), with its metadata decrypted and verified; the
 * kit kept here is brought up to date with it. Offline: the records of the kit.
 */
export async function loadRecords(api) {
  if (session.offline) {
    const out = [];
    for (const item of session.kit.records) out.push({ ...item, ...(await openListed(item)) });
    session.records = out;
    return out;
  }
  const out = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) q.set('cursor', cursor);
    const page = await api.json('GET', `/records?${q}`);
    for (const item of page.items) out.push({ ...item, ...(await openListed(item)) });
    cursor = page.next_cursor;
  } while (cursor);
  session.records = out;
  await keepKit(out);
  return out;
}

/** Metadata as the CLI writes it (hygieia.client.records.build_metadata). */
function metadataFor(file, fields, { id, sha256, cid, segments, keep }) {
  // A re-sealed record (rotation) keeps every field of the old one but what is new.
  if (keep) return c.recordMetadata({ ...keep, sha256, cid, segments }, id);
  const tags = [...new Set((fields.tags ?? []).map((t) => t.trim()).filter(Boolean))].sort();
  return c.recordMetadata(
    {
      title: fields.title || file.name,
      type: fields.type || 'document',
      date: fields.date || null,
      provider: fields.provider || null,
      tags,
      filename: file.name || null,
      media_type: file.type || 'application/octet-stream',
      size: file.size,
      sha256,
      cid,
      segments,
      segment_size: c.SEGMENT_SIZE,
    },
    id,
  );
}

/**
 * Seal `file` with `fields` (title, type, date, provider, tags) and upload it.
 * onProgress(phase, fraction) with phase 'encrypt' | 'upload'. The ciphertext goes to
 * a scratch file first: its CID has to be known before the first byte is sent.
 * Rotation passes the new record's `id` and the old metadata to `keep`.
 */
export async function uploadRecord(
  api,
  file,
  fields,
  { onProgress = () => {}, signal, id = c.newRecordId(), keep = null } = {},
) {
  if (fields.date && !/^\d{4}-\d{2}-\d{2}$/.test(fields.date)) throw new TypeError('bad date');
  const signingKey = session.privateKey;
  const publicKey = session.publicKey;
  // `id` is sealed into the metadata and sent with the upload.
  const sessionKey = c.newSessionKey();
  const sha = await createSHA256();
  const sink = await scratchFile('up');
  const count = c.segmentCount(file.size);
  let cipherBytes = 0;
  try {
    async function* sealed() {
      for await (const seg of c.sealBlob(file, { sessionKey, signingKey })) {
        if (signal?.aborted) throw new DOMException('upload cancelled', 'AbortError');
        sha.update(seg.chunk); // the digest covers exactly the bytes that were sealed
        await sink.write(seg.bytes);
        cipherBytes += seg.bytes.length;
        onProgress('encrypt', (seg.index + 1) / count);
        yield seg.bytes;
      }
    }
    const cid = await c.contentCid(sealed());
    const content = await sink.close();
    if (content.size !== cipherBytes) throw new Error('scratch file is incomplete');
    const sha256 = sha.digest('hex');
    if (keep && (sha256 !== keep.sha256 || file.size !== keep.size)) {
      throw new RecordCheckError('the re-sealed content differs from the record');
    }
    const meta = metadataFor(file, fields, { id, sha256, cid, segments: count, keep });
    const form = new FormData();
    form.append(
      'meta',
      JSON.stringify({
        id,
        cid,
        size: cipherBytes,
        segments: count,
        pkesk: c.toB64(await c.wrapSessionKey(sessionKey, publicKey)),
        sealed_metadata: c.toB64(
          await c.sealJson(meta, { encryptionKeys: publicKey, signingKeys: signingKey }),
        ),
        envelope: c.toB64(await c.sealEnvelope(sessionKey, { publicKey, signingKey })),
      }),
    );
    // The content part is named by the CID: the original file name is never sent.
    form.append('content', new Blob([content], { type: 'application/octet-stream' }), cid);
    const record = await api.upload('POST', '/records', form, {
      signal,
      onProgress: (loaded, total) => onProgress('upload', loaded / total),
    });
    if (record.id !== id || !c.sameCid(record.cid, cid)) {
      throw new RecordCheckError('the server stored the record under another id or CID');
    }
    return { ...record, meta, bound: true, refused: null };
  } finally {
    c.wipe(sessionKey);
    await sink.remove();
  }
}

/** The response body, chunk by chunk; cancelled if not read to its end. */
export async function* responseChunks(res) {
  const reader = res.body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      yield value;
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => {}); // stop a refused download
  }
}

/** `chunks` again, reporting the fraction of `total` bytes seen so far. */
async function* withProgress(chunks, { total, onProgress }) {
  let received = 0;
  for await (const chunk of chunks) {
    received += chunk.length;
    if (total) onProgress(Math.min(1, received / total));
    yield chunk;
  }
}

/**
 * Open the segments of `ciphertext` in order, each decrypted and its signature, index
 * and count checked, the plaintext hashed into `sha` and written to `sink`. Yields the
 * ciphertext again, for its CID; `tally` counts the segments and plaintext bytes.
 */
async function* openSegments(ciphertext, { meta, sessionKey, signer, sha, sink, tally }) {
  for await (const bytes of c.splitSegments(ciphertext)) {
    if (tally.segments >= meta.segments) throw new RecordCheckError('record has extra segments');
    const chunk = await c.openSegment({
      bytes,
      index: tally.segments,
      count: meta.segments,
      sessionKey,
      verificationKeys: signer,
    });
    sha.update(chunk);
    tally.plainBytes += chunk.length;
    await sink.write(chunk);
    tally.segments += 1;
    yield bytes;
  }
}

/**
/**
 * Decrypt the ciphertext `source` yields ({chunks, total, served}: see contentSource)
 * into `sink`, then check it against the sealed metadata: every segment there and
 * signed by `signer`, the CID equal to the sealed one, the listed one and the one the
 * server said it served, the plaintext's size and SHA-256 equal to the sealed ones.
 * `sink` may be null: the content is then only proven, not kept.
 */
export async function decryptContent(
  source,
  { record, meta, sessionKey, signer = session.publicKey, sink = null, onProgress = () => {} },
) {
  const sha = await createSHA256();
  const total = source.total || record.size || 0;
  const tally = { segments: 0, plainBytes: 0 };
  // After a key rotation the content (untouched) is still signed by the owner's earlier
  // key, which the verified metadata names (protocol "Key rotation").
  if (meta.content_signer !== undefined) {
    if (typeof meta.content_signer !== 'string' || meta.content_signer.length > 65536) {
      throw new RecordCheckError('record metadata names an invalid content signer');
    }
    try {
      signer = await c.readPublicKey(meta.content_signer);
    } catch (err) {
      throw new RecordCheckError('record metadata names an invalid content signer', {
        cause: err,
      });
    }
  }
  const ciphertext = withProgress(source.chunks, { total, onProgress });
  const out = sink ?? { write: async () => {} };
  const cid = await c.contentCid(
    openSegments(ciphertext, { meta, sessionKey, signer, sha, sink: out, tally }),
  );
  if (tally.segments !== meta.segments) throw new RecordCheckError('record is missing segments');
  const served = source.served;
  if (
    !c.sameCid(cid, meta.cid) ||
    !c.sameCid(cid, record.cid) ||
    (served && !c.sameCid(cid, served))
  ) {
    throw new RecordCheckError('content does not match its CID');
  }
  if (tally.plainBytes !== meta.size || sha.digest('hex') !== meta.sha256) {
    throw new RecordCheckError('content digest mismatch');
  }
}

/** A server response as a content source ({chunks, total, served}). */
export function serverSource(res) {
  return {
    chunks: responseChunks(res),
    total: Number(res.headers.get('Content-Length')),
    served: res.headers.get('X-Hygieia-CID'),
  };
}

/**
 * Where a record's ciphertext comes from: the server's `path`, or offline the gateway
 * (every block checked against its CID). {chunks, total, served}.
 */
async function contentSource(api, record, { path, signal }) {
  if (session.offline) {
    const chunks = verifiedContent(getGateway(), record.cid, { size: record.size, signal });
    return { chunks, total: record.size, served: null };
  }
  return serverSource(await api.raw('GET', path, { signal }));
}

/**
 * A failure to open: our own refusals, a cancel, HTTP and gateway errors as they are,
 * else opaque.
 */
export function openingError(err) {
  if (
    err instanceof c.DecryptionError ||
    ['AbortError', 'ApiError', 'GatewayError'].includes(err?.name)
  ) {
    return err;
  }
  return new c.DecryptionError(undefined, { cause: err });
}

/**
 * Download and open a record: every segment decrypted and verified, the content CID
 * and the plaintext SHA-256 checked. Returns {blob, release}: the verified plaintext
 * (disk-backed where possible) and a function that deletes it once it is no longer
 * shown or being saved.
 */
export async function openRecord(api, record, { onProgress = () => {}, signal } = {}) {
  const meta = await openMeta(record); // again: never trust a cached, unchecked value
  return openContent(api, record, meta, {
    path: `/records/${encodeURIComponent(record.id)}/content`,
    signer: session.publicKey,
    onProgress,
    signal,
  });
}

/** Download `path`, open it with our PKESK of `record`, check it against `meta`. */
export async function openContent(api, record, meta, { path, signer, onProgress, signal }) {
  const sessionKey = await c.unwrapSessionKey(c.fromB64(record.pkesk), ownKeys());
  try {
    const source = await contentSource(api, record, { path, signal });
    const sink = await scratchFile('get');
    try {
      await decryptContent(source, { record, meta, sessionKey, signer, sink, onProgress });
      const file = await sink.close();
      return { blob: new Blob([file], { type: safeType(meta.media_type) }), release: sink.remove };
    } catch (err) {
      await sink.remove();
      throw openingError(err);
    }
  } finally {
    c.wipe(sessionKey);
  }
}

export async function deleteRecord(api, record) {
  await api.json('DELETE', `/records/${encodeURIComponent(record.id)}`);
  session.records = session.records.filter((r) => r.id !== record.id);
}

// Only these are shown in the page; everything else is offered as a download.
const INLINE = new Set([
  'application/pdf',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/avif',
  'image/bmp',
]);

export function inlineKind(type) {
  if (type === 'application/pdf') return 'pdf';
  return INLINE.has(type) ? 'image' : null;
}

export function safeType(type) {
  return typeof type === 'string' && /^[\w.+-]+\/[\w.+-]+$/.test(type)
    ? type
    : 'application/octet-stream';
}
