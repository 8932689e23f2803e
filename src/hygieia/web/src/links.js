// Share links for people without an account: SMART Health Links (protocol §9; mirrors
// hygieia/client/links.py and shlink.py). The page decrypts each record, wraps non-FHIR
// files in a FHIR R4 DocumentReference, encrypts each as a JWE under a fresh link key and
// uploads the JWEs; the key goes only into the link after '#'.
import * as c from './crypto/index.js';
import { openRecord } from './records.js';
import { session } from './session.js';

export const PREFIX = 'shlink:/';
export const FHIR_JSON = 'application/fhir+json';
const MAX_LABEL = 80;

export class LinkError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'LinkError';
  }
}

/** The manifest wants a (right) passcode; `remaining` attempts are left (or null). */
export class PasscodeError extends LinkError {
  constructor(remaining, given) {
    const left = remaining == null ? '' : ` (${remaining} attempts left)`;
    super(`${(given ? 'The passcode is wrong' : 'This link needs a passcode') + left}.`);
    this.name = 'PasscodeError';
    this.remaining = remaining;
    this.given = given;
  }
}

function b64url(bytes) {
  return c.toB64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function unb64url(text) {
  if (/[^A-Za-z0-9_-]/.test(text)) throw new LinkError('The link is not base64url.');
  const std = text.replace(/-/g, '+').replace(/_/g, '/');
  return c.fromB64(std + '='.repeat((4 - (std.length % 4)) % 4));
}

/** `shlink:/…` for a payload object, members in their order (minified JSON). */
export function encodePayload(payload) {
  return PREFIX + b64url(c.utf8(JSON.stringify(payload)));
}

/** The payload of a link, bare or viewer-prefixed; LinkError if it is none. */
export function decodeLink(text) {
  text = text.trim();
  const at = text.indexOf(PREFIX);
  if (at < 0 || (at > 0 && text[at - 1] !== '#')) {
    throw new LinkError('This is not a SMART Health Link.');
  }
  let payload;
  try {
    payload = JSON.parse(c.fromUtf8(unb64url(text.slice(at + PREFIX.length))));
  } catch (err) {
    throw new LinkError('The link is damaged (its payload is not readable).', { cause: err });
  }
  const { url, key, flag = '', label, exp, v } = payload ?? {};
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
    throw new LinkError('The link has no manifest URL.');
  }
  if (typeof key !== 'string' || key.length !== 43) throw new LinkError('The link has no key.');
  if (typeof flag !== 'string' || (flag.includes('P') && flag.includes('U'))) {
    throw new LinkError('The link has invalid flags.');
  }
  if (v != null && (!Number.isInteger(v) || v > 1)) {
    throw new LinkError(`The link is SHL version ${v}; this viewer reads version 1.`);
  }
  return {
    url,
    key: unb64url(key),
    flag,
    label: typeof label === 'string' ? label : null,
    exp: typeof exp === 'number' ? exp : null,
  };
}

// ---- making a link ----

function instant(meta, fallback) {
  return /^\d{4}-\d{2}-\d{2}$/.test(meta.date ?? '') ? `${meta.date}T00:00:00Z` : fallback;
}

/** A FHIR R4 DocumentReference carrying `bytes` (the same shape as the CLI's). */
export function documentReference(meta, bytes, createdAt) {
  const title = String(meta.title || meta.filename || 'Document');
  const when = instant(meta, createdAt);
  const attachment = {
    contentType: String(meta.media_type || 'application/octet-stream'),
    data: c.toB64(bytes),
    title,
    size: bytes.length,
  };
  if (meta.date) attachment.creation = when;
  return c.utf8(
    JSON.stringify({
      resourceType: 'DocumentReference',
      status: 'current',
      type: { text: String(meta.type || 'document') },
      date: when,
      description: title,
      content: [{ attachment }],
    }),
  );
}

function isFhir(meta, bytes) {
  const media = String(meta.media_type || '')
    .split(';')[0]
    .trim()
    .toLowerCase();
  if (media === FHIR_JSON || media === 'application/json+fhir') return true;
  if (media !== 'application/json' && !String(meta.filename || '').endsWith('.json')) return false;
  try {
    const doc = JSON.parse(c.fromUtf8(bytes));
    return typeof doc?.resourceType === 'string';
  } catch {
    return false;
  }
}

function estimate(meta) {
  return Math.ceil((((meta.size ?? 0) * 4) / 3 + 4096) * (4 / 3)) + 1024;
}

/**
 * Make a link to `records` (listed, with opened `meta`). Returns {link, created}: the
 * viewer-prefixed link (this server's page) and the server's view of it.
 */
