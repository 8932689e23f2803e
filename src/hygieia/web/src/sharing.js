// Sharing done in the page (protocol §7), the browser side of hygieia.client.sharing:
// grant, revoke, rotate ("Revoke and re-encrypt"); read what others shared.
//
// Granting: the recipient's key comes from POST /users/key and is checked against the
// fingerprint remembered for that email (contacts.js). The record's session key comes
// from the owner's envelope, which is not bound to the record's id (protocol §3), so
// before a PKESK is written for anyone the record's content is downloaded once, every
// segment decrypted and verified with that key and our signing key, and its CID
// compared with the one sealed in the record's bound metadata (nothing is kept). Only
// then are the recipient's PKESK and sealed metadata (the same fields as version 2,
// signed by us, encrypted to them only) made.
//
// Reading: a shared record's metadata and every segment must be signed by its owner's
// key as remembered here (pinned on first use), not merely by some valid key.
//
// Rotation re-seals a record under a new session key as a new record, grants it again
// and deletes the old one, with a journal in localStorage (per server and old id: the
// new id and the recipients) so that a run cut short resumes from where it stopped.
import * as c from './crypto/index.js';
import { accept, ContactKeyRefused, inspectKey, normEmail, spaced } from './contacts.js';
import {
  decryptContent,
  serverSource,
  openContent,
  openMeta,
  openRecord,
  RecordCheckError,
  uploadRecord,
} from './records.js';
import { session } from './session.js';

const GRANTS_PER_REQUEST = 100; // POST /grants takes at most this many
const PAGE = 200; // the server's maximum page size

/** A sharing step the user can act on (nothing was shared, or nothing changed). */
export class ShareError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ShareError';
  }
}

const enc = encodeURIComponent;

// ---- the owner's side ----------------------------------------------------------------

/**
 * The recipient's key, looked up and compared with what this browser remembers
 * (contacts.inspectKey: {email, key, fingerprint, status, remembered}). Nothing is
 * pinned until the user goes on (contacts.accept).
 */
export async function lookupRecipient(api, email) {
  email = normEmail(email);
  if (email === normEmail(session.account.email)) {
    throw new ShareError('You can’t share a record with yourself.');
  }
  const found = await api.json('POST', '/users/key', { json: { email } });
  if (typeof found?.email !== 'string' || normEmail(found.email) !== email) {
    throw new ContactKeyRefused(`The server answered for another email than ${email}.`);
  }
  return inspectKey(email, found.public_key, { claimedFingerprint: found.fingerprint });
}

/**
 * One of my records fetched again, its verified metadata and its session key, proven
 * to be this record's: the content has the sealed CID and every segment opens and
 * verifies under the key (the envelope alone is not bound to the id, protocol §3).
 * The caller wipes `sessionKey`.
 */
export async function ownedSessionKey(api, recordId, { onProgress, signal } = {}) {
  const item = await api.json('GET', `/records/${enc(recordId)}`);
  if (item.id !== recordId) throw new c.RecordMismatchError(recordId, item.id);
  const meta = await openMeta(item);
  let sessionKey;
  try {
    sessionKey = await c.openEnvelope(c.fromB64(item.envelope), {
      privateKey: session.privateKey,
      verificationKeys: session.publicKey,
    });
  } catch (err) {
    throw new RecordCheckError(`record ${recordId}: its session-key envelope failed verification`, {
      cause: err,
    });
  }
  try {
    const res = await api.raw('GET', `/records/${enc(recordId)}/content`, { signal });
    await decryptContent(serverSource(res), { record: item, meta, sessionKey, onProgress });
  } catch (err) {
    c.wipe(sessionKey);
    if (err instanceof RecordCheckError || !(err instanceof c.DecryptionError)) throw err;
    throw new RecordCheckError(
      `record ${recordId}: its session key does not open its content (the server may have sent another record’s envelope)`,
      { cause: err },
    );
  }
  return { item, meta, sessionKey };
}

/**
 * `sealed` plus the opened metadata's `content_signer`, if any: after a key rotation the
 * owner's earlier key signed the content, and the recipient verifies with it (protocol
 * "Key rotation").
 */
export function withContentSigner(sealed, meta) {
  return typeof meta.content_signer === 'string'
    ? { ...sealed, content_signer: meta.content_signer }
    : sealed;
}

/** A grant of record `recordId` to `recipient` (an inspected, accepted key). */
async function grantBody(recordId, meta, sessionKey, recipient) {
  return {
    record_id: recordId,
    email: recipient.email,
    pkesk: c.toB64(await c.wrapSessionKey(sessionKey, recipient.key)),
    sealed_metadata: c.toB64(
      await c.sealJson(withContentSigner(c.recordMetadata(meta, recordId), meta), {
        encryptionKeys: recipient.key,
        signingKeys: session.privateKey,
      }),
    ),
  };
}

