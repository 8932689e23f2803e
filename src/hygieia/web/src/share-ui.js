// Sharing views (protocol §7): the Share dialog (one record or several selected), a
// record's grants with "Remove" and "Revoke and re-encrypt", its access trail, and the
// "Shared with me" list. The flows and their checks are in sharing.js and contacts.js.
import { accept, spaced } from './contacts.js';
import { currentRecord, download, showRecord } from './records-ui.js';
import { session } from './session.js';
import {
  acceptOwnerKey,
  loadShared,
  lookupRecipient,
  recordGrants,
  removeShared,
  revokeGrant,
  rotateRecord,
  sharingActivity,
  shareRecords,
} from './sharing.js';
import { $, clearFlash, confirmDialog, el, flash, formatBytes, withBusy } from './ui.js';

let ctx = null; // {api, go, message, idle}
const selected = new Set(); // ids of my records ticked in the list
let targets = []; // the records the Share dialog is for
let found = null; // the recipient's key as looked up (contacts.inspectKey)

function busy() {
  return ctx.idle()?.busy() ?? (() => {});
}

export function titleOf(r) {
  return r.meta?.title || r.meta?.filename || 'Untitled';
}

function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

// ---- selecting records in the list ----

/** The list's checkbox for record `r` (ticked if it was). */
export function selectionBox(r) {
  return el('input', {
    type: 'checkbox',
    class: 'record-select',
    'aria-label': `Select ${titleOf(r)}`,
    checked: selected.has(r.id),
    disabled: !r.meta,
    onchange: (e) => {
      if (e.target.checked) selected.add(r.id);
      else selected.delete(r.id);
      updateSelection();
    },
  });
}

/** Drop ticks of records no longer listed; label the "Share selected" button. */
export function updateSelection() {
  const known = new Set(session.records.map((r) => r.id));
  for (const id of [...selected]) if (!known.has(id)) selected.delete(id);
  const button = $('btn-share-selected');
  button.disabled = selected.size === 0;
  button.textContent = selected.size ? `Share selected (${selected.size})` : 'Share selected';
}

// ---- the Share dialog ----

function dialogError(text) {
  $('share-error').textContent = text;
  $('share-error').hidden = !text;
}

function forgetKey() {
  found = null;
  $('share-key').hidden = true;
  $('share-accept-wrap').hidden = true;
  $('share-accept').checked = false;
  $('share-key-note').classList.remove('key-warning');
  $('share-submit').textContent = 'Look up key';
  $('share-status').textContent = '';
  dialogError('');
}

/** Open the Share dialog for `records` (mine, with readable metadata). */
export function openShareDialog(records) {
  targets = records.filter((r) => r.meta && !r.shared);
  if (!targets.length) return;
  clearFlash();
  $('share-what').textContent =
    targets.length === 1
      ? `“${titleOf(targets[0])}” will be readable by the account you name.`
      : `${targets.length} records (${targets.map((r) => `“${titleOf(r)}”`).join(', ')}) will be readable by the account you name.`;
  $('share-title').textContent = targets.length === 1 ? 'Share record' : 'Share records';
  $('share-email').value = '';
  forgetKey();
  $('share-dialog').showModal();
  $('share-email').focus();
}

function showFoundKey(key) {
  $('share-fingerprint').textContent = spaced(key.fingerprint);
  const note = $('share-key-note');
  if (key.status === 'new') {
    note.textContent = `First time you share with ${key.email} from this browser: compare this fingerprint with the one in their Settings, then share. It is remembered from now on.`;
  } else if (key.status === 'known') {
    note.textContent = `The key you used for ${key.email} before.`;
  } else {
    note.textContent = `Warning: the key for ${key.email} has CHANGED since you last used it (remembered ${spaced(key.remembered)}). This happens if they re-created their account, or if the server is trying to intercept what you share. Nothing is shared with the new key unless you accept it.`;
  }
  note.classList.toggle('key-warning', key.status === 'changed');
  $('share-accept-wrap').hidden = key.status !== 'changed';
  $('share-key').hidden = false;
  $('share-submit').textContent = 'Share';
}

async function lookUp() {
  const email = $('share-email').value.trim();
  if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
    $('share-email').setAttribute('aria-invalid', 'true');
    return dialogError('Enter a valid email address.');
  }
  $('share-status').textContent = 'Looking up their key…';
  found = await lookupRecipient(ctx.api, email);
  $('share-status').textContent = '';
  showFoundKey(found);
}

async function share() {
  const recipient = await accept(found, { acceptNew: $('share-accept').checked });
  const count = targets.length;
  const status = $('share-status');
  const grants = await shareRecords(
    ctx.api,
    targets.map((r) => r.id),
    [recipient],
    {
      onProgress: (i, n, f) => {
        status.textContent = `Checking ${n > 1 ? `record ${i + 1} of ${n}` : 'the record'} and sealing its key for ${recipient.email}… ${Math.round(f * 100)}%`;
      },
    },
  );
  $('share-dialog').close();
  for (const r of targets) selected.delete(r.id);
  updateSelection();
  const what = count === 1 ? `“${titleOf(targets[0])}”` : `${count} records`;
  flash(`Shared ${what} with ${recipient.email} (key ${spaced(recipient.fingerprint)}).`, {
    ok: true,
  });
  const shown = currentRecord();
  if (shown && grants.some((g) => g.record_id === shown.id)) renderSharing(shown);
}