export async function createLink(
  api,
  records,
  { expiresInSeconds, passcode = null, maxOpens = null, label = '', direct = false },
) {
  if (!records.length) throw new LinkError('Choose at least one record.');
  if (label.length > MAX_LABEL) throw new LinkError(`The label is longer than ${MAX_LABEL}.`);
  if (direct && (passcode || records.length !== 1)) {
    throw new LinkError('A direct link is one record without a passcode.');
  }
  const cap = session.config.max_link_bytes || 32 * 1024 * 1024;
  if (records.reduce((n, r) => n + estimate(r.meta), 0) > cap) {
    throw new LinkError(
      `Too large for a share link: this server allows ${Math.floor(cap / 1048576)} MiB of ` +
        'encrypted files per link (a wrapped file takes about 1.8 times its size).',
    );
  }
  const key = c.newLinkKey();
  try {
    const jwes = [];
    for (const r of records) {
      const { blob, release } = await openRecord(api, r);
      try {
        const bytes = new Uint8Array(await blob.arrayBuffer());
        const data = isFhir(r.meta, bytes)
          ? bytes
          : documentReference(r.meta, bytes, new Date(r.created_at).toISOString());
        jwes.push(await c.encryptLinkFile(data, key, FHIR_JSON));
      } finally {
        await release();
      }
    }
    const expiresAt = new Date(Date.now() + expiresInSeconds * 1000);
    const flag = direct ? 'U' : passcode ? 'P' : '';
    const meta = {
      flag,
      expires_at: expiresAt.toISOString(),
      record_ids: records.map((r) => r.id),
      files: jwes.map((j) => ({ content_type: FHIR_JSON, size: j.length })),
    };
    if (passcode) meta.passcode = passcode;
    if (maxOpens) meta.max_opens = maxOpens;
    if (label) {
      meta.sealed_label = c.toB64(
        await c.sealJson(
          { v: 1, label },
          { encryptionKeys: session.publicKey, signingKeys: session.privateKey },
        ),
      );
    }
    const form = new FormData();
    form.append('meta', JSON.stringify(meta));
    jwes.forEach((j, i) =>
      form.append('file', new Blob([j], { type: 'application/jose' }), `${i}.jwe`),
    );
    const created = await api.upload('POST', '/links', form, {});
    const payload = { url: location.origin + created.path, key: b64url(key) };
    payload.exp = Math.floor(expiresAt.getTime() / 1000);
    if (flag) payload.flag = flag;
    if (label) payload.label = label;
    return { link: `${location.origin}/#${encodePayload(payload)}`, created };
  } finally {
    c.wipe(key);
  }
}

/** My links, labels opened here. */
export async function listLinks(api) {
  const { items } = await api.json('GET', '/links');
  const out = [];
  for (const item of items) {
    let label = null;
    if (item.sealed_label) {
      try {
        const opened = await c.openJson(c.fromB64(item.sealed_label), {
          decryptionKeys: session.privateKey,
          verificationKeys: session.publicKey,
        });
        label = typeof opened?.label === 'string' ? opened.label : null;
      } catch {
        label = '(label unreadable)';
      }
    }
    out.push({ ...item, label });
  }
  return out;
}

export async function revokeLink(api, id) {
  await api.json('DELETE', `/links/${encodeURIComponent(id)}`);
}

// ---- opening a link (no account) ----

/** Whether this page may fetch from the link's server (its CSP's connect-src). */
export function reachable(url) {
  const origin = new URL(url).origin;
  return origin === location.origin || (session.config.gateway_origins ?? []).includes(origin);
}

async function fetchJwe(url, init) {
  const res = await fetch(url, { ...init, credentials: 'omit', referrerPolicy: 'no-referrer' });
  if (res.status === 404) {
    throw new LinkError('This link is no longer active (expired, revoked or used up).');
  }
  if (res.status === 429) throw new LinkError('Too many requests. Try again in a few minutes.');
  if (!res.ok) throw new LinkError(`The link's server answered HTTP ${res.status}.`);
  return res.text();
}

/**
 * Fetch and decrypt a link's files: [{contentType, plaintext}]. The manifest request
 * carries `recipient` (shown to the link's owner) and the passcode if given.
 */
export async function openLink(payload, { recipient, passcode = null }) {
  const files = [];
  if (payload.flag.includes('U')) {
    const url = `${payload.url}?${new URLSearchParams({ recipient })}`;
    files.push({ contentType: '', jwe: await fetchJwe(url) });
  } else {
    const body = { recipient };
    if (passcode != null) body.passcode = passcode;
    const res = await fetch(payload.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
    if (res.status === 401) {
      const answer = await res.json().catch(() => ({}));
      throw new PasscodeError(answer.remainingAttempts ?? null, passcode != null);
    }
    if (res.status === 404) {
      throw new LinkError('This link is no longer active (expired, revoked, used up or disabled).');
    }
    if (res.status === 429) throw new LinkError('Too many requests. Try again in a few minutes.');
    if (!res.ok) throw new LinkError(`The link's server answered HTTP ${res.status}.`);
    const manifest = await res.json();
    if (!Array.isArray(manifest?.files)) throw new LinkError('The link has no files.');
    for (const entry of manifest.files) {
      const contentType = String(entry?.contentType ?? '');
      if (typeof entry?.embedded === 'string') files.push({ contentType, jwe: entry.embedded });
      else if (typeof entry?.location === 'string') {
        if (!reachable(entry.location)) {
          throw new LinkError('A file of this link is on another site this page may not reach.');
        }
        files.push({ contentType, jwe: await fetchJwe(entry.location) });
      } else throw new LinkError('The link lists a file without content.');
    }
  }
  const out = [];
  for (const f of files) {
    const { plaintext, cty } = await c.decryptLinkFile(f.jwe, payload.key);
    out.push({ contentType: f.contentType || cty || 'application/octet-stream', plaintext });
  }
  return out;
}

/** {title, contentType, bytes} of a DocumentReference's first inline attachment, or null. */
export function attachmentOf(doc) {
  if (doc?.resourceType !== 'DocumentReference') return null;
  for (const content of doc.content ?? []) {
    const att = content?.attachment;
    if (typeof att?.data === 'string') {
      try {
        return {
          title: String(att.title || doc.description || 'document'),
          contentType: String(att.contentType || 'application/octet-stream'),
          bytes: c.fromB64(att.data),
        };
      } catch {
        return null;
      }
    }
  }
  return null;
}
