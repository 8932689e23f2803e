// The browser's crypto recipes (mirrors hygieia.crypto). Callers use these, never
// OpenPGP.js, hash-wasm or WebCrypto directly.
export * from './bytes.js';
export * from './cid.js';
export * from './errors.js';
export * from './identity.js';
export * from './kdf.js';
export * from './recovery.js';
export * from './records.js';
export * from './vault.js';
export { PGP_CONFIG } from './pgp.js';
export * from './jwe.js';
