// The vault key and its wraps, protocol §1 "Vault key".
import { concat, randomBytes, toHex, utf8 } from './bytes.js';
import { DecryptionError } from './errors.js';

export const VAULT_KEY_BYTES = 32;
const VERSION = 0x01;
const NONCE_BYTES = 12;
const AAD = utf8('hygieia/vault-key/v1');
export const WRAPPED_BYTES = 1 + NONCE_BYTES + VAULT_KEY_BYTES + 16;

export function newVaultKey() {
  return randomBytes(VAULT_KEY_BYTES);
}

/** The OpenPGP passphrase for the locked identity key: 64 lowercase hex characters. */
export function vaultPassphrase(vaultKey) {
  return toHex(vaultKey);
}

async function aesKey(key, usage) {
  if (key.length !== 32) throw new RangeError('wrapping key must be 32 bytes');
  return crypto.subtle.importKey('raw', key, 'AES-GCM', false, [usage]);
}

/** 0x01 || nonce(12) || AES-256-GCM(key, nonce, vaultKey, aad) — 61 bytes. */
export async function wrapVaultKey(vaultKey, key, { nonce = randomBytes(NONCE_BYTES) } = {}) {
  if (vaultKey.length !== VAULT_KEY_BYTES) throw new RangeError('vault key must be 32 bytes');
  const ct = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: AAD },
    await aesKey(key, 'encrypt'),
    vaultKey,
  );
  return concat(Uint8Array.of(VERSION), nonce, new Uint8Array(ct));
}

export async function unwrapVaultKey(wrapped, key) {
  if (
    !(wrapped instanceof Uint8Array) ||
    wrapped.length !== WRAPPED_BYTES ||
    wrapped[0] !== VERSION
  ) {
    throw new DecryptionError();
  }
  try {
    const pt = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: wrapped.subarray(1, 1 + NONCE_BYTES), additionalData: AAD },
      await aesKey(key, 'decrypt'),
      wrapped.subarray(1 + NONCE_BYTES),
    );
    return new Uint8Array(pt);
  } catch (err) {
    throw new DecryptionError(undefined, { cause: err });
  }
}
