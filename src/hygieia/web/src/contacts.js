// Whose key is whose: the fingerprints this browser remembers (trust on first use),
// the browser side of hygieia.client.contacts (protocol §7, security.md "Substituted
// keys").
//
// A server that hands out its own key for a recipient's email reads whatever is shared
// with "them"; one that hands out another key for a record's owner could pass off a
// record it wrote as theirs. So the page remembers, per (server origin, email), the
// fingerprint of every key it has used for that email, to share with the account or to
// read what it shared: the first time it is shown and pinned, and a different key later
// is refused (ContactKeyChanged) until the user accepts it. The fingerprint is always
// computed here from the key, never taken from the server's word.
//
// The memory is localStorage, one entry per contact keyed by a SHA-256 of
// "origin email" (like kdf-trust.js, so the list of people is not spelled out); it holds
// no secret. Where storage is switched off, a Map stands in for this tab's lifetime.
import * as c from './crypto/index.js';

const PREFIX = 'hygieia.contact.v1.';
const memory = new Map();

/** A contact's key can't be used: unreadable, or not the fingerprint the server claimed. */
export class ContactKeyRefused extends Error {
  constructor(message) {
    super(message);
    this.name = 'ContactKeyRefused';
  }
}

/** The server presents another key for an email than the one remembered here. */
export class ContactKeyChanged extends ContactKeyRefused {
  constructor(email, remembered, presented) {
    super(
      `The key for ${email} has CHANGED: remembered ${spaced(remembered)}, the server now presents ${spaced(presented)}. This happens if ${email} re-created their account, or if the server is trying to intercept what you share. Check the new fingerprint with them (not through this server) before you accept it.`,
    );
    this.name = 'ContactKeyChanged';
    this.email = email;
    this.remembered = remembered;
    this.presented = presented;
  }
}

/** A fingerprint in groups of four, as the CLI prints it. */
export function spaced(fingerprint) {
  return fingerprint.replace(/(.{4})/g, '$1 ').trim();
}

export function normEmail(email) {
  return email.trim().toLowerCase();
}

async function storageKey(email) {
  const name = `${location.origin} ${normEmail(email)}`;
  const digest = await crypto.subtle.digest('SHA-256', c.utf8(name));
  return PREFIX + c.toHex(new Uint8Array(digest));
}

/** The fingerprint remembered for `email` on this server, or null. */
export async function rememberedFingerprint(email) {
  const key = await storageKey(email);
  let raw;
  try {
    raw = localStorage.getItem(key);
  } catch {
    raw = memory.get(key) ?? null;
  }
  if (raw === null) return null;
  try {
    const entry = JSON.parse(raw);
    if (typeof entry.fingerprint !== 'string') throw new TypeError('no fingerprint');
    return entry.fingerprint;
  } catch {
    // Damaged memory must not become "nobody known": every key would look new.
    throw new ContactKeyRefused(`The key remembered for ${email} in this browser is damaged.`);
  }
}

async function pin(email, fingerprint) {
  const key = await storageKey(email);
  const raw = JSON.stringify({ fingerprint });
  try {
    localStorage.setItem(key, raw);
  } catch {
    memory.set(key, raw);
  }
}

/**
 * Read `armored` as `email`'s key and compare it with what is remembered.
 * Returns {email, key, fingerprint, status, remembered} with status 'known' | 'new' |
 * 'changed'; nothing is pinned yet (see accept). ContactKeyRefused if the key does not
 * parse, has no encryption subkey, or is not the fingerprint the server claimed.
 */
export async function inspectKey(email, armored, { claimedFingerprint = null } = {}) {
  email = normEmail(email);
  let key;
  try {
    key = await c.readPublicKey(armored);
    await key.getEncryptionKey(); // a key of the profile has a usable X25519 subkey
    await key.verifyPrimaryKey();
  } catch (err) {
    throw new ContactKeyRefused(`The server’s key for ${email} is not usable.`, { cause: err });
  }
  const fingerprint = key.getFingerprint().toUpperCase();
  if (claimedFingerprint !== null && claimedFingerprint.toUpperCase() !== fingerprint) {
    throw new ContactKeyRefused(
      `The server’s fingerprint for ${email} is not that of the key it sent.`,
    );
  }
  const known = await rememberedFingerprint(email);
  const status = known === null ? 'new' : known === fingerprint ? 'known' : 'changed';
  return { email, key, fingerprint, status, remembered: known };
}

/**
 * Pin an inspected key: a known one is kept, a new one remembered (trust on first use),
 * a changed one refused with ContactKeyChanged unless `acceptNew`.
 */
export async function accept(inspected, { acceptNew = false } = {}) {
  if (inspected.status === 'known') return inspected;
  if (inspected.status === 'changed' && !acceptNew) {
    throw new ContactKeyChanged(inspected.email, inspected.remembered, inspected.fingerprint);
  }
  await pin(inspected.email, inspected.fingerprint);
  return inspected;
}

/** inspectKey then accept: the CLI's Contacts.check. */
export async function checkKey(
  email,
  armored,
  { claimedFingerprint = null, acceptNew = false } = {},
) {
  return accept(await inspectKey(email, armored, { claimedFingerprint }), { acceptNew });
}
