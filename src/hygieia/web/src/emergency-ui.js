// Settings → Emergency access (protocol §8): the owner adds, approves, denies and removes
// contacts and sees pending requests; the contact asks for access and, once granted,
// reads the owner's records in a read-only view (view-emergency).
import { ContactKeyRefused, spaced } from './contacts.js';
import * as em from './emergency.js';
import { session } from './session.js';
import {
  $,
  clearFlash,
  el,
  flash,
  formatBytes,
  invalid,
  saveBlob,
  showView,
  withBusy,
} from './ui.js';

let ctx = null; // {api, message, onSubmit}
let inspected = null; // the contact key looked up in the form, until it is used

function when(at) {
  return at ? new Date(at).toLocaleString() : '';
}

/** Run an action from a button with the busy indicator; errors flashed. */
async function act(text, fn) {
  clearFlash();
  try {
    await withBusy(text, fn);
  } catch (err) {
    flash(ctx.message(err));
  }
}

/** The pending-request notice at the top of the page (the owner is told in the app). */
function showNotice(contacts) {
  const pending = contacts.filter((x) => x.status === 'requested');
  const box = $('emergency-notice');
  box.hidden = !pending.length;
  box.textContent = pending
    .map(
      (x) =>
        `${x.email} asked for emergency access to your vault on ${when(x.requested_at)}; it opens to them on ${when(x.release_at)} unless you deny it in Settings → Emergency access.`,
    )
    .join(' ');
}

/** After log-in and unlock: tell the owner about pending requests. */
export async function checkEmergencyRequests() {
  if (session.offline) return;
  try {
    showNotice(await em.listContacts(ctx.api));
  } catch {
    /* the settings page shows it again */
  }
}

function contactItem(x) {
  const status = {
    idle: `Waiting period ${x.wait_days} days. No request.`,
    requested: `Asked for access on ${when(x.requested_at)}: it opens on ${when(x.release_at)} unless you deny it.`,
    granted: 'Can read your records now.',
  }[x.status];
  const buttons = [];
  if (x.status === 'requested') {
    buttons.push(
      el('button', {
        type: 'button',
        class: 'btn',
        text: 'Approve now',
        onclick: () =>
          act('Approving…', () => em.approveContact(ctx.api, x).then(renderEmergencySettings)),
      }),
      el('button', {
        type: 'button',
        class: 'btn btn-danger',
        text: 'Deny',
        onclick: () =>
          act('Denying…', () => em.denyContact(ctx.api, x).then(renderEmergencySettings)),
      }),
    );
  }
  if (x.status === 'granted') {
    buttons.push(
      el('button', {
        type: 'button',
        class: 'btn btn-danger',
        text: 'End access',
        onclick: () =>
          act('Ending…', () => em.denyContact(ctx.api, x).then(renderEmergencySettings)),
      }),
    );
  }
  buttons.push(
    el('button', {
      type: 'button',
      class: 'btn',
      text: 'Remove',
      onclick: () =>
        act('Removing…', () => em.removeContact(ctx.api, x).then(renderEmergencySettings)),
    }),
  );
  return el(
    'li',
    { 'data-contact': x.email, 'data-status': x.status },
    el('strong', { text: x.email }),
    ' ',
    el('code', { class: 'fingerprint', text: spaced(x.fingerprint) }),
    el('p', { class: 'hint', text: status }),
    el('div', { class: 'row' }, ...buttons),
  );
}

function accessItem(a) {
  const status = {
    idle: `You may ask for access; it opens after ${a.wait_days} days unless they refuse.`,
    requested: `Asked on ${when(a.requested_at)}: it opens on ${when(a.release_at)} unless they refuse.`,
    granted: 'Access granted: read-only.',
  }[a.status];
  const button =
    a.status === 'granted'
      ? el('button', {
          type: 'button',
          class: 'btn btn-primary',
          text: 'Open their records',
          onclick: () => act('Checking their keys…', () => openOwner(a)),
        })
      : a.status === 'idle'
        ? el('button', {
            type: 'button',
            class: 'btn',
            text: 'Request access',
            onclick: () =>
              act('Asking…', () => em.requestAccess(ctx.api, a).then(renderEmergencySettings)),
          })
        : null;
  return el(
    'li',
    { 'data-owner': a.owner.email, 'data-status': a.status },
    el('strong', { text: a.owner.email }),
    el('p', { class: 'hint', text: status }),
    button ? el('div', { class: 'row' }, button) : null,
  );
}