async function sendGrants(api, bodies) {
  const made = [];
  for (let i = 0; i < bodies.length; i += GRANTS_PER_REQUEST) {
    const page = await api.json('POST', '/grants', {
      json: { grants: bodies.slice(i, i + GRANTS_PER_REQUEST) },
    });
    made.push(...page.items);
  }
  return made;
}

/**
 * Grant every record (ids) to every recipient (inspected keys, accepted by the caller
 * with contacts.accept). onProgress(index, count, fraction) per record proven.
 * Returns the server's GrantPublic items.
 */
export async function shareRecords(api, recordIds, recipients, { onProgress = () => {} } = {}) {
  const ids = [...new Set(recordIds)];
  const bodies = [];
  for (const [index, recordId] of ids.entries()) {
    const { meta, sessionKey } = await ownedSessionKey(api, recordId, {
      onProgress: (f) => onProgress(index, ids.length, f),
    });
    try {
      for (const recipient of recipients) {
        bodies.push(await grantBody(recordId, meta, sessionKey, recipient));
      }
    } finally {
      c.wipe(sessionKey);
    }
  }
  return sendGrants(api, bodies);
}

/** One of my records' grants, oldest first. */
export async function recordGrants(api, recordId) {
  return (await api.json('GET', `/records/${enc(recordId)}/grants`)).items;
}

export async function revokeGrant(api, grant) {
  await api.json('DELETE', `/grants/${enc(grant.id)}`);
}

// ---- revoke and re-encrypt -------------------------------------------------------------

const JOURNAL = 'hygieia.rotations.v1';

function journalKey(recordId) {
  return `${location.origin} ${recordId}`;
}

function journalRead() {
  try {
    const data = JSON.parse(localStorage.getItem(JOURNAL) ?? '{}');
    return data && typeof data === 'object' && !Array.isArray(data) ? data : {};
  } catch {
    return {};
  }
}

function journalWrite(data) {
  try {
    if (Object.keys(data).length) localStorage.setItem(JOURNAL, JSON.stringify(data));
    else localStorage.removeItem(JOURNAL);
  } catch {
    /* storage switched off: a run cut short starts again from the old record */
  }
}

async function exists(api, recordId) {
  try {
    await api.json('GET', `/records/${enc(recordId)}`);
    return true;
  } catch (err) {
    if (err?.name === 'ApiError' && err.status === 404) return false;
    throw err;
  }
}

/**
 * Re-seal `recordId` under a new session key as a new record (new id, new CID), grant
 * it to the old one's recipients but `without`, then delete the old one (its CID is
 * unpinned). Resumable: run it again after any failure and it carries on from the
 * journal. Every remaining recipient's key must be the one remembered and the one the
 * old grant was made for, unless `acceptNew`. Returns {newId, newCid, recipients}.
 */
export async function rotateRecord(
  api,
  recordId,
  { without = [], acceptNew = false, onProgress = () => {} } = {},
) {
  const journal = journalRead();
  let entry = journal[journalKey(recordId)];
  if (!entry || !c.isRecordId(entry.new_id) || !Array.isArray(entry.recipients)) {
    const left = new Set(without.map(normEmail));
    const grants = await recordGrants(api, recordId); // 404 unless it is mine
    entry = {
      new_id: c.newRecordId(),
      recipients: grants
        .filter((g) => !left.has(normEmail(g.email)))
        .map((g) => ({ email: g.email, fingerprint: g.fingerprint })),
    };
    journalWrite({ ...journal, [journalKey(recordId)]: entry });
  }
  // Every key checked before anything changes.
  const recipients = [];
  for (const { email, fingerprint } of entry.recipients) {
    const found = await lookupRecipient(api, email);
    if (found.fingerprint !== String(fingerprint).toUpperCase() && !acceptNew) {
      throw new ContactKeyRefused(
        `The key for ${email} (${spaced(found.fingerprint)}) is not the one the record was shared with (${spaced(fingerprint)}).`,
      );
    }
    recipients.push(await accept(found, { acceptNew }));
  }
  // 1. The new record, sealed from the old one's verified plaintext (disk-backed).
  if (!(await exists(api, entry.new_id))) {
    const old = await api.json('GET', `/records/${enc(recordId)}`);
    if (old.id !== recordId) throw new c.RecordMismatchError(recordId, old.id);
    const meta = await openMeta(old);
    const { blob, release } = await openRecord(api, old, {
      onProgress: (f) => onProgress('decrypt', f),
    });
    try {
      await uploadRecord(api, blob, {}, { id: entry.new_id, keep: meta, onProgress });
    } finally {
      await release();
    }
  }
  // 2. Its grants (a grant that exists is replaced, never doubled).
  const { item, meta, sessionKey } = await ownedSessionKey(api, entry.new_id, {
    onProgress: (f) => onProgress('verify', f),
  });
  try {
    const bodies = [];
    for (const r of recipients) bodies.push(await grantBody(entry.new_id, meta, sessionKey, r));
    if (bodies.length) await sendGrants(api, bodies);
  } finally {
    c.wipe(sessionKey);
  }
  // 3. Only now the old record goes (already gone if an earlier run got this far).
  try {
    await api.json('DELETE', `/records/${enc(recordId)}`);
  } catch (err) {
    if (!(err?.name === 'ApiError' && err.status === 404)) throw err;
  }
  const after = journalRead();
  delete after[journalKey(recordId)];
  journalWrite(after);
  return { newId: entry.new_id, newCid: item.cid, recipients: recipients.map((r) => r.email) };
}

