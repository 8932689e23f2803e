// Record sealing and opening, protocol §3: segments under one session key, the
// owner's PKESK, sealed metadata and the session-key envelope.
import {
  createMessage,
  decrypt,
  decryptSessionKeys,
  encrypt,
  encryptSessionKey,
  readMessage,
} from 'openpgp';
import { concat, fromB64, fromUtf8, toB64, u32be, utf8 } from './bytes.js';
import { DecryptionError } from './errors.js';
import { PGP_CONFIG } from './pgp.js';

export const SEGMENT_SIZE = 4 * 1024 * 1024;
export const SEGMENT_HEADER_BYTES = 16;
// Bytes a segment packet's body may have beyond its chunk (SEIPD prefix and MDC,
// one-pass and literal headers, the 16-byte segment header, a signature):
// hygieia.crypto's MAX_SEGMENT_OVERHEAD, which the server enforces on upload too.
export const MAX_SEGMENT_OVERHEAD = 4096;
const MAGIC = utf8('HYGSEG01');
const SEIPD_TAG = 18;
const SESSION_KEY = (data) => ({ data, algorithm: 'aes256' });

export function newSessionKey() {
  const key = new Uint8Array(32);
  crypto.getRandomValues(key);
  return key;
}

/** Number of segments for `size` plaintext bytes; an empty file is one empty segment. */
export function segmentCount(size, segmentSize = SEGMENT_SIZE) {
  return size === 0 ? 1 : Math.ceil(size / segmentSize);
}

// ---- OpenPGP packet framing ------------------------------------------------------

/**
 * Parse the header of the packet at `bytes[pos]`. Returns {tag, bodyParts, end}:
 * the body as a list of [start, end) ranges (several when partial lengths are used).
 */
function readPacket(bytes, pos) {
  const first = bytes[pos];
  if (first === undefined || !(first & 0x80)) throw new DecryptionError('bad packet header');
  const parts = [];
  let tag;
  let p = pos + 1;
  if (first & 0x40) {
    tag = first & 0x3f;
    for (;;) {
      const b = bytes[p];
      if (b === undefined) throw new DecryptionError('truncated packet');
      let len;
      let partial = false;
      if (b < 192) {
        len = b;
        p += 1;
      } else if (b < 224) {
        len = ((b - 192) << 8) + bytes[p + 1] + 192;
        p += 2;
      } else if (b < 255) {
        len = 1 << (b & 0x1f);
        partial = true;
        p += 1;
      } else {
        len = new DataView(bytes.buffer, bytes.byteOffset + p + 1, 4).getUint32(0, false);
        p += 5;
      }
      if (p + len > bytes.length) throw new DecryptionError('truncated packet');
      parts.push([p, p + len]);
      p += len;
      if (!partial) break;
    }
  } else {
    // Old-format header (never written by us; accepted when reading).
    tag = (first >> 2) & 0x0f;
    const lt = first & 3;
    if (lt === 3) throw new DecryptionError('indeterminate length');
    const n = 1 << lt;
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[p + i];
    p += n;
    if (p + len > bytes.length) throw new DecryptionError('truncated packet');
    parts.push([p, p + len]);
    p += len;
  }
  return { tag, parts, end: p };
}

/** Rewrite a lone SEIPD packet with a fixed 5-byte new-format length header. */
export function fixedLengthSeipd(bytes) {
  const { tag, parts, end } = readPacket(bytes, 0);
  if (tag !== SEIPD_TAG || end !== bytes.length) throw new Error('expected one SEIPD packet');
  const body = concat(...parts.map(([s, e]) => bytes.subarray(s, e)));
  const header = new Uint8Array(6);
  header[0] = 0xc0 | SEIPD_TAG;
  header[1] = 0xff;
  new DataView(header.buffer).setUint32(2, body.length, false);
  return concat(header, body);
}

/**
 * Cut a record's ciphertext (an async iterable of byte chunks) into its segment
 * packets, each with its fixed 6-byte header, holding at most one segment in memory.
 * Network chunks are collected and joined once per segment (not re-copied per chunk).
 */
