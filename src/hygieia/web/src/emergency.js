// Emergency access in the page (protocol §8), the browser side of
// hygieia.client.emergency.
//
// The owner: the contact's key comes from POST /users/key and is checked against the
// fingerprint remembered for that email (contacts.js); the vault key, unwrapped again
// with the password for this one step (the page does not keep it), is sealed to that
// key only and signed by us; only that message is sent.
//
// The contact, once the server releases access: the owner's key is pinned like any
// contact's; the sealed vault key must be signed by that pinned key and name it and us;
// the owner's locked key must unlock with it and be that pinned key. The owner's records
// are then checked exactly like our own (metadata bound to the id and to the CID, every
// segment signed by the owner's pinned key, SHA-256 as sealed), read-only. The owner's
// unlocked key lives in session.emergency (memory) and goes on lock and log-out.
import * as c from './crypto/index.js';
import { vaultKeyWithPassword } from './accounts.js';
import { accept, ContactKeyRefused, inspectKey, normEmail } from './contacts.js';
import { decryptContent, openingError, safeType, serverSource } from './records.js';
import { scratchFile } from './scratch.js';
import { session } from './session.js';

const PAGE = 200;
const PURPOSE = 'hygieia/emergency-vault-key';
const enc = encodeURIComponent;

/** An emergency-access step the user can act on (nothing changed). */
export class EmergencyError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'EmergencyError';
  }
}

// ---- the owner's side ----------------------------------------------------------------

/** The contact's key, looked up and compared with what is remembered (not pinned yet). */
export async function lookupContact(api, email) {
  email = normEmail(email);
  if (email === normEmail(session.account.email)) {
    throw new EmergencyError('You can’t be your own emergency contact.');
  }
  const found = await api.json('POST', '/users/key', { json: { email } });
  if (typeof found?.email !== 'string' || normEmail(found.email) !== email) {
    throw new ContactKeyRefused(`The server answered for another email than ${email}.`);
  }
  return inspectKey(email, found.public_key, { claimedFingerprint: found.fingerprint });
}

/**
 * Name `contact` (an inspected key, accepted here) with a wait of `waitDays`: our vault
 * key, unwrapped with `password`, sealed to their key and signed by us.
 */
export async function addContact(api, contact, { waitDays, password, acceptNew = false }) {
  const pinned = await accept(contact, { acceptNew });
  const vaultKey = await vaultKeyWithPassword({ password });
  let sealed;
  try {
    sealed = await c.sealJson(
      {
        v: 1,
        purpose: PURPOSE,
        owner: session.account.fingerprint.toUpperCase(),
        contact: pinned.email,
        key: c.toB64(vaultKey),
      },
      { encryptionKeys: pinned.key, signingKeys: session.privateKey },
    );
  } finally {
    c.wipe(vaultKey);
  }
  const made = await api.json('POST', '/emergency/contacts', {
    json: { email: pinned.email, wait_days: waitDays, sealed_vault_key: c.toB64(sealed) },
  });
  if (made.fingerprint.toUpperCase() !== pinned.fingerprint) {
    throw new EmergencyError(`The server filed ${pinned.email} under another key.`);
  }
  return made;
}

export async function listContacts(api) {
  return (await api.json('GET', '/emergency/contacts')).items;
}

export async function approveContact(api, contact) {
  return api.json('POST', `/emergency/contacts/${enc(contact.id)}/approve`);
}

/** Refuse a waiting request, or end a granted access. */
export async function denyContact(api, contact) {
  return api.json('POST', `/emergency/contacts/${enc(contact.id)}/deny`);
}

export async function removeContact(api, contact) {
  await api.json('DELETE', `/emergency/contacts/${enc(contact.id)}`);
}

// ---- the contact's side --------------------------------------------------------------

export async function listAccess(api) {
  return (await api.json('GET', '/emergency/access')).items;
}

export async function requestAccess(api, access) {
  return api.json('POST', `/emergency/access/${enc(access.id)}/request`);
}