// ---- the recipient's side --------------------------------------------------------------

/**
 * The verified metadata of a shared record and its owner's pinned key: the owner's key
 * must be the one remembered for the owner's email (pinned on first use), the metadata
 * signed by it, version 2, bound to the id asked for and to the record's CID.
 */
export async function openSharedItem(item, { recordId = item.id, acceptNew = false } = {}) {
  if (item.id !== recordId) throw new c.RecordMismatchError(recordId, item.id);
  const owner = await accept(
    await inspectKey(item.owner.email, item.owner.public_key, {
      claimedFingerprint: item.owner.fingerprint,
    }),
    { acceptNew },
  );
  let meta;
  try {
    meta = await openMeta(item, { signer: owner.key });
  } catch (err) {
    if (err instanceof c.RecordMismatchError || err instanceof RecordCheckError) throw err;
    throw new RecordCheckError(
      `the metadata is not signed by its owner ${owner.email} (or not readable)`,
      { cause: err },
    );
  }
  // Grants are written as version 2 only: an unbound one is not a grant's.
  if (!c.metadataIsBound(meta)) throw new RecordCheckError('the shared metadata names no record');
  return { meta, owner };
}

/** A listed shared record, opened, or kept with the reason it was refused. */
async function openListedShared(item) {
  // `owner` becomes the key pinned here; the server's claim is kept to be shown as such.
  const base = { ...item, claimedOwner: item.owner, shared: true, bound: true };
  try {
    const { meta, owner } = await openSharedItem(item);
    return { ...base, meta, owner, refused: null, keyChanged: null };
  } catch (err) {
    if (!(err instanceof c.DecryptionError || err instanceof ContactKeyRefused)) throw err;
    return {
      ...base,
      meta: null,
      owner: null,
      refused: err.message,
      keyChanged: err.name === 'ContactKeyChanged' ? err : null,
    };
  }
}

/** Every record shared with me (all pages), its metadata checked against its owner. */
export async function loadShared(api) {
  const out = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) q.set('cursor', cursor);
    const page = await api.json('GET', `/shared?${q}`);
    for (const item of page.items) out.push(await openListedShared(item));
    cursor = page.next_cursor;
  } while (cursor);
  session.shared = out;
  return out;
}

/** Pin the owner's new key after the user checked it (a ContactKeyChanged item). */
export async function acceptOwnerKey(item) {
  await openSharedItem(item, { acceptNew: true });
}

/**
 * Download and open a record shared with me: fetched again, its owner's key checked,
 * every segment signed by that key, CID and SHA-256 as sealed. {blob, release}.
 */
export async function openSharedRecord(api, record, { onProgress = () => {}, signal } = {}) {
  const fresh = await api.json('GET', `/shared/${enc(record.id)}`, { signal });
  const { meta, owner } = await openSharedItem(fresh, { recordId: record.id });
  return openContent(api, fresh, meta, {
    path: `/shared/${enc(record.id)}/content`,
    signer: owner.key,
    onProgress,
    signal,
  });
}

/** Remove a record shared with me from my list (its owner keeps it). */
export async function removeShared(api, record) {
  await api.json('DELETE', `/shared/${enc(record.id)}`);
  session.shared = (session.shared ?? []).filter((r) => r.id !== record.id);
}

// ---- the access trail ------------------------------------------------------------------

/** The sharing events of my audit trail, newest first (optionally of one record). */
export async function sharingActivity(api, { recordId = null, limit = 200 } = {}) {
  const { events } = await api.json('GET', `/audit?kind=share&limit=${limit}`);
  return events.filter(
    (e) =>
      typeof e.event === 'string' &&
      e.event.startsWith('share.') &&
      (recordId === null || e.detail?.record_id === recordId),
  );
}