export async function* splitSegments(
  chunks,
  { maxPacket = SEGMENT_SIZE + MAX_SEGMENT_OVERHEAD } = {},
) {
  let pending = []; // chunks not yet consumed, in order
  let have = 0; // bytes in `pending`
  const take = (n) => {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const head = pending[0];
      const k = Math.min(head.length, n - off);
      out.set(head.subarray(0, k), off);
      off += k;
      if (k === head.length) pending.shift();
      else pending[0] = head.subarray(k);
    }
    have -= n;
    return out;
  };
  const peek = (n) => {
    const out = new Uint8Array(n);
    let off = 0;
    for (const part of pending) {
      const k = Math.min(part.length, n - off);
      out.set(part.subarray(0, k), off);
      off += k;
      if (off === n) break;
    }
    return out;
  };
  let want = null; // total bytes of the current packet once its header is known
  for await (const chunk of chunks) {
    if (chunk.length) {
      pending.push(chunk);
      have += chunk.length;
    }
    for (;;) {
      if (want === null) {
        if (have < 6) break;
        const head = peek(6);
        if (head[0] !== (0xc0 | SEIPD_TAG) || head[1] !== 0xff) {
          throw new DecryptionError('segment without a fixed-length SEIPD header');
        }
        const body = new DataView(head.buffer).getUint32(2, false);
        // Refused from its header, before the oversized packet is buffered.
        if (body > maxPacket) throw new DecryptionError('segment larger than allowed');
        want = 6 + body;
      }
      if (have < want) break;
      yield take(want);
      want = null;
    }
  }
  if (have !== 0) throw new DecryptionError('truncated record');
  pending = [];
}

// ---- segments --------------------------------------------------------------------

function segmentHeader(index, count) {
  return concat(MAGIC, u32be(index), u32be(count));
}

/** Seal segment `index` of `count`: a signed SEIPDv1 packet under the session key. */
export async function sealSegment({ index, count, chunk, sessionKey, signingKey, date }) {
  const message = await createMessage({
    binary: concat(segmentHeader(index, count), chunk),
    filename: '',
    date: new Date(0),
    format: 'binary',
  });
  const out = await encrypt({
    message,
    signingKeys: signingKey,
    sessionKey: SESSION_KEY(sessionKey),
    format: 'binary',
    date,
    config: PGP_CONFIG,
  });
  return fixedLengthSeipd(out);
}

/**
 * Open one segment, check its signature, index, count and size; return the chunk.
 * Every segment but the last holds exactly `segmentSize` bytes, the last at most
 * that (protocol §3); a compressed packet inside is refused unread (PGP_CONFIG).
 */
export async function openSegment({
  bytes,
  index,
  count,
  sessionKey,
  verificationKeys,
  segmentSize = SEGMENT_SIZE,
}) {
  // The plaintext can't be longer than the packet now that nothing is inflated.
  if (bytes.length > 6 + segmentSize + MAX_SEGMENT_OVERHEAD) {
    throw new DecryptionError('segment larger than allowed');
  }
  let data;
  try {
    const message = await readMessage({ binaryMessage: bytes, config: PGP_CONFIG });
    ({ data } = await decrypt({
      message,
      sessionKeys: SESSION_KEY(sessionKey),
      verificationKeys,
      expectSigned: true,
      format: 'binary',
      config: PGP_CONFIG,
    }));
  } catch (err) {
    throw new DecryptionError(undefined, { cause: err });
  }
  const head = data.subarray(0, SEGMENT_HEADER_BYTES);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (
    head.length !== SEGMENT_HEADER_BYTES ||
    fromUtf8(head.subarray(0, 8)) !== 'HYGSEG01' ||
    view.getUint32(8, false) !== index ||
    view.getUint32(12, false) !== count
  ) {
    throw new DecryptionError('segment out of place');
  }
  const size = data.length - SEGMENT_HEADER_BYTES;
  const last = index === count - 1;
  if (size > segmentSize || (!last && size !== segmentSize) || (size === 0 && index > 0)) {
    throw new DecryptionError('segment of the wrong size');
  }
  return data.subarray(SEGMENT_HEADER_BYTES);
}

/**
 * Seal a Blob/File segment by segment. Yields {index, count, bytes, chunk, plainBytes};
 * `chunk` is the plaintext just sealed (for hashing the same bytes). Only
 * one segment's plaintext and ciphertext are held at a time.
 */
export async function* sealBlob(blob, { sessionKey, signingKey, segmentSize = SEGMENT_SIZE }) {
  const count = segmentCount(blob.size, segmentSize);
  for (let index = 0; index < count; index++) {
    const start = index * segmentSize;
    const chunk = new Uint8Array(await blob.slice(start, start + segmentSize).arrayBuffer());
    const bytes = await sealSegment({ index, count, chunk, sessionKey, signingKey });
    yield { index, count, bytes, chunk, plainBytes: chunk.length };
  }
}

// ---- keys and small sealed messages ---------------------------------------------

/** A v3 PKESK of the session key for the reader's encryption subkey (binary). */
export async function wrapSessionKey(sessionKey, publicKey) {
  return encryptSessionKey({
    ...SESSION_KEY(sessionKey),
    encryptionKeys: publicKey,
    format: 'binary',
    config: PGP_CONFIG,
  });
}

