// Password → keys, protocol §1: NFKC, Argon2id (hash-wasm), HKDF-SHA256 (WebCrypto).
import { argon2id } from 'hash-wasm';
import { randomBytes, utf8 } from './bytes.js';

export const DEFAULT_KDF = Object.freeze({ alg: 'argon2id', v: 19, m: 47104, t: 8, p: 1 });
export const SALT_BYTES = 16;

// Bounds accepted from the wire (the same as hygieia.crypto's KdfParams): low enough
// to refuse a downgrade to something trivially brute-forced, high enough that a
// hostile server can't make the page allocate absurd memory or spin for minutes.
const BOUNDS = { m: [8192, 1048576], t: [1, 10], p: [1, 4] };

export function checkKdf(kdf) {
  const ok =
    kdf !== null &&
    typeof kdf === 'object' &&
    kdf.alg === 'argon2id' &&
    kdf.v === 19 &&
    Object.entries(BOUNDS).every(
      ([k, [lo, hi]]) => Number.isInteger(kdf[k]) && kdf[k] >= lo && kdf[k] <= hi,
    );
  if (!ok) throw new RangeError('unsupported KDF parameters');
  return kdf;
}

export function newSalt() {
  return randomBytes(SALT_BYTES);
}

export function normalizePassword(password) {
  return utf8(password.normalize('NFKC'));
}

/** master = Argon2id(NFKC(password), salt, kdf), 32 bytes. */
export async function deriveMaster(password, salt, kdf = DEFAULT_KDF) {
  checkKdf(kdf);
  const pw = normalizePassword(password);
  // hash-wasm refuses an empty password; no form lets one through, so say so plainly.
  if (pw.length === 0) throw new RangeError('empty password');
  return argon2id({
    password: pw,
    salt,
    parallelism: kdf.p,
    iterations: kdf.t,
    memorySize: kdf.m,
    hashLength: 32,
    outputType: 'binary',
  });
}

/** HKDF-SHA256(ikm, salt, info) → `length` bytes. */
export async function hkdf(ikm, info, { salt = new Uint8Array(0), length = 32 } = {}) {
  const key = await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt, info: utf8(info) },
    key,
    length * 8,
  );
  return new Uint8Array(bits);
}

/** The two keys a password gives: auth_key (sent to the server) and wrap_key (never). */
export async function deriveKeys(password, salt, kdf = DEFAULT_KDF) {
  const master = await deriveMaster(password, salt, kdf);
  try {
    const [authKey, wrapKey] = await Promise.all([
      hkdf(master, 'hygieia/auth'),
      hkdf(master, 'hygieia/wrap'),
    ]);
    return { authKey, wrapKey };
  } finally {
    master.fill(0);
  }
}
