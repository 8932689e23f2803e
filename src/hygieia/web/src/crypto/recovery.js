// Recovery code, protocol §1 "Recovery code": 20 random bytes as grouped base32.
import { randomBytes } from './bytes.js';
import { hkdf } from './kdf.js';

export const RECOVERY_CODE_BYTES = 20;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes) {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** "ABCD-EFGH-…" (8 groups of 4). */
export function formatRecoveryCode(bytes) {
  if (bytes.length !== RECOVERY_CODE_BYTES) throw new RangeError('recovery code must be 20 bytes');
  return base32(bytes).match(/.{4}/g).join('-');
}

export function newRecoveryCode() {
  const bytes = randomBytes(RECOVERY_CODE_BYTES);
  return { bytes, code: formatRecoveryCode(bytes) };
}

/** Drop '-' and whitespace, upper-case, decode; throws RangeError when malformed. */
export function parseRecoveryCode(text) {
  const s = String(text).replace(/[-\s]/g, '').toUpperCase();
  if (s.length !== 32 || /[^A-Z2-7]/.test(s)) throw new RangeError('not a recovery code');
  const out = new Uint8Array(RECOVERY_CODE_BYTES);
  let bits = 0;
  let value = 0;
  let i = 0;
  for (const ch of s) {
    value = ((value << 5) | ALPHABET.indexOf(ch)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[i++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}

/** recovery_wrap and recovery_auth from the code bytes and the account's recovery_salt. */
export async function deriveRecoveryKeys(codeBytes, recoverySalt) {
  const [recoveryWrap, recoveryAuth] = await Promise.all([
    hkdf(codeBytes, 'hygieia/recovery-wrap', { salt: recoverySalt }),
    hkdf(codeBytes, 'hygieia/recovery-auth', { salt: recoverySalt }),
  ]);
  return { recoveryWrap, recoveryAuth };
}
