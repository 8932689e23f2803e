// SMART Health Link files (protocol §9; mirrors hygieia/crypto/_jwe.py): compact JWE,
// alg "dir", enc "A256GCM", through the `jose` package. Written: {alg, enc, cty}, never
// compressed. Read: what other SHL implementations write too (no cty, a kid, other
// header members); any other alg/enc, a bad tag or a malformed string is the one
// opaque DecryptionError. `zip` is refused here (jose 6 inflates only with a callback,
// and a deflate bomb would run in the page): such links open with `hygieia link open`.
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';
import { DecryptionError } from './errors.js';

export const LINK_KEY_SIZE = 32;

export function newLinkKey() {
  return crypto.getRandomValues(new Uint8Array(LINK_KEY_SIZE));
}

function checkKey(key) {
  if (!(key instanceof Uint8Array) || key.length !== LINK_KEY_SIZE) {
    throw new TypeError('a link key is 32 bytes');
  }
}

/** `plaintext` (Uint8Array) as a compact JWE under `key`; a fresh IV each time. */
export async function encryptLinkFile(plaintext, key, contentType) {
  checkKey(key);
  return new CompactEncrypt(plaintext)
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', cty: contentType })
    .encrypt(key);
}

/** {plaintext, cty} of a link file (cty null when its writer set none). */
export async function decryptLinkFile(jwe, key) {
  checkKey(key);
  let header;
  try {
    header = decodeProtectedHeader(jwe.trim());
  } catch (err) {
    throw new DecryptionError(undefined, { cause: err });
  }
  if (header.alg !== 'dir' || header.enc !== 'A256GCM' || 'zip' in header) {
    throw new DecryptionError();
  }
  try {
    const { plaintext, protectedHeader } = await compactDecrypt(jwe.trim(), key, {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    const cty = typeof protectedHeader.cty === 'string' ? protectedHeader.cty : null;
    return { plaintext, cty };
  } catch (err) {
    throw new DecryptionError(undefined, { cause: err });
  }
}