/** The session key from a reader's PKESK (binary) with their unlocked key. */
export async function unwrapSessionKey(pkesk, privateKey) {
  try {
    const message = await readMessage({ binaryMessage: pkesk, config: PGP_CONFIG });
    const [key] = await decryptSessionKeys({
      message,
      decryptionKeys: privateKey,
      config: PGP_CONFIG,
    });
    if (key.algorithm !== 'aes256' || key.data.length !== 32) throw new Error('not an AES-256 key');
    return key.data;
  } catch (err) {
    throw new DecryptionError(undefined, { cause: err });
  }
}

/** A signed, encrypted OpenPGP message whose literal data is UTF-8 JSON. */
export async function sealJson(value, { encryptionKeys, signingKeys }) {
  const message = await createMessage({ binary: utf8(JSON.stringify(value)), format: 'binary' });
  return encrypt({ message, encryptionKeys, signingKeys, format: 'binary', config: PGP_CONFIG });
}

export async function openJson(bytes, { decryptionKeys, verificationKeys }) {
  try {
    const message = await readMessage({ binaryMessage: bytes, config: PGP_CONFIG });
    const { data } = await decrypt({
      message,
      decryptionKeys,
      verificationKeys,
      expectSigned: true,
      format: 'binary',
      config: PGP_CONFIG,
    });
    return JSON.parse(fromUtf8(data));
  } catch (err) {
    throw new DecryptionError(undefined, { cause: err });
  }
}

// ---- record metadata, bound to the record id (protocol §3, "Binding") -------------

export const METADATA_VERSION = 2;
export const LEGACY_METADATA_VERSION = 1; // no id: opens, shown as unbound
const RECORD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The server sent another record's metadata for the one asked for. */
export class RecordMismatchError extends DecryptionError {
  constructor(expected, found) {
    const whose = found ? `record ${found}’s` : 'another record’s';
    super(
      `the server sent ${whose} sealed metadata for record ${expected} (records swapped, moved or resurrected)`,
    );
    this.expected = expected;
    this.found = found;
  }
}

/** A fresh record id, chosen by the client before it seals anything: a lowercase UUIDv4. */
export function newRecordId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function isRecordId(value) {
  return typeof value === 'string' && RECORD_ID.test(value);
}

const META_KEYS = [
  'title',
  'type',
  'date',
  'provider',
  'tags',
  'filename',
  'media_type',
  'size',
  'sha256',
  'cid',
  'segments',
  'segment_size',
];

/** Version-2 metadata of record `id` (the order of keys as hygieia.client writes them). */
export function recordMetadata(fields, id) {
  if (!isRecordId(id)) throw new TypeError('record id must be a lowercase UUIDv4');
  const meta = { v: METADATA_VERSION, id };
  for (const k of META_KEYS) meta[k] = fields[k] ?? (k === 'tags' ? [] : null);
  return meta;
}

export async function sealMetadata(fields, { recordId, publicKey, signingKey }) {
  return sealJson(recordMetadata(fields, recordId), {
    encryptionKeys: publicKey,
    signingKeys: signingKey,
  });
}

/**
 * Open, verify and check the metadata of the record asked for as `recordId`
 * (hygieia.crypto.open_record_metadata): version 2 must name that id, or
 * RecordMismatchError; version 1 (legacy, no id) is returned for the caller to flag
 * as unbound (metadataIsBound); anything else is a DecryptionError.
 */
export async function openMetadata(bytes, { recordId, privateKey, verificationKeys }) {
  const meta = await openJson(bytes, { decryptionKeys: privateKey, verificationKeys });
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
    throw new DecryptionError('record metadata is not a JSON object');
  }
  if (meta.v === LEGACY_METADATA_VERSION && !('id' in meta)) return meta;
  if (meta.v !== METADATA_VERSION) throw new DecryptionError('unknown record metadata version');
  if (typeof meta.id !== 'string') throw new DecryptionError('record metadata names no record');
  if (meta.id !== recordId) {
    throw new RecordMismatchError(recordId, isRecordId(meta.id) ? meta.id : null);
  }
  return meta;
}

/** False for legacy metadata, which doesn't name its record: show it as unbound. */
export function metadataIsBound(meta) {
  return meta?.v === METADATA_VERSION;
}

/** The owner's session-key envelope: {"v":1,"alg":"aes256","key":"<base64>"} sealed. */
export async function sealEnvelope(sessionKey, { publicKey, signingKey }) {
  return sealJson(
    { v: 1, alg: 'aes256', key: toB64(sessionKey) },
    { encryptionKeys: publicKey, signingKeys: signingKey },
  );
}

export async function openEnvelope(bytes, { privateKey, verificationKeys }) {
  const env = await openJson(bytes, { decryptionKeys: privateKey, verificationKeys });
  if (env?.v !== 1 || env.alg !== 'aes256') throw new DecryptionError('unknown envelope');
  const key = fromB64(env.key);
  if (key.length !== 32) throw new DecryptionError('bad session key');
  return key;
}