async function submitShare(event) {
  event.preventDefault();
  dialogError('');
  const submit = $('share-submit');
  submit.disabled = true;
  const done = busy();
  try {
    if (found) await share();
    else await lookUp();
  } catch (err) {
    $('share-status').textContent = '';
    dialogError(ctx.message(err));
  } finally {
    submit.disabled = false;
    done();
  }
}

// ---- a record's grants and access trail ----

const EVENTS = {
  'share.granted': 'Shared with',
  'share.revoked': 'Access removed for',
  'share.removed': 'Removed from their list by',
  'share.metadata_read': 'Listed by',
  'share.content_read': 'Opened by',
};

function grantItem(r, g) {
  return el(
    'li',
    { class: 'grant', 'data-grant-id': g.id, 'data-email': g.email },
    el(
      'span',
      { class: 'grant-who' },
      el('strong', { text: g.email }),
      el('br'),
      el('span', {
        class: 'hint',
        text: `key ${spaced(g.fingerprint)} · since ${when(g.created_at)}`,
      }),
    ),
    el('button', {
      type: 'button',
      class: 'btn',
      text: 'Remove',
      'aria-label': `Remove ${g.email}`,
      onclick: () => revoke(r, g),
    }),
    el('button', {
      type: 'button',
      class: 'btn btn-danger',
      text: 'Revoke and re-encrypt',
      'aria-label': `Revoke ${g.email} and re-encrypt`,
      onclick: () => rotate(r, g),
    }),
  );
}

function activityItem(e) {
  const who = e.detail?.recipient ?? '';
  return el('li', {
    'data-event': e.event,
    text: `${EVENTS[e.event] ?? e.event} ${who} · ${when(e.at)}`,
  });
}

/**
 * Show record `r`'s grants and sharing events (nothing for a record shared with me,
 * nor offline: the offline mode never calls the server).
 */
export async function renderSharing(r) {
  const box = $('rec-sharing');
  box.hidden = Boolean(r.shared || session.offline);
  $('rec-grants').replaceChildren();
  $('rec-activity').replaceChildren();
  if (r.shared || session.offline) return;
  box.dataset.loading = 'true';
  try {
    const [grants, events] = await Promise.all([
      recordGrants(ctx.api, r.id),
      sharingActivity(ctx.api, { recordId: r.id }),
    ]);
    if (currentRecord() !== r) return;
    $('rec-grants').replaceChildren(...grants.map((g) => grantItem(r, g)));
    $('rec-grants-empty').hidden = grants.length !== 0;
    $('rec-activity').replaceChildren(...events.map(activityItem));
    $('rec-activity-empty').hidden = events.length !== 0;
  } catch (err) {
    if (currentRecord() === r) flash(`Its sharing could not be loaded: ${ctx.message(err)}`);
  } finally {
    delete box.dataset.loading;
  }
}

async function revoke(r, g) {
  const ok = await confirmDialog({
    title: 'Remove access?',
    text: `${g.email} can no longer open “${titleOf(r)}” from this server. If they may have kept its key, use “Revoke and re-encrypt” instead.`,
    ok: 'Remove',
  });
  if (!ok) return;
  clearFlash();
  try {
    await revokeGrant(ctx.api, g);
    flash(`${g.email} can no longer open “${titleOf(r)}”.`, { ok: true });
  } catch (err) {
    flash(ctx.message(err));
  }
  if (currentRecord() === r) await renderSharing(r);
}

async function rotate(r, g) {
  const ok = await confirmDialog({
    title: 'Revoke and re-encrypt?',
    text: `“${titleOf(r)}” is encrypted again under a new key as a new record (new content ID), shared again with everyone else, and the old copy deleted. ${g.email} loses access, even with a key they kept.`,
    ok: 'Re-encrypt',
  });
  if (!ok) return;
  clearFlash();
  const bar = $('rec-progress');
  $('rec-progress-label').textContent = 'Re-encrypting…';
  $('rec-progress-wrap').hidden = false;
  const done = busy();
  try {
    const result = await withBusy('Re-encrypting the record…', () =>
      rotateRecord(ctx.api, r.id, {
        without: [g.email],
        onProgress: (phase, f) => {
          bar.value = Math.round(f * 100);
          $('rec-progress-label').textContent =
            { decrypt: 'Downloading and checking…', encrypt: 'Encrypting again…' }[phase] ??
            'Uploading…';
        },
      }),
    );
    await ctx.go('records');
    const fresh = session.records.find((x) => x.id === result.newId);
    if (fresh) await showRecord(fresh);
    const others = result.recipients.length;
    flash(
      `Re-encrypted “${titleOf(r)}” as a new record; ${g.email} can no longer open it${others ? `, ${others} other${others === 1 ? '' : 's'} still can` : ''}.`,
      { ok: true },
    );
  } catch (err) {
    flash(
      `Re-encryption stopped: ${ctx.message(err)} Run it again to carry on; the old record stays until the new one is complete.`,
    );
  } finally {
    $('rec-progress-wrap').hidden = true;
    done();
  }
}

