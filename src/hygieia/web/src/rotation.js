// Key and recovery-code rotation in the page (protocol "Key rotation"), the browser
// side of hygieia.client.rotation.
//
// Rotate keys: a new OpenPGP identity locked with a new vault key is made here, the new
// vault key wrapped under the same password-derived key and the same recovery key as
// the current one, and stored on the server as the pending identity. Then record by
// record: the session key is proven against the content (sharing.ownedSessionKey), and
// the PKESK, the metadata (naming the old public key as `content_signer`: the content
// stays signed by it) and the envelope are sealed to the new key, the record's grants
// signed again by it, and the packets swapped on the server (optimistic check on the
// key the record is sealed to). The commit carries the emergency contacts' vault keys
// and the link labels sealed anew; the server refuses it while anything is left on the
// old key. Every step can be repeated, and the server says what is left: a rotation cut
// short (a closed tab) is resumed from Settings, here or on another device.
import * as c from './crypto/index.js';
import { ContactKeyRefused, spaced } from './contacts.js';
import { lookupContact } from './emergency.js';
import { vetKdf } from './kdf-trust.js';
import { lookupRecipient, ownedSessionKey, withContentSigner } from './sharing.js';
import { session } from './session.js';

const enc = encodeURIComponent;
const PURPOSE = 'hygieia/emergency-vault-key';
const GRANTS_PER_REQUEST = 100;

/** A rotation step the user can act on. */
export class RotationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'RotationError';
  }
}

/** The server's rotation state: {pending, remaining, record_ids, ...}. */
export function rotationState(api) {
  return api.json('GET', '/auth/keys/rotation');
}

/** authKey, wrapKey and the current vault key from the password (wrong: DecryptionError). */
async function passwordSecrets(password) {
  const account = session.account;
  const { kdf, salt } = await vetKdf(account.email, account.kdf, account.salt);
  const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
  try {
    const vaultKey = await c.unwrapVaultKey(c.fromB64(account.wrapped_vault_key), wrapKey);
    return { authKey, wrapKey, vaultKey };
  } catch (err) {
    c.wipe(authKey, wrapKey);
    throw new c.DecryptionError('wrong password', { cause: err });
  }
}

/** The pending identity, proven ours: its vault key unwraps with the password's key. */
async function pendingIdentity(pending, wrapKey) {
  let vaultKey;
  let privateKey;
  try {
    vaultKey = await c.unwrapVaultKey(c.fromB64(pending.wrapped_vault_key), wrapKey);
    privateKey = await c.unlockIdentity(pending.locked_secret_key, vaultKey);
  } catch (err) {
    throw new RotationError(
      'The key rotation under way does not open with this password: it was not made by you.',
      { cause: err },
    );
  }
  if (privateKey.getFingerprint().toUpperCase() !== pending.fingerprint.toUpperCase()) {
    throw new RotationError('The pending key is not the one the server names.');
  }
  return { vaultKey, privateKey, publicKey: privateKey.toPublic() };
}

/** A FactorProof, null, or a function making one (a passkey: asked once the password checked out). */
async function factorProof(factor) {
  return typeof factor === 'function' ? await factor() : factor;
}

async function start(api, { authKey, wrapKey, vaultKey }, recoveryCode, factor) {
  const account = session.account;
  let codeBytes;
  try {
    codeBytes = c.parseRecoveryCode(recoveryCode ?? '');
  } catch {
    throw new RotationError('Enter your current recovery code (8 groups of 4 characters).');
  }
  const { recoveryWrap, recoveryAuth } = await c.deriveRecoveryKeys(
    codeBytes,
    c.fromB64(account.recovery_salt),
  );
  c.wipe(codeBytes, recoveryAuth);
  try {
    const opened = await c.unwrapVaultKey(
      c.fromB64(account.recovery_wrapped_vault_key),
      recoveryWrap,
    );
    const same = opened.every((b, i) => b === vaultKey[i]);
    c.wipe(opened);
    if (!same) throw new Error('another vault key');
  } catch {
    c.wipe(recoveryWrap);
    throw new RotationError('That is not your account’s recovery code.');
  }
  const newVault = c.newVaultKey();
  try {
    const identity = await c.generateIdentity({ email: account.email, vaultKey: newVault });
    return await api.json('POST', '/auth/keys/rotation', {
      json: {
        auth_key: c.toB64(authKey),
        factor: await factorProof(factor),
        public_key: identity.publicKey,
        locked_secret_key: identity.lockedSecretKey,
        wrapped_vault_key: c.toB64(await c.wrapVaultKey(newVault, wrapKey)),
        recovery_wrapped_vault_key: c.toB64(await c.wrapVaultKey(newVault, recoveryWrap)),
      },
    });
  } finally {
    c.wipe(newVault, recoveryWrap);
  }
}

