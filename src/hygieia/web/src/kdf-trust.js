// Which KDF parameters and salt the page derives a password with (protocol §1; the
// browser side of hygieia.client.kdf_policy, security review finding 5).
//
// Prelogin and /me are the server's word. A server that could lower the parameters, or
// pick the salt, would get an auth_key it can brute-force offline. So the page refuses
// parameters outside the accepted bounds, a salt that is not 16 bytes, anything weaker
// than DEFAULT_KDF, and, per account, anything weaker than at the last login in this
// browser, or another salt unless the user confirms it (salts never change; an account
// re-created under the same email gets a new one). The memory is localStorage, keyed by
// a SHA-256 of the email; it holds nothing secret.
import * as c from './crypto/index.js';

const PREFIX = 'hygieia.kdf.v1.';

export class KdfRefusedError extends Error {
  /** `reason`: 'unsupported' | 'weak' | 'downgrade' | 'salt-changed'. */
  constructor(reason, message) {
    super(message);
    this.name = 'KdfRefusedError';
    this.reason = reason;
  }
}

function atLeast(kdf, floor) {
  return kdf.m >= floor.m && kdf.t >= floor.t;
}

async function keyFor(email) {
  const digest = await crypto.subtle.digest('SHA-256', c.utf8(email.trim().toLowerCase()));
  return PREFIX + c.toHex(new Uint8Array(digest));
}

async function recall(email) {
  let raw;
  try {
    raw = localStorage.getItem(await keyFor(email));
  } catch {
    return null; // storage switched off: nothing was ever remembered here
  }
  if (raw === null) return null;
  try {
    const entry = JSON.parse(raw);
    return { kdf: c.checkKdf(entry.kdf), salt: entry.salt };
  } catch {
    throw new KdfRefusedError(
      'unsupported',
      'The key-derivation settings remembered for this account are damaged.',
    );
  }
}

/**
 * Check what the server asks `email`'s password to be derived with; returns
 * {kdf, salt: Uint8Array} or throws KdfRefusedError before anything is derived.
 */
export async function vetKdf(email, kdf, saltB64, { acceptNewSalt = false } = {}) {
  const salt = vetBounds(kdf, saltB64);
  const known = await recall(email);
  if (known) {
    if (!atLeast(kdf, known.kdf)) {
      throw new KdfRefusedError(
        'downgrade',
        'The server asks for weaker password protection than this account used in this browser before. Nothing derived from your password was sent.',
      );
    }
    if (known.salt !== saltB64 && !acceptNewSalt) {
      throw new KdfRefusedError(
        'salt-changed',
        'This account’s key-derivation salt changed since your last login here. Salts never change: either the account was deleted and created again (then confirm below), or the server is trying to weaken your password’s protection. Nothing was sent.',
      );
    }
  }
  return { kdf, salt };
}

/**
 * A recovery kit's `kdf` and `salt` (protocol §6, "Which KDF checks apply to a kit"):
 * the bounds and the floor, not what earlier logins here used. Those stop a server
 * from harvesting a cheap auth_key; unlocking a kit sends nothing anywhere, and a kit
 * is trusted only once its wrapped vault key unwraps with the password.
 */
export function vetKitKdf(kdf, saltB64) {
  return { kdf, salt: vetBounds(kdf, saltB64) };
}

/** Bounds, salt length and the floor; the salt's bytes, or KdfRefusedError. */
function vetBounds(kdf, saltB64) {
  let salt;
  try {
    c.checkKdf(kdf);
    salt = c.fromB64(saltB64);
  } catch {
    throw new KdfRefusedError(
      'unsupported',
      'The server asks for key-derivation settings this app does not support. Nothing was sent.',
    );
  }
  if (salt.length !== c.SALT_BYTES) {
    throw new KdfRefusedError(
      'unsupported',
      `The server sent a ${salt.length}-byte salt (accounts have ${c.SALT_BYTES}). Nothing was sent.`,
    );
  }
  if (!atLeast(kdf, c.DEFAULT_KDF)) {
    throw new KdfRefusedError(
      'weak',
      'The server asks for weaker password protection than this app accepts. Nothing derived from your password was sent.',
    );
  }
  return salt;
}

/** Remember what a successful login, sign-up or password change used for `email`. */
export async function rememberKdf(email, kdf, saltB64) {
  try {
    localStorage.setItem(
      await keyFor(email),
      JSON.stringify({ kdf: c.checkKdf(kdf), salt: saltB64 }),
    );
  } catch {
    /* storage switched off: the floor still holds */
  }
}

/** The account was deleted: a new one under the same email will have its own salt. */
export async function forgetKdf(email) {
  try {
    localStorage.removeItem(await keyFor(email));
  } catch {
    /* storage switched off: nothing was remembered */
  }
}
