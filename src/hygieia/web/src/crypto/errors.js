/**
 * The one error for anything that fails to decrypt, unwrap or verify: the caller
 * learns that opening failed, never why (wrong key, tampering, truncation…).
 */
export class DecryptionError extends Error {
  constructor(message = 'could not decrypt or verify', options) {
    super(message, options);
    this.name = 'DecryptionError';
  }
}