/** The owner's vault from a released access, every key checked (session.emergency). */
export async function openVault(api, access, { acceptNew = false } = {}) {
  const vault = await api.json('GET', `/emergency/access/${enc(access.id)}/vault`);
  if (vault.id !== access.id || normEmail(vault.owner.email) !== normEmail(access.owner.email)) {
    throw new ContactKeyRefused(`The server answered for another vault.`);
  }
  const owner = await accept(
    await inspectKey(vault.owner.email, vault.owner.public_key, {
      claimedFingerprint: vault.owner.fingerprint,
    }),
    { acceptNew },
  );
  let privateKey;
  try {
    const body = await c.openJson(c.fromB64(vault.sealed_vault_key), {
      decryptionKeys: session.privateKey,
      verificationKeys: owner.key,
    });
    if (
      body?.v !== 1 ||
      body.purpose !== PURPOSE ||
      String(body.owner).toUpperCase() !== owner.fingerprint ||
      normEmail(String(body.contact)) !== normEmail(session.account.email) ||
      typeof body.key !== 'string'
    ) {
      throw new c.DecryptionError('not a sealed vault key for this contact');
    }
    const vaultKey = c.fromB64(body.key);
    try {
      if (vaultKey.length !== 32) throw new c.DecryptionError('not a vault key');
      privateKey = await c.unlockIdentity(vault.locked_secret_key, vaultKey);
    } finally {
      c.wipe(vaultKey);
    }
  } catch (err) {
    throw new EmergencyError(
      `${owner.email}’s sealed vault key or locked key failed verification (not signed by their remembered key, or not theirs).`,
      { cause: err },
    );
  }
  if (privateKey.getFingerprint().toUpperCase() !== owner.fingerprint) {
    throw new EmergencyError(`The locked key the server sent is not ${owner.email}’s.`);
  }
  session.emergency?.privateKey?.clearPrivateParams?.();
  session.emergency = {
    access,
    owner,
    privateKey,
    publicKey: privateKey.toPublic(),
    records: [],
  };
  return session.emergency;
}

/** One of the owner's records: metadata opened for its id, bound to its CID. */
async function openOwnerMeta(vault, item, recordId = item.id) {
  if (item.id !== recordId) throw new c.RecordMismatchError(recordId, item.id);
  const meta = await c.openMetadata(c.fromB64(item.sealed_metadata), {
    recordId,
    privateKey: vault.privateKey,
    verificationKeys: vault.publicKey,
  });
  if (!c.sameCid(meta.cid, item.cid) || meta.segments !== item.segments) {
    throw new c.DecryptionError('the server’s record differs from its sealed metadata');
  }
  return meta;
}

/** Every record of the owner (all pages), each {…item, meta, refused}. */
export async function loadOwnerRecords(api, vault) {
  const out = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) q.set('cursor', cursor);
    const page = await api.json('GET', `/emergency/access/${enc(vault.access.id)}/records?${q}`);
    for (const item of page.items) {
      try {
        out.push({ ...item, meta: await openOwnerMeta(vault, item), refused: null });
      } catch (err) {
        out.push({ ...item, meta: null, refused: err.message });
      }
    }
    cursor = page.next_cursor;
  } while (cursor);
  vault.records = out;
  return out;
}

/** Download and open one of the owner's records, every check as for our own. */
export async function openOwnerRecord(api, vault, record, { onProgress = () => {} } = {}) {
  const base = `/emergency/access/${enc(vault.access.id)}/records/${enc(record.id)}`;
  const item = await api.json('GET', base);
  const meta = await openOwnerMeta(vault, item, record.id);
  const sessionKey = await c.unwrapSessionKey(c.fromB64(item.pkesk), vault.privateKey);
  try {
    const res = await api.raw('GET', `${base}/content`);
    const sink = await scratchFile('get');
    try {
      await decryptContent(serverSource(res), {
        record: item,
        meta,
        sessionKey,
        signer: vault.publicKey,
        sink,
        onProgress,
      });
      const file = await sink.close();
      return {
        meta,
        blob: new Blob([file], { type: safeType(meta.media_type) }),
        release: sink.remove,
      };
    } catch (err) {
      await sink.remove();
      throw openingError(err);
    }
  } finally {
    c.wipe(sessionKey);
  }
}