/** The record's metadata for the new key: the old public key named as content signer. */
async function sealedFor(item, meta, fresh) {
  const signer = meta.content_signer ?? session.publicKey.armor();
  if (c.metadataIsBound(meta)) {
    return c.sealJson(
      { ...c.recordMetadata(meta, item.id), content_signer: signer },
      { encryptionKeys: fresh.publicKey, signingKeys: fresh.privateKey },
    );
  }
  // A legacy (unbound) record stays unbound: nothing proves the id it is filed under.
  const legacy = { ...meta, content_signer: signer };
  return c.sealJson(legacy, { encryptionKeys: fresh.publicKey, signingKeys: fresh.privateKey });
}

async function regrant(api, recordId, meta, sessionKey, fresh) {
  const { items } = await api.json('GET', `/records/${enc(recordId)}/grants`);
  const bodies = [];
  const signer = meta.content_signer ?? session.publicKey.armor();
  for (const grant of items) {
    const found = await lookupRecipient(api, grant.email);
    if (found.fingerprint !== String(grant.fingerprint).toUpperCase()) {
      throw new ContactKeyRefused(
        `The key for ${grant.email} (${spaced(found.fingerprint)}) is not the one record ${recordId} was shared with.`,
      );
    }
    bodies.push({
      record_id: recordId,
      email: grant.email,
      pkesk: c.toB64(await c.wrapSessionKey(sessionKey, found.key)),
      sealed_metadata: c.toB64(
        await c.sealJson(
          withContentSigner(c.recordMetadata(meta, recordId), { content_signer: signer }),
          { encryptionKeys: found.key, signingKeys: fresh.privateKey },
        ),
      ),
    });
  }
  for (let i = 0; i < bodies.length; i += GRANTS_PER_REQUEST) {
    await api.json('POST', '/grants', {
      json: { grants: bodies.slice(i, i + GRANTS_PER_REQUEST) },
    });
  }
}

async function rekey(api, recordId, oldFingerprint, fresh) {
  const { item, meta, sessionKey } = await ownedSessionKey(api, recordId);
  try {
    await regrant(api, recordId, meta, sessionKey, fresh);
    const body = {
      expected_fingerprint: oldFingerprint,
      pkesk: c.toB64(await c.wrapSessionKey(sessionKey, fresh.publicKey)),
      sealed_metadata: c.toB64(await sealedFor(item, meta, fresh)),
      envelope: c.toB64(
        await c.sealEnvelope(sessionKey, {
          publicKey: fresh.publicKey,
          signingKey: fresh.privateKey,
        }),
      ),
    };
    try {
      await api.json('PUT', `/records/${enc(recordId)}/keys`, { json: body });
    } catch (err) {
      // Another device moved it meanwhile: it is on the new key either way.
      if (!(err?.name === 'ApiError' && err.code === 'key_conflict')) throw err;
    }
  } finally {
    c.wipe(sessionKey);
  }
}

async function commitBody(api, state, fresh) {
  const emergency = [];
  const wanted = new Set(state.emergency_contact_ids);
  const { items: contacts } = await api.json('GET', '/emergency/contacts');
  for (const contact of contacts) {
    if (!wanted.has(contact.id)) continue;
    const found = await lookupContact(api, contact.email);
    if (found.fingerprint !== String(contact.fingerprint).toUpperCase()) {
      throw new ContactKeyRefused(`The key of emergency contact ${contact.email} changed.`);
    }
    const sealed = await c.sealJson(
      {
        v: 1,
        purpose: PURPOSE,
        owner: fresh.privateKey.getFingerprint().toUpperCase(),
        contact: found.email,
        key: c.toB64(fresh.vaultKey),
      },
      { encryptionKeys: found.key, signingKeys: fresh.privateKey },
    );
    emergency.push({ id: contact.id, sealed_vault_key: c.toB64(sealed) });
  }
  const labels = [];
  const links = new Set(state.link_ids);
  const { items } = await api.json('GET', '/links');
  for (const link of items) {
    if (!links.has(link.id) || !link.sealed_label) continue;
    let opened;
    try {
      opened = await c.openJson(c.fromB64(link.sealed_label), {
        decryptionKeys: session.privateKey,
        verificationKeys: session.publicKey,
      });
    } catch (err) {
      throw new RotationError(`The label of a share link does not open.`, { cause: err });
    }
    const sealed = await c.sealJson(opened, {
      encryptionKeys: fresh.publicKey,
      signingKeys: fresh.privateKey,
    });
    labels.push({ id: link.id, sealed_label: c.toB64(sealed) });
  }
  return { emergency_keys: emergency, link_labels: labels };
}