// ---- shared with me ----

function sharedItem(r) {
  const m = r.meta;
  const title = m ? titleOf(r) : 'Refused record';
  const sub = el('div', { class: 'record-sub' });
  if (m) {
    sub.append(
      el('span', { class: 'shared-by', text: `Shared by ${r.owner.email}` }),
      el('span', { class: 'fingerprint', text: `key ${spaced(r.owner.fingerprint)}` }),
      el('span', { text: `on ${when(r.granted_at)}` }),
    );
    if (m.date) sub.append(el('span', { text: m.date }));
    if (m.type) sub.append(el('span', { text: m.type }));
    sub.append(el('span', { text: formatBytes(m.size) }));
    for (const t of m.tags ?? []) sub.append(el('span', { class: 'tag', text: t }));
  } else {
    sub.append(
      el('span', { text: `Shared by ${r.claimedOwner?.email} (so the server says)` }),
      el('span', { class: 'refused', text: `Refused: ${r.refused}` }),
    );
  }
  const actions = el('div', { class: 'record-actions' });
  if (r.keyChanged) {
    actions.append(
      el('button', {
        type: 'button',
        class: 'btn',
        text: 'Accept new key',
        onclick: () => acceptKey(r),
      }),
    );
  }
  actions.append(
    el('button', {
      type: 'button',
      class: 'btn btn-ghost',
      text: 'Download',
      disabled: !m,
      'aria-label': `Download ${title}`,
      onclick: () => download(r),
    }),
    el('button', {
      type: 'button',
      class: 'btn btn-ghost',
      text: 'Remove from my list',
      'aria-label': `Remove ${title} from my list`,
      onclick: () => removeFromList(r),
    }),
  );
  return el(
    'li',
    { class: 'record', 'data-record-id': r.id, 'data-owner': r.claimedOwner?.email },
    el('button', {
      type: 'button',
      class: 'record-open',
      text: title,
      disabled: !m,
      onclick: () => showRecord(r),
    }),
    actions,
    sub,
  );
}

/** Load and show the records shared with me. */
export async function renderShared() {
  const items = await loadShared(ctx.api);
  $('shared-list').replaceChildren(...items.map(sharedItem));
  $('shared-empty').hidden = items.length !== 0;
  $('shared-count').textContent = items.length
    ? `${items.length} record${items.length === 1 ? '' : 's'} shared with you`
    : '';
}

async function acceptKey(r) {
  const e = r.keyChanged;
  const ok = await confirmDialog({
    title: `Accept ${e.email}’s new key?`,
    text: `Remembered ${spaced(e.remembered)}, now ${spaced(e.presented)}. Accept it only if ${e.email} confirmed the new fingerprint to you, not through this server.`,
    ok: 'Accept new key',
  });
  if (!ok) return;
  try {
    await acceptOwnerKey(r);
    await ctx.go('shared');
  } catch (err) {
    flash(ctx.message(err));
  }
}

export async function removeFromList(r) {
  const ok = await confirmDialog({
    title: 'Remove from your list?',
    text: `“${r.meta ? titleOf(r) : 'This record'}” is removed from the records shared with you. It stays its owner’s; they can share it again.`,
    ok: 'Remove',
  });
  if (!ok) return;
  try {
    await removeShared(ctx.api, r);
    await ctx.go('shared');
    flash('Removed from your list.', { ok: true });
  } catch (err) {
    flash(ctx.message(err));
  }
}

/** Forget the selection, the dialog and the shared list (on lock and log-out). */
export function resetSharing() {
  selected.clear();
  targets = [];
  found = null;
  $('shared-list').replaceChildren();
  $('shared-count').textContent = '';
  $('rec-grants').replaceChildren();
  $('rec-activity').replaceChildren();
  $('btn-share-selected').disabled = true;
  $('btn-share-selected').textContent = 'Share selected';
}

export function initSharing(context) {
  ctx = context;
  $('form-share').addEventListener('submit', submitShare);
  $('share-email').addEventListener('input', () => {
    $('share-email').removeAttribute('aria-invalid');
    if (found) forgetKey();
  });
  $('share-cancel').addEventListener('click', () => $('share-dialog').close());
  $('btn-share-selected').addEventListener('click', () =>
    openShareDialog(session.records.filter((r) => selected.has(r.id))),
  );
  $('rec-share').addEventListener('click', () => {
    const r = currentRecord();
    if (r) openShareDialog([r]);
  });
  $('rec-remove-shared').addEventListener('click', () => {
    const r = currentRecord();
    if (r?.shared) removeFromList(r);
  });
}
