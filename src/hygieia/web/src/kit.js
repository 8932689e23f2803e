// The recovery kit (protocol §6): what lists and opens every record of an account with
// no Hygieia server, from the password or the recovery code and any IPFS gateway.
//
// The page keeps the latest kit of each account that logged in here in IndexedDB
// (rebuilt after every listing, so after login, unlock, upload and delete): it is what
// the offline mode opens. A kit holds nothing the server doesn't hold and no plaintext
// metadata, but it is an offline guessing target for the password, like the server's
// database: it stays in this origin's storage and in files the user saves.
import * as c from './crypto/index.js';
import { readKey } from 'openpgp';

export const KIT_FORMAT = 'hygieia-recovery-kit';
export const KIT_VERSION = 1;
const ACCOUNT_FIELDS = [
  'id',
  'email',
  'fingerprint',
  'public_key',
  'locked_secret_key',
  'kdf',
  'salt',
  'wrapped_vault_key',
  'recovery_salt',
  'recovery_wrapped_vault_key',
];
const RECORD_FIELDS = [
  'id',
  'cid',
  'size',
  'segments',
  'created_at',
  'pkesk',
  'sealed_metadata',
  'envelope',
];
const TOP_FIELDS = ['format', 'version', 'created_at', 'server', 'account', 'records'];
const MAX_RECORDS = 1_000_000;

/** A refused kit: not one, of another version, or with fields it shouldn't have. */
export class KitError extends Error {
  constructor(message) {
    super(message);
    this.name = 'KitError';
  }
}

function pick(obj, fields) {
  const out = {};
  for (const k of fields) out[k] = obj[k] ?? null;
  return out;
}

/** RFC 3339 UTC to the second, as the Python writer prints it. */
function utcNow(now = new Date()) {
  return `${now.toISOString().slice(0, 19)}Z`;
}

/**
 * The kit of `account` (AccountPublic) and `records` (RecordPublic, newest first, any
 * extra keys dropped): `format` and `version` first, as every writer emits them.
 */
export function buildKit({ account, records, server, now }) {
  return {
    format: KIT_FORMAT,
    version: KIT_VERSION,
    created_at: utcNow(now),
    server,
    account: pick(account, ACCOUNT_FIELDS),
    records: records.map((r) => pick(r, RECORD_FIELDS)),
  };
}

/** The kit as the writers write it: two-space indent, a final newline. */
export function kitText(kit) {
  return `${JSON.stringify(kit, null, 2)}\n`;
}

function exactKeys(obj, fields, what) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new KitError(`${what} is not a JSON object`);
  }
  const keys = Object.keys(obj);
  const unknown = keys.filter((k) => !fields.includes(k));
  const missing = fields.filter((k) => !keys.includes(k));
  if (unknown.length) throw new KitError(`${what} has unknown fields: ${unknown.join(', ')}`);
  if (missing.length) throw new KitError(`${what} lacks fields: ${missing.join(', ')}`);
}

function isB64(v) {
  try {
    c.fromB64(v);
    return true;
  } catch {
    return false;
  }
}

/**
 * Check a kit's shape (protocol §6: another format or version, unknown or missing
 * fields refused). What can be checked only with keys is checked by unlockKit and
 * when records are opened.
 */
