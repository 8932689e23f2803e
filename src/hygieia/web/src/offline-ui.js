// The vault without the server (protocol §6), in the page: the offer of the kept
// recovery kits when the API is unreachable, their local unlock (password or recovery
// code), the IPFS gateway setting, and the Settings downloads (recovery kit, whole
// vault as CAR). Offline, nothing is sent to the Hygieia server: the list comes from
// the kit and content from the gateway, every block checked in the page.
import { exportVaultCar } from './car.js';
import { KdfRefusedError, vetKitKdf } from './kdf-trust.js';
import {
  allowedOrigins,
  getGateway,
  normalizeGateway,
  originAllowed,
  setGateway,
} from './gateway.js';
import { buildKit, kitText, listKits, loadKit, parseKit, unlockKit } from './kit.js';
import * as c from './crypto/index.js';
import { session } from './session.js';
import { $, clearFlash, el, flash, invalid, saveBlob, showView, withBusy } from './ui.js';

let ctx = null; // {api, enterVault, message, onSubmit}
// The kit being opened: {account_id, email, created_at, count} of a kept one, or
// {kit, ...} for a kit file the user chose (kept in memory only: an older file must
// not replace the latest kit kept here).
let chosen = null;

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

// ---- the gateway field (Settings and the offline form) -------------------------------

/** Why `text` won't work as a gateway here, or '' if it will. */
function gatewayProblem(text) {
  let url;
  try {
    url = normalizeGateway(text);
  } catch (err) {
    return `Not a gateway URL: ${err.message}.`;
  }
  const origins = allowedOrigins();
  if (origins && !originAllowed(url, origins)) {
    return `This server’s policy does not let the page connect to ${new URL(url).origin}, so the browser will block it. Allowed: ${origins.join(' ')} (the server's HYGIEIA_GATEWAY_ORIGINS).`;
  }
  return '';
}

function showGatewayHint(hint, text) {
  const problem = gatewayProblem(text);
  hint.classList.toggle('warn', Boolean(problem));
  hint.textContent =
    problem ||
    'Raw blocks are fetched from it (/ipfs/{cid}?format=raw) and checked here; it is stored in this browser only.';
}

// ---- the offer on the log-in screen --------------------------------------------------

/** The API did not answer: offer the kits kept here, and opening a kit file. */
export async function offerOffline() {
  const kits = await listKits();
  $('offline-kits').replaceChildren(
    ...kits.map((k) =>
      el(
        'li',
        {},
        el('button', {
          type: 'button',
          class: 'btn',
          'data-account-id': k.account_id,
          text: `Open offline — ${k.email} (${plural(k.count, 'record')}, saved ${when(k.created_at)})`,
          onclick: () => chooseKit(k),
        }),
      ),
    ),
  );
  $('offline-offer').hidden = false;
  return kits.length;
}

/** A kit file the user chose: checked, then offered for unlocking like a kept one. */
async function openKitFile(file) {
  clearFlash();
  let kit;
  try {
    kit = parseKit(await file.text());
  } catch (err) {
    flash(`This file is not a recovery kit this app can open: ${err.message}.`);
    return;
  } finally {
    $('offline-kit-file').value = '';
  }
  const a = kit.account;
  chooseKit({
    account_id: a.id,
    email: a.email,
    created_at: kit.created_at,
    count: kit.records.length,
    kit,
  });
}

export function hideOfflineOffer() {
  $('offline-offer').hidden = true;
}

function chooseKit(k) {
  clearFlash();
  chosen = k;
  $('offline-email').textContent = k.email;
  $('offline-username').value = k.email;
  $('offline-saved').textContent = when(k.created_at);
  $('offline-count').textContent = plural(k.count, 'record');
  $('form-offline').reset();
  $('offline-gateway').value = getGateway();
  useCode(false);
  showView('offline');
  showGatewayHint($('offline-gateway-hint'), $('offline-gateway').value);
}

function useCode(on) {
  $('offline-use-code').checked = on;
  $('offline-password-field').hidden = on;
  $('offline-code-field').hidden = !on;
}

