// Share links in the page (protocol §9): the "Share link" dialog of a record, the list
// of links in Settings (with revoke), and the viewer anyone opens from a link (the
// fragment after '#'), with no account.
import QRCode from 'qrcode';
import { DecryptionError } from './crypto/errors.js';
import {
  attachmentOf,
  createLink,
  decodeLink,
  FHIR_JSON,
  LinkError,
  listLinks,
  openLink,
  PasscodeError,
  reachable,
  revokeLink,
} from './links.js';
import { inlineKind, safeType } from './records.js';
import { currentRecord } from './records-ui.js';
import { $, clearFlash, el, flash, saveBlob, showView, withBusy } from './ui.js';

let ctx = null;
const urls = [];

function dialogError(text) {
  $('link-error').textContent = text || '';
  $('link-error').hidden = !text;
}

function openDialog() {
  const r = currentRecord();
  if (!r) return;
  $('form-link').reset();
  $('link-what').textContent = r.meta.title || r.meta.filename || 'This record';
  $('link-result').hidden = true;
  $('link-submit').hidden = false;
  dialogError('');
  $('link-dialog').showModal();
}

async function submitDialog(event) {
  event.preventDefault();
  dialogError('');
  const r = currentRecord();
  if (!r) return;
  const maxOpens = $('link-max-opens').value ? Number($('link-max-opens').value) : null;
  if (maxOpens !== null && !(Number.isInteger(maxOpens) && maxOpens >= 1)) {
    return dialogError('Opens allowed: a whole number, 1 or more.');
  }
  try {
    const { link } = await withBusy(
      'Making the link…',
      () =>
        createLink(ctx.api, [r], {
          expiresInSeconds: Number($('link-expires').value),
          passcode: $('link-passcode-new').value || null,
          maxOpens,
          label: $('link-label-input').value.trim(),
        }),
      $('form-link'),
    );
    $('link-text').value = link;
    // Error correction M, as the SHL spec asks for its QR codes.
    const svg = await QRCode.toString(link, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    $('link-qr').src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
    $('link-result').hidden = false;
    $('link-submit').hidden = true;
    $('link-passcode-new').value = '';
  } catch (err) {
    dialogError(ctx.message(err));
  }
}

async function copyLink() {
  try {
    await navigator.clipboard.writeText($('link-text').value);
    dialogError('');
  } catch {
    $('link-text').select();
    dialogError('Copying is not allowed here: the link is selected, copy it yourself.');
  }
}

/** The Settings card: my links with their state, and revoke. */
export async function renderLinks() {
  const items = await listLinks(ctx.api);
  $('links-empty').hidden = items.length > 0;
  $('links-list').replaceChildren(
    ...items.map((l) => {
      const opens = l.max_opens ? `${l.opens}/${l.max_opens}` : String(l.opens);
      const text =
        `${l.label || 'Unlabelled link'} · ${l.record_ids.length} record(s) · ` +
        `until ${new Date(l.expires_at).toLocaleString()} · opened ${opens} · ${l.state}`;
      const li = el(
        'li',
        { class: 'grant', 'data-link-id': l.id, 'data-state': l.state },
        el('span', { class: 'grant-who', text }),
      );
      if (l.state === 'active') {
        li.append(
          el('button', {
            type: 'button',
            class: 'btn btn-danger',
            text: 'Revoke',
            onclick: async () => {
              try {
                await withBusy('Revoking…', () => revokeLink(ctx.api, l.id));
                await renderLinks();
                flash('Link revoked: it no longer opens.', { ok: true });
              } catch (err) {
                flash(ctx.message(err));
              }
            },
          }),
        );
      }
      return li;
    }),
  );
}

// ---- the viewer ----

let payload = null;

function blobUrl(bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type: safeType(type) }));
  urls.push(url);
  return url;
}

const EXT = { 'application/pdf': '.pdf', 'image/png': '.png', 'image/jpeg': '.jpg' };

