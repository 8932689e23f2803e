// The account's OpenPGP identity, protocol §2: generate, unlock, export.
import { decryptKey, encryptKey, generateKey, readKey, readPrivateKey } from 'openpgp';
import { DecryptionError } from './errors.js';
import { EXPORT_CONFIG, PGP_CONFIG } from './pgp.js';
import { vaultPassphrase } from './vault.js';

/**
 * Ed25519 (legacy) primary + X25519 (legacy) subkey, v4, locked with the vault key.
 * Returns the armored public and locked secret key and the primary fingerprint.
 */
export async function generateIdentity({ email, vaultKey, date = new Date() }) {
  const { privateKey, publicKey } = await generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ email }],
    passphrase: vaultPassphrase(vaultKey),
    date,
    format: 'armored',
    config: PGP_CONFIG,
  });
  const key = await readKey({ armoredKey: publicKey });
  return {
    publicKey,
    lockedSecretKey: privateKey,
    fingerprint: key.getFingerprint().toUpperCase(),
    encryptionKeyId: (await key.getEncryptionKey()).getKeyID().toHex().toUpperCase(),
  };
}

export async function readPublicKey(armored) {
  return readKey({ armoredKey: armored, config: PGP_CONFIG });
}

/** The unlocked private key (kept in memory only); DecryptionError on a wrong vault key. */
export async function unlockIdentity(lockedSecretKey, vaultKey) {
  try {
    const locked = await readPrivateKey({ armoredKey: lockedSecretKey, config: PGP_CONFIG });
    return await decryptKey({
      privateKey: locked,
      passphrase: vaultPassphrase(vaultKey),
      config: PGP_CONFIG,
    });
  } catch (err) {
    throw new DecryptionError('could not unlock the key', { cause: err });
  }
}

/** A gpg-importable armored secret key locked with `passphrase` (iterated S2K, count 255). */
export async function exportSecretKey(unlockedKey, passphrase) {
  if (!passphrase) throw new RangeError('an export passphrase is required');
  const locked = await encryptKey({ privateKey: unlockedKey, passphrase, config: EXPORT_CONFIG });
  return locked.armor(EXPORT_CONFIG);
}