/** Unlock the chosen kit here: its kdf and salt within bounds and floor (kdf-trust.js). */
async function openOffline() {
  const byCode = $('offline-use-code').checked;
  const secret = byCode ? $('offline-code').value : $('offline-password').value;
  if (!secret) {
    return invalid(
      byCode ? $('offline-code') : $('offline-password'),
      byCode ? 'Enter your recovery code.' : 'Enter your password.',
    );
  }
  try {
    setGateway($('offline-gateway').value);
  } catch (err) {
    return invalid($('offline-gateway'), `Not a gateway URL: ${err.message}.`);
  }
  const kit = chosen.kit ?? (await loadKit(chosen.account_id));
  if (!kit) throw new Error('This recovery kit is no longer in this browser.');
  let privateKey;
  try {
    if (byCode) {
      privateKey = await unlockKit(kit, { code: secret });
    } else {
      const a = kit.account;
      const { kdf, salt } = vetKitKdf(a.kdf, a.salt);
      privateKey = await unlockKit(kit, { password: secret, kdf, salt });
    }
  } catch (err) {
    if (err instanceof KdfRefusedError) {
      throw new Error(
        'This recovery kit asks for password protection this app does not accept (weaker than its minimum, or unsupported). Nothing was unlocked.',
        { cause: err },
      );
    }
    if (err instanceof RangeError && byCode) {
      return invalid(
        $('offline-code'),
        'A recovery code has 32 letters and digits in groups of 4.',
      );
    }
    if (err instanceof c.DecryptionError) {
      return byCode
        ? invalid($('offline-code'), 'Wrong recovery code.')
        : invalid($('offline-password'), 'Wrong password.');
    }
    throw err;
  }
  $('form-offline').reset();
  session.offline = true;
  session.kit = kit;
  session.account = kit.account;
  session.privateKey = privateKey;
  session.publicKey = privateKey.toPublic();
  document.body.dataset.offline = 'true';
  $('offline-banner-saved').textContent = when(kit.created_at);
  $('offline-banner-gateway').textContent = getGateway();
  $('offline-banner').hidden = false;
  await ctx.enterVault();
}

/** Leaving the vault: the offline mode ends with it. */
export function leaveOffline() {
  delete document.body.dataset.offline;
  $('offline-banner').hidden = true;
}

// ---- Settings: recovery kit, gateway, CAR --------------------------------------------

function stamp() {
  return new Date().toISOString().slice(0, 10).replaceAll('-', '');
}

function downloadKit() {
  const kit = session.offline
    ? session.kit
    : buildKit({ account: session.account, records: session.records, server: location.origin });
  saveBlob(
    new Blob([kitText(kit)], { type: 'application/json' }),
    `hygieia-recovery-kit-${session.account.fingerprint.slice(-16)}-${stamp()}.json`,
  );
  flash(
    `Recovery kit saved (${plural(kit.records.length, 'record')}). Keep it private: it allows offline password guessing.`,
    { ok: true },
  );
}

async function downloadCar() {
  clearFlash();
  const bar = $('car-progress');
  $('car-progress-wrap').hidden = false;
  bar.value = 0;
  const done = ctx.idle()?.busy() ?? (() => {});
  try {
    const { file, release } = await withBusy('Building the CAR archive…', () =>
      exportVaultCar(ctx.api, session.records, {
        onProgress: (f) => {
          bar.value = Math.round(f * 100);
        },
      }),
    );
    saveBlob(
      new Blob([file], { type: 'application/vnd.ipld.car' }),
      `hygieia-vault-${stamp()}.car`,
    );
    setTimeout(release, 60_000); // the save reads the scratch file
    flash(`CAR archive saved (${plural(session.records.length, 'record')}).`, { ok: true });
  } catch (err) {
    flash(`The CAR archive was not saved: ${ctx.message(err)}`);
  } finally {
    $('car-progress-wrap').hidden = true;
    done();
  }
}

/** Settings opened: show the gateway in use. */
export function fillSettings() {
  $('gw-url').value = getGateway();
  showGatewayHint($('gw-hint'), $('gw-url').value);
}

/** Wire the offline views and the Settings cards; `context`: {api, enterVault, message, onSubmit, idle}. */
export function initOffline(context) {
  ctx = context;
  $('offline-use-code').addEventListener('change', () => useCode($('offline-use-code').checked));
  $('offline-kit-file').addEventListener('change', () => {
    const file = $('offline-kit-file').files[0];
    if (file) openKitFile(file);
  });
  $('offline-cancel').addEventListener('click', () => {
    chosen = null;
    $('form-offline').reset();
    showView('auth');
  });
  $('offline-gateway').addEventListener('input', () =>
    showGatewayHint($('offline-gateway-hint'), $('offline-gateway').value),
  );
  ctx.onSubmit($('form-offline'), 'Unlocking the recovery kit…', openOffline);

  $('kit-download').addEventListener('click', downloadKit);
  $('car-download').addEventListener('click', downloadCar);
  $('gw-url').addEventListener('input', () => showGatewayHint($('gw-hint'), $('gw-url').value));
  ctx.onSubmit($('form-gateway'), 'Saving…', async () => {
    let url;
    try {
      url = setGateway($('gw-url').value);
    } catch (err) {
      return invalid($('gw-url'), `Not a gateway URL: ${err.message}.`);
    }
    $('gw-url').value = url;
    if (session.offline) $('offline-banner-gateway').textContent = url;
    const problem = gatewayProblem(url);
    flash(problem ? `Gateway saved, but: ${problem}` : `Gateway saved: ${url}`, { ok: !problem });
  });
}
