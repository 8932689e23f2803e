// Settings → Two-factor authentication (protocol §10): enrol an authenticator app (QR
// code, first code checked here with otpauth and then by the server) or a passkey
// (passkeys.js), show the backup codes once, list and remove factors, make new backup
// codes. Removing and renewing need the password proof (auth_key, derived here) and a
// current factor: a code, or (with the code left empty) a passkey.
import * as OTPAuth from 'otpauth';
import QRCode from 'qrcode';
import * as accounts from './accounts.js';
import { ApiError } from './api.js';
import { DecryptionError } from './crypto/errors.js';
import { PasskeyError, actionProof, enrolPasskey } from './passkeys.js';
import { session } from './session.js';
import { $, confirmDialog, el, flash, invalid, withBusy } from './ui.js';

let ctx = null;
let enrolment = null; // { factorId, totp } while a new authenticator waits for its code
let hasPasskey = false; // the account has a passkey: an empty code field means "use it"

/** The server's otpauth URI, checked: a TOTP of the usual shape for the secret shown. */
function checkedTotp(started) {
  const parsed = OTPAuth.URI.parse(started.otpauth_uri);
  if (
    !(parsed instanceof OTPAuth.TOTP) ||
    parsed.algorithm !== 'SHA1' ||
    parsed.digits !== 6 ||
    parsed.period !== 30 ||
    parsed.secret.base32 !== started.secret
  ) {
    throw new Error('The server sent an authenticator secret this page does not accept.');
  }
  // Rebuilt here, so the app shows this account's email under "Hygieia".
  return new OTPAuth.TOTP({
    issuer: 'Hygieia',
    label: session.account.email,
    secret: OTPAuth.Secret.fromBase32(started.secret),
  });
}

function showBackupCodes(codes) {
  $('backup-codes-list').replaceChildren(...codes.map((code) => el('li', { text: code })));
  $('backup-codes').hidden = false;
  $('backup-codes-done').focus();
}

function hideEnrolment() {
  enrolment = null;
  $('form-totp').reset();
  $('form-totp').hidden = true;
  $('totp-secret').textContent = '';
  $('totp-qr').removeAttribute('src');
  $('totp-start').hidden = false;
}

/** The password proof and the factor from the card's fields (null if one is missing). */
async function proofs() {
  if (!$('fp-password').value) {
    invalid($('fp-password'), 'Enter your password.');
    return null;
  }
  const code = $('fp-code').value.trim();
  if (!code && !hasPasskey) {
    invalid($('fp-code'), 'Enter a current authenticator code or a backup code.');
    return null;
  }
  try {
    const authKey = await accounts.passwordProof($('fp-password').value);
    const factor = code ? accounts.factorAnswer(code) : await actionProof(ctx.api);
    return { auth_key: authKey, factor };
  } catch (err) {
    if (err instanceof DecryptionError) {
      invalid($('fp-password'), 'Your password is not correct.');
      return null;
    }
    throw err;
  }
}

function proofError(err) {
  if (err instanceof PasskeyError) {
    flash(err.message);
    return false;
  }
  if (err instanceof ApiError && err.status === 401) {
    if (err.code === 'invalid_credentials') {
      return invalid($('fp-password'), 'Your password is not correct.');
    }
    if (!$('fp-code').value.trim() && hasPasskey) {
      flash('The server did not accept that passkey.');
      return false;
    }
    return invalid($('fp-code'), 'That code is not right (or was used already).');
  }
  flash(ctx.message(err));
  return false;
}

async function removeFactor(factor) {
  const ok = await confirmDialog({
    title: 'Remove this second factor?',
    text: `“${factor.label}” will no longer be asked for or accepted at login.`,
    ok: 'Remove',
  });
  if (!ok) return;
  try {
    const body = await proofs();
    if (!body) return;
    await withBusy('Removing…', () => ctx.api.removeFactor(factor.id, body));
    $('form-factor-proof').reset();
    await renderFactors();
    flash('Second factor removed.', { ok: true });
  } catch (err) {
    proofError(err);
  }
}