export function parseKit(value) {
  const kit = typeof value === 'string' ? JSON.parse(value) : value;
  if (kit?.format !== KIT_FORMAT) throw new KitError('not a Hygieia recovery kit');
  if (kit.version !== KIT_VERSION) throw new KitError(`unknown kit version ${kit.version}`);
  exactKeys(kit, TOP_FIELDS, 'the kit');
  exactKeys(kit.account, ACCOUNT_FIELDS, 'the kit’s account');
  const a = kit.account;
  for (const k of ['id', 'email', 'public_key', 'locked_secret_key']) {
    if (typeof a[k] !== 'string' || !a[k]) throw new KitError(`the kit’s account has a bad ${k}`);
  }
  if (!/^[0-9A-Fa-f]{40}$/.test(a.fingerprint)) throw new KitError('the kit’s fingerprint is bad');
  for (const k of ['salt', 'wrapped_vault_key', 'recovery_salt', 'recovery_wrapped_vault_key']) {
    if (!isB64(a[k])) throw new KitError(`the kit’s account has a bad ${k}`);
  }
  if (!Array.isArray(kit.records) || kit.records.length > MAX_RECORDS) {
    throw new KitError('the kit’s records are not a list');
  }
  const ids = new Set();
  for (const r of kit.records) {
    exactKeys(r, RECORD_FIELDS, 'a record of the kit');
    if (!c.isRecordId(r.id) || typeof r.cid !== 'string' || !c.sameCid(r.cid, r.cid)) {
      throw new KitError('a record of the kit has a bad id or CID');
    }
    if (ids.has(r.id)) throw new KitError(`record ${r.id} appears twice in the kit`);
    ids.add(r.id);
    if (!Number.isSafeInteger(r.size) || r.size < 0 || !Number.isSafeInteger(r.segments)) {
      throw new KitError(`record ${r.id} of the kit has bad sizes`);
    }
    if (
      !isB64(r.pkesk) ||
      !isB64(r.sealed_metadata) ||
      (r.envelope !== null && !isB64(r.envelope))
    ) {
      throw new KitError(`record ${r.id} of the kit has a bad key or metadata`);
    }
  }
  return kit;
}

/**
 * Unlock the kit's key with the password (`kdf` and `salt` already vetted by the
 * caller, kdf-trust.js) or the recovery code; the unlocked key must be the one the
 * kit's fingerprint and public key name. Returns the OpenPGP private key.
 */
export async function unlockKit(kit, { password, kdf, salt, code }) {
  const a = kit.account;
  let vaultKey;
  if (code !== undefined) {
    const codeBytes = c.parseRecoveryCode(code);
    const keys = await c.deriveRecoveryKeys(codeBytes, c.fromB64(a.recovery_salt));
    try {
      vaultKey = await c.unwrapVaultKey(c.fromB64(a.recovery_wrapped_vault_key), keys.recoveryWrap);
    } finally {
      c.wipe(codeBytes, keys.recoveryWrap, keys.recoveryAuth);
    }
  } else {
    const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
    try {
      vaultKey = await c.unwrapVaultKey(c.fromB64(a.wrapped_vault_key), wrapKey);
    } finally {
      c.wipe(authKey, wrapKey);
    }
  }
  try {
    const privateKey = await c.unlockIdentity(a.locked_secret_key, vaultKey);
    const publicKey = await readKey({ armoredKey: a.public_key });
    const fp = a.fingerprint.toUpperCase();
    if (
      privateKey.getFingerprint().toUpperCase() !== fp ||
      publicKey.getFingerprint().toUpperCase() !== fp
    ) {
      throw new c.DecryptionError('the kit’s key does not match its fingerprint');
    }
    return privateKey;
  } finally {
    c.wipe(vaultKey);
  }
}

// ---- the kits kept in this browser (IndexedDB, one per account) ----------------------

const DB_NAME = 'hygieia-kits';
const STORE = 'kits';

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'account_id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function withStore(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Keep `kit` as its account's latest (replacing the one before). */
export function storeKit(kit) {
  return withStore('readwrite', (s) =>
    s.put({
      account_id: kit.account.id,
      email: kit.account.email,
      created_at: kit.created_at,
      count: kit.records.length,
      text: kitText(kit),
    }),
  );
}

/** [{account_id, email, created_at, count}] of the kits kept here. */
export async function listKits() {
  try {
    const all = (await withStore('readonly', (s) => s.getAll())) ?? [];
    return all.map(({ text, ...rest }) => rest); // eslint-disable-line no-unused-vars
  } catch {
    return [];
  }
}

/** The kit kept for `accountId`, checked, or null. */
export async function loadKit(accountId) {
  const entry = await withStore('readonly', (s) => s.get(accountId));
  return entry ? parseKit(entry.text) : null;
}

/** The kit kept for `accountId` as the file the user downloads (its text as kept). */
export async function keptKitText(accountId) {
  const entry = await withStore('readonly', (s) => s.get(accountId));
  return entry?.text ?? null;
}