/**
 * Rotate the account's key, or finish the rotation under way. `recoveryCode` is needed
 * to start one (the new vault key is wrapped under it too), and so is `factor` for an
 * account with a second factor: a FactorProof, or a function making one (a passkey
 * assertion; null without factors). onProgress(done, total). Afterwards the page holds the new key. Returns {fingerprint, records, resumed}.
 */
export async function rotateKeys(
  api,
  { password, recoveryCode = null, factor = null, onProgress = () => {} },
) {
  const secrets = await passwordSecrets(password);
  let fresh = null;
  try {
    let state = await rotationState(api);
    const resumed = state.pending !== null;
    if (!resumed) state = await start(api, secrets, recoveryCode, factor);
    fresh = await pendingIdentity(state.pending, secrets.wrapKey);
    const oldFingerprint = session.account.fingerprint.toUpperCase();
    const total = state.remaining;
    let done = 0;
    onProgress(done, total);
    for (let attempt = 1; ; attempt += 1) {
      const seen = new Set();
      for (;;) {
        const now = await rotationState(api);
        const next = now.record_ids.filter((id) => !seen.has(id));
        if (!next.length) {
          if (now.remaining) {
            throw new RotationError(
              `${now.remaining} record(s) could not be moved to the new key.`,
            );
          }
          state = now;
          break;
        }
        for (const id of next) {
          seen.add(id);
          await rekey(api, id, oldFingerprint, fresh);
          done += 1;
          onProgress(done, total);
        }
      }
      try {
        await api.json('POST', '/auth/keys/rotation/commit', {
          json: await commitBody(api, state, fresh),
        });
        break;
      } catch (err) {
        // Something new on the old key (another device's upload): move it, commit again.
        if (!(err?.name === 'ApiError' && err.code === 'rotation_incomplete') || attempt >= 3) {
          throw err;
        }
      }
    }
    const account = await api.json('GET', '/me');
    if (account.fingerprint.toUpperCase() !== fresh.privateKey.getFingerprint().toUpperCase()) {
      throw new RotationError('The server did not take the new key.');
    }
    session.account = account;
    session.privateKey = fresh.privateKey;
    session.publicKey = fresh.publicKey;
    session.pendingKey = null;
    fresh.privateKey = null; // the session keeps it now
    return { fingerprint: account.fingerprint, records: done, resumed };
  } finally {
    c.wipe(secrets.authKey, secrets.wrapKey, secrets.vaultKey);
    if (fresh) {
      c.wipe(fresh.vaultKey);
      // Cut short: the page keeps opening the records already sealed to the new key.
      if (fresh.privateKey) session.pendingKey = fresh.privateKey;
    }
  }
}

/**
 * A new recovery code (returned, to be shown once); the old one stops working. `factor`:
 * as for rotateKeys.
 */
export async function rotateRecoveryCode(api, { password, factor = null }) {
  const secrets = await passwordSecrets(password);
  const recovery = c.newRecoveryCode();
  const salt = c.newSalt();
  try {
    const { recoveryWrap, recoveryAuth } = await c.deriveRecoveryKeys(recovery.bytes, salt);
    const body = {
      auth_key: c.toB64(secrets.authKey),
      factor: null,
      recovery_salt: c.toB64(salt),
      recovery_verifier: c.toB64(recoveryAuth),
      recovery_wrapped_vault_key: c.toB64(await c.wrapVaultKey(secrets.vaultKey, recoveryWrap)),
    };
    c.wipe(recoveryWrap, recoveryAuth);
    body.factor = await factorProof(factor);
    await api.json('POST', '/auth/recovery/rotate', { json: body });
    session.account = {
      ...session.account,
      recovery_salt: body.recovery_salt,
      recovery_wrapped_vault_key: body.recovery_wrapped_vault_key,
    };
    return recovery.code;
  } finally {
    c.wipe(secrets.authKey, secrets.wrapKey, secrets.vaultKey, recovery.bytes);
  }
}