/** The Settings card: the confirmed factors and how many backup codes are left. */
export async function renderFactors() {
  const listed = await ctx.api.factors();
  const items = listed.factors;
  hasPasskey = items.some((f) => f.kind === 'passkey');
  $('factors-empty').hidden = items.length > 0;
  $('form-factor-proof').hidden = items.length === 0;
  $('fp-email').value = session.account.email;
  $('factors-backup-left').hidden = items.length === 0;
  $('factors-backup-left').textContent = `Backup codes left: ${listed.backup_codes_left}`;
  $('factors-list').replaceChildren(
    ...items.map((f) => {
      const used = f.last_used_at ? new Date(f.last_used_at).toLocaleString() : 'never';
      const kind = f.kind === 'passkey' ? 'passkey' : 'authenticator app';
      const text = `${f.label} · ${kind} · added ${new Date(f.created_at).toLocaleDateString()} · last used ${used}`;
      return el(
        'li',
        { class: 'grant', 'data-factor-id': f.id, 'data-kind': f.kind },
        el('span', {
          class: 'grant-who',
          text,
        }),
        el('button', {
          type: 'button',
          class: 'btn btn-danger',
          text: 'Remove',
          onclick: () => removeFactor(f),
        }),
      );
    }),
  );
}

async function startTotp() {
  try {
    const started = await withBusy('Making a secret…', () => ctx.api.startTotp());
    const totp = checkedTotp(started);
    const svg = await QRCode.toString(totp.toString(), {
      type: 'svg',
      errorCorrectionLevel: 'M',
      margin: 2,
    });
    $('totp-qr').src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
    $('totp-secret').textContent = started.secret;
    enrolment = { factorId: started.factor_id, totp };
    $('totp-start').hidden = true;
    $('form-totp').hidden = false;
    $('totp-code').focus();
  } catch (err) {
    flash(ctx.message(err));
  }
}

export function initFactors(context) {
  ctx = context;
  $('totp-start').addEventListener('click', startTotp);
  $('totp-cancel').addEventListener('click', hideEnrolment);
  $('backup-codes-done').addEventListener('click', () => {
    $('backup-codes-list').replaceChildren();
    $('backup-codes').hidden = true;
  });
  ctx.onSubmit($('form-totp'), 'Checking the code…', async () => {
    if (!enrolment) return;
    const code = $('totp-code').value.replace(/\s+/g, '');
    // Checked here first: a typo or a wrong clock is said at once, without a request.
    if (!/^\d{6}$/.test(code) || enrolment.totp.validate({ token: code, window: 1 }) === null) {
      return invalid($('totp-code'), 'That code does not match: check the app (and its clock).');
    }
    let done;
    try {
      done = await ctx.api.confirmTotp(enrolment.factorId, code);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'factor_invalid') {
        return invalid(
          $('totp-code'),
          'The server did not accept that code: wait for the next one.',
        );
      }
      throw err;
    }
    hideEnrolment();
    await renderFactors();
    if (done.backup_codes) showBackupCodes(done.backup_codes);
    flash('Authenticator app added: logins now ask for its code.', { ok: true });
  });
  ctx.onSubmit($('form-passkey'), 'Waiting for your passkey…', async () => {
    const label = $('passkey-label').value.trim();
    if (!label) return invalid($('passkey-label'), 'Give the passkey a name.');
    let done;
    try {
      done = await enrolPasskey(ctx.api, label);
    } catch (err) {
      if (err instanceof PasskeyError) return flash(err.message);
      throw err;
    }
    $('passkey-label').value = 'Passkey';
    await renderFactors();
    if (done.backup_codes) showBackupCodes(done.backup_codes);
    flash('Passkey added: logins can now use it as the second factor.', { ok: true });
  });
  ctx.onSubmit($('form-factor-proof'), 'Making new backup codes…', async (form) => {
    try {
      const body = await proofs();
      if (!body) return;
      const renewed = await ctx.api.renewBackupCodes(body);
      form.reset();
      await renderFactors();
      showBackupCodes(renewed.backup_codes);
      flash('New backup codes made: the earlier ones no longer work.', { ok: true });
    } catch (err) {
      proofError(err);
    }
  });
}

/** Leaving the vault: nothing of an enrolment or of backup codes stays on the page. */
export function resetFactors() {
  hideEnrolment();
  $('backup-codes-list').replaceChildren();
  $('backup-codes').hidden = true;
  $('factors-list').replaceChildren();
  $('form-factor-proof').reset();
  hasPasskey = false;
}