function renderFile(file, index) {
  const box = el('section', { class: 'link-file', 'data-file': String(index) });
  let doc = null;
  const base = file.contentType.split(';')[0].trim().toLowerCase();
  if (base === FHIR_JSON || base === 'application/json') {
    try {
      doc = JSON.parse(new TextDecoder().decode(file.plaintext));
    } catch {
      doc = null;
    }
  }
  const att = attachmentOf(doc);
  if (att) {
    const kind = inlineKind(att.contentType);
    box.append(el('h2', { text: att.title }));
    const name = att.title.endsWith(EXT[att.contentType] ?? '')
      ? att.title
      : att.title + (EXT[att.contentType] ?? '');
    box.append(
      el('button', {
        type: 'button',
        class: 'btn btn-primary',
        text: 'Download',
        'data-download': 'attachment',
        onclick: () => saveBlob(new Blob([att.bytes], { type: safeType(att.contentType) }), name),
      }),
    );
    if (kind === 'image') {
      box.append(
        el('img', {
          src: blobUrl(att.bytes, att.contentType),
          alt: att.title,
          'data-kind': 'image',
        }),
      );
    } else if (kind === 'pdf') {
      box.append(
        el('iframe', {
          src: blobUrl(att.bytes, 'application/pdf'),
          title: att.title,
          'data-kind': 'pdf',
        }),
      );
    } else {
      box.append(
        el('p', {
          class: 'hint',
          text: 'This file type cannot be shown here. Use Download to open it.',
        }),
      );
    }
    return box;
  }
  const what = doc?.resourceType
    ? `FHIR ${doc.resourceType}${Array.isArray(doc.entry) ? ` with ${doc.entry.length} entries` : ''}`
    : base === 'application/smart-health-card'
      ? 'SMART Health Card'
      : file.contentType || 'File';
  box.append(el('h2', { text: what }));
  box.append(
    el('button', {
      type: 'button',
      class: 'btn btn-primary',
      text: 'Download',
      'data-download': 'file',
      onclick: () =>
        saveBlob(
          new Blob([file.plaintext], { type: 'application/json' }),
          `shared-${index + 1}${base === 'application/smart-health-card' ? '.smart-health-card' : '.json'}`,
        ),
    }),
  );
  const text = doc ? JSON.stringify(doc, null, 2) : new TextDecoder().decode(file.plaintext);
  box.append(el('pre', { 'data-kind': doc ? 'fhir' : 'text', text }));
  return box;
}

async function submitViewer(event) {
  event.preventDefault();
  clearFlash();
  const recipient = $('link-recipient').value.trim();
  if (!recipient) {
    flash('Say who you are: the person who shared this sees it.');
    return $('link-recipient').focus();
  }
  const passcode = payload.flag.includes('P') ? $('link-passcode').value : null;
  try {
    const files = await withBusy(
      'Opening…',
      () => openLink(payload, { recipient, passcode }),
      $('form-link-open'),
    );
    $('form-link-open').hidden = true;
    $('link-files').replaceChildren(...files.map(renderFile));
    document.body.dataset.linkOpened = 'true';
  } catch (err) {
    if (err instanceof PasscodeError) $('link-passcode-wrap').hidden = false;
    flash(
      err instanceof DecryptionError
        ? 'The files did not decrypt with the key in this link: the link is damaged.'
        : ctx.message(err),
    );
  }
}

/** If the page was opened from a link ('#shlink:/…'): show the viewer; true if so. */
export function showViewerIfLink() {
  if (!location.hash.includes('shlink:/')) return false;
  try {
    payload = decodeLink(location.hash);
  } catch (err) {
    showView('link');
    $('form-link-open').hidden = true;
    flash(err instanceof LinkError ? err.message : 'This link is damaged.');
    return true;
  }
  $('link-label').textContent = payload.label ? `“${payload.label}”` : '';
  $('link-passcode-wrap').hidden = !payload.flag.includes('P');
  if (payload.exp && payload.exp * 1000 < Date.now()) {
    flash('This link has expired (by the date in it); the server will say for sure.');
  }
  if (!reachable(payload.url)) {
    // The page's CSP lets it connect to its own server only (and the configured IPFS
    // gateways): a link to another site opens with its own viewer or the CLI.
    $('form-link-open').hidden = true;
    $('link-foreign').hidden = false;
    $('link-foreign').textContent =
      `This link's records are on another site (${new URL(payload.url).origin}). This page ` +
      'connects only to its own server. Open the link with that site’s viewer, or with ' +
      '`hygieia link open` on your computer.';
  }
  showView('link');
  return true;
}

export function initLinks(context) {
  ctx = context;
  // Another link pasted into the address bar of an open page: start again from it.
  window.addEventListener('hashchange', () => {
    if (location.hash.includes('shlink:/')) location.reload();
  });
  $('rec-link').addEventListener('click', openDialog);
  $('form-link').addEventListener('submit', submitDialog);
  $('link-close').addEventListener('click', () => $('link-dialog').close());
  $('link-copy').addEventListener('click', copyLink);
  $('form-link-open').addEventListener('submit', submitViewer);
}