/** Fill the Settings card: my contacts (with their requests) and the vaults I may ask for. */
export async function renderEmergencySettings() {
  if (session.offline) return;
  const [contacts, access] = await Promise.all([em.listContacts(ctx.api), em.listAccess(ctx.api)]);
  $('em-contacts').replaceChildren(...contacts.map(contactItem));
  $('em-contacts-empty').hidden = contacts.length > 0;
  $('em-access').replaceChildren(...access.map(accessItem));
  $('em-access-empty').hidden = access.length > 0;
  showNotice(contacts);
  document.body.dataset.emergency = 'ready'; // for the tests
}

function recordItem(vault, r) {
  const m = r.meta;
  const download = async () => {
    const { blob, meta, release } = await em.openOwnerRecord(ctx.api, vault, r);
    try {
      saveBlob(blob, meta.filename || `${r.id}.bin`);
    } finally {
      setTimeout(release, 60_000);
    }
  };
  return el(
    'li',
    { class: 'record', 'data-id': r.id },
    el('strong', { text: m ? m.title : `Refused: ${r.refused}` }),
    m
      ? el('span', {
          class: 'hint',
          text: ` ${m.date ?? ''} ${m.type ?? ''} ${formatBytes(m.size)}`,
        })
      : null,
    m
      ? el('button', {
          type: 'button',
          class: 'btn',
          text: 'Download',
          onclick: () => act('Decrypting and checking…', download),
        })
      : null,
  );
}

async function openOwner(access) {
  const vault = await em.openVault(ctx.api, access);
  const records = await em.loadOwnerRecords(ctx.api, vault);
  $('em-owner').textContent = vault.owner.email;
  $('em-owner-fpr').textContent = spaced(vault.owner.fingerprint);
  $('em-count').textContent = `${records.length} record${records.length === 1 ? '' : 's'}`;
  $('em-records').replaceChildren(...records.map((r) => recordItem(vault, r)));
  showView('emergency');
}

function showKey(found) {
  $('em-key').hidden = false;
  $('em-fingerprint').textContent = spaced(found.fingerprint);
  $('em-key-note').textContent = {
    new: 'New contact: compare this fingerprint with them through another channel.',
    known: 'The key you used before for this email.',
    changed: `This is NOT the key remembered for ${found.email} (${spaced(found.remembered ?? '')}). They may have re-created their account, or the server may be trying to intercept your vault.`,
  }[found.status];
  $('em-accept-wrap').hidden = found.status !== 'changed';
}

export function initEmergency(context) {
  ctx = context;
  $('em-back').addEventListener('click', () => {
    session.emergency?.privateKey?.clearPrivateParams?.();
    session.emergency = null;
    $('em-records').replaceChildren();
    ctx.go('settings');
  });
  $('em-email').addEventListener('input', () => {
    inspected = null;
    $('em-key').hidden = true;
  });
  ctx.onSubmit($('form-emergency'), 'Encrypting your vault key for them…', async (form) => {
    const email = $('em-email').value.trim();
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
      return invalid($('em-email'), 'Enter a valid email address.');
    }
    const wait = Number($('em-wait').value);
    if (!Number.isInteger(wait) || wait < 1 || wait > 30) {
      return invalid($('em-wait'), 'A waiting period of 1 to 30 days.');
    }
    if (!$('em-password').value) return invalid($('em-password'), 'Enter your password.');
    if (!inspected || inspected.email !== email.toLowerCase()) {
      inspected = await em.lookupContact(ctx.api, email);
      showKey(inspected);
    }
    if (inspected.status === 'changed' && !$('em-accept').checked) {
      throw new ContactKeyRefused(
        `The key for ${inspected.email} has changed: check it with them, then tick the box.`,
      );
    }
    try {
      await em.addContact(ctx.api, inspected, {
        waitDays: wait,
        password: $('em-password').value,
        acceptNew: $('em-accept').checked,
      });
    } catch (err) {
      if (err?.name === 'DecryptionError') return invalid($('em-password'), 'Wrong password.');
      throw err;
    }
    const added = inspected;
    inspected = null;
    form.reset();
    $('em-key').hidden = true;
    await renderEmergencySettings();
    flash(`${added.email} is an emergency contact (key ${spaced(added.fingerprint)}).`, {
      ok: true,
    });
  });
}
