// Entry point of the browser client: wires the views to the account and record flows.
import * as accounts from './accounts.js';
import { initActivity, renderActivity, renderSessions } from './activity-ui.js';
import { Api, ApiError } from './api.js';
import { DecryptionError } from './crypto/errors.js';
import { checkEmergencyRequests, initEmergency, renderEmergencySettings } from './emergency-ui.js';
import { initFactors, renderFactors, resetFactors } from './factors-ui.js';
import { rememberAllowedOrigins } from './gateway.js';
import { KdfRefusedError } from './kdf-trust.js';
import {
  fillSettings,
  hideOfflineOffer,
  initOffline,
  leaveOffline,
  offerOffline,
} from './offline-ui.js';
import { PasskeyError, actionProof } from './passkeys.js';
import { passwordProblem } from './passwords.js';
import { initRecords, leaveRecord, renderRecords, resetRecordsView } from './records-ui.js';
import { sweepScratch } from './scratch.js';
import { initLinks, renderLinks, showViewerIfLink } from './link-ui.js';
import { rotateKeys, rotateRecoveryCode, rotationState, RotationError } from './rotation.js';
import { renderShared } from './share-ui.js';
import { clearSession, idleTimer, isUnlocked, lockKeys, session } from './session.js';
import { $, clearFlash, flash, invalid, saveBlob, showView, withBusy } from './ui.js';

// For the browser tests (page.evaluate(() => import('/app/main.js'))): the recipes
// only, never the session.
export * as crypto from './crypto/index.js';
// The SMART Health Link format (pure functions; links.js), for the spec-vector test.
export { decodeLink, encodePayload } from './links.js';

const api = new Api({ onUnauthorized: () => expire() });
let idle = null;
let pendingSignup = null;
let pendingLogin = null; // a login that waits for its second factor

/** The Hygieia API did not answer (no connection, or a proxy in front of a stopped one). */
function unreachable(err) {
  return err instanceof ApiError && [0, 502, 504].includes(err.status);
}

function message(err) {
  if (err instanceof DecryptionError) {
    return err.message === 'could not decrypt or verify'
      ? 'Decryption failed.'
      : `${err.message[0].toUpperCase()}${err.message.slice(1)}.`;
  }
  if (err instanceof ApiError) {
    if (err.status === 0) {
      return $('offline-offer').hidden
        ? 'The server cannot be reached. Check your connection.'
        : 'The server cannot be reached. You can open your records offline below.';
    }
    if (err.status === 429) return 'Too many attempts. Wait a few minutes and try again.';
    return err.detail || err.message;
  }
  if (err?.name === 'AbortError') return 'Cancelled.';
  if (err?.name === 'LinkError' || err?.name === 'PasscodeError') return err.message;
  return err?.message || String(err);
}

/** Run a form's action with busy state and error reporting. */
function onSubmit(form, text, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFlash();
    try {
      await withBusy(text, () => action(form), form);
    } catch (err) {
      flash(message(err));
    }
  });
}

// ---- entering and leaving the vault ----

async function enterVault() {
  $('nav').hidden = false;
  $('nav-email').textContent = session.account.email;
  $('set-fingerprint').textContent = session.account.fingerprint.replace(/(.{4})/g, '$1 ').trim();
  $('unlock-email').value = session.account.email;
  $('pw-email').value = session.account.email;
  $('del-username').value = session.account.email;
  $('rot-email').value = session.account.email;
  $('nrc-email').value = session.account.email;
  $('nrc-result').hidden = true;
  for (const f of document.querySelectorAll('#view-auth form')) f.reset();
  idle?.stop();
  idle = idleTimer(session.config.idle_lock_seconds, lock);
  await go('records');
  await checkEmergencyRequests();
}

/**
 * The one way out of the unlocked vault (idle lock, log-out, ended session): stop the
 * idle timer, forget the keys and every decrypted record, delete this tab's scratch
 * files, close any dialog and hide the navigation. An idle lock keeps the account, so
 * the password unlocks it again; every other way out forgets it too. Returns the
 * sweep, for callers that must not go on before it ends.
 */
function leaveVault({ keepAccount = false } = {}) {
  idle?.stop();
  idle = null;
  if (keepAccount) lockKeys();
  else {
    clearSession();
    leaveOffline();
  }
  resetRecordsView();
  const swept = sweepScratch();
  clearFlash();
  document.querySelector('dialog[open]')?.close();
  $('nav').hidden = true;
  $('emergency-notice').hidden = true;
  $('em-records').replaceChildren();
  resetFactors();
  return swept;
}

function showLogin() {
  clearFlash();
  showView('auth');
  selectTab('login');
}

export function lock() {
  if (!isUnlocked()) return;
  leaveVault({ keepAccount: true });
  showView('locked');
  flash('Locked after inactivity. Enter your password to continue.', { ok: true });
}

async function logout() {
  const swept = leaveVault();
  try {
    await accounts.logout(api);
  } catch {
    /* the token is forgotten either way */
  }
  await swept; // the log-in form shows once nothing decrypted is left on disk
  showLogin();
}

/** The server refused our token (expired or revoked): start again from the log-in. */
function expire() {
  api.token = null;
  leaveVault();
  showLogin();
  flash('Your session ended. Please log in again.');
}

async function go(view) {
  clearFlash();
  if (!isUnlocked()) return;
  if (view !== 'record') leaveRecord();
  const lists = {
    records: ['Decrypting your records…', () => renderRecords(api), 'Your records'],
    shared: ['Checking records shared with you…', renderShared, 'Records shared with you'],
  };
  if (lists[view]) {
    const [busyText, render, what] = lists[view];
    showView(view);
    document.body.dataset.loading = view; // set at once, so tests can wait on it
    try {
      await withBusy(busyText, render);
    } catch (err) {
      // A session the server ended has left the vault already, and said so.
      if (isUnlocked()) flash(`${what} could not be loaded: ${message(err)}`);
    } finally {
      delete document.body.dataset.loading;
    }
  } else {
    if (view === 'settings') {
      fillSettings();
      if (!session.offline) {
        renderLinks().catch((err) => flash(`Share links could not be loaded: ${message(err)}`));
        showRotationState().catch(() => {});
        renderFactors().catch((err) => {
          if (isUnlocked()) flash(`Second factors could not be loaded: ${message(err)}`);
        });
        renderSessions().catch((err) => {
          if (isUnlocked()) flash(`Sessions could not be loaded: ${message(err)}`);
        });
      }
    }
    if (view === 'activity') {
      renderActivity().catch((err) => {
        if (isUnlocked()) flash(`Activity could not be loaded: ${message(err)}`);
      });
    }
    showView(view);
    if (view === 'settings') {
      delete document.body.dataset.emergency;
      renderEmergencySettings().catch((err) => {
        if (isUnlocked()) flash(`Emergency access could not be loaded: ${message(err)}`);
      });
    }
  }
}

// ---- auth tabs ----

const TABS = ['login', 'signup', 'recover'];
function selectTab(name, { focus = false } = {}) {
  // Any tab ends a login that waited for its second factor.
  pendingLogin?.discard();
  pendingLogin = null;
  $('form-factor').hidden = true;
  for (const t of TABS) {
    const tab = $(`tab-${t}`);
    tab.setAttribute('aria-selected', String(t === name));
    tab.tabIndex = t === name ? 0 : -1;
    $(`form-${t}`).hidden = t !== name;
  }
  if (focus) $(`tab-${name}`).focus();
}

function initTabs() {
  for (const t of TABS) {
    $(`tab-${t}`).addEventListener('click', () => {
      clearFlash();
      selectTab(t);
    });
    $(`tab-${t}`).addEventListener('keydown', (e) => {
      const i = TABS.indexOf(t);
      const next = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (next) {
        e.preventDefault();
        selectTab(TABS[(i + next + TABS.length) % TABS.length], { focus: true });
      } else if (e.key === 'Home' || e.key === 'End') {
        e.preventDefault();
        selectTab(e.key === 'Home' ? TABS[0] : TABS[TABS.length - 1], { focus: true });
      }
    });
  }
}

function checkEmail(input) {
  return (
    /^[^@\s]+@[^@\s]+$/.test(input.value.trim()) || invalid(input, 'Enter a valid email address.')
  );
}

/** Length and strength (passwords.js), then the repetition; `email` counts as guessable. */
// The sign-up and recovery forms name their fields `${form}-email`, `-password`, `-password2`.
function checkNewAccountPassword(form) {
  return checkNewPassword($(`${form}-password`), $(`${form}-password2`), $(`${form}-email`).value);
}

async function checkNewPassword(pw, pw2, email) {
  const problem = await passwordProblem(pw.value, email ? [email.trim().toLowerCase()] : []);
  if (problem) return invalid(pw, problem);
  return pw.value === pw2.value || invalid(pw2, 'The two passwords differ.');
}

function initLogin() {
  onSubmit($('form-login'), 'Deriving your keys…', async () => {
    if (!checkEmail($('login-email'))) return;
    if (!$('login-password').value) return invalid($('login-password'), 'Enter your password.');
    let result;
    try {
      result = await accounts.login(api, {
        email: $('login-email').value,
        password: $('login-password').value,
        acceptNewSalt: !$('login-salt-confirm').hidden && $('login-accept-salt').checked,
      });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        throw new Error('Email or password is incorrect.', { cause: err });
      }
      if (unreachable(err)) await offerOffline();
      // Salts never change, but an account can be re-created: let the user say so.
      if (err instanceof KdfRefusedError && err.reason === 'salt-changed') {
        $('login-accept-salt').checked = false;
        $('login-salt-confirm').hidden = false;
      }
      throw err;
    }
    $('login-salt-confirm').hidden = true;
    $('login-accept-salt').checked = false;
    if (result.factorRequired) {
      showFactorStep(result);
      return;
    }
    await enterVault();
  });
}

/** The login's second step: the password was right, a code is owed (protocol §10). */
function showFactorStep(pending) {
  pendingLogin = pending;
  $('login-password').value = '';
  $('form-login').hidden = true;
  $('form-factor').hidden = false;
  $('factor-code').value = '';
  const passkey = pending.methods.includes('passkey');
  $('factor-passkey-wrap').hidden = !passkey;
  if (passkey) $('factor-passkey').focus();
  else $('factor-code').focus();
}

/** "Use passkey": the browser asks the authenticator, the server checks its answer. */
async function usePasskey() {
  clearFlash();
  if (!pendingLogin) return endFactorStep();
  try {
    await withBusy(
      'Waiting for your passkey…',
      () => pendingLogin.finishWithPasskey(),
      $('form-factor'),
    );
  } catch (err) {
    if (err instanceof PasskeyError) return flash(err.message);
    if (err instanceof ApiError && err.code === 'factor_invalid') {
      return flash(
        'The server did not accept that passkey: it is not one enrolled for this account.',
      );
    }
    if (err instanceof ApiError && err.code === 'factor_expired') {
      endFactorStep();
      return flash('The login step expired: log in again.');
    }
    return flash(message(err));
  }
  pendingLogin = null;
  $('form-factor').hidden = true;
  await enterVault();
}

function endFactorStep() {
  pendingLogin?.discard();
  pendingLogin = null;
  $('form-factor').reset();
  $('form-factor').hidden = true;
  selectTab('login');
}

function initFactorStep() {
  $('factor-cancel').addEventListener('click', () => {
    clearFlash();
    endFactorStep();
  });
  $('factor-passkey').addEventListener('click', usePasskey);
  onSubmit($('form-factor'), 'Checking the code…', async () => {
    const code = $('factor-code').value.trim();
    if (!code) return invalid($('factor-code'), 'Enter the code from your app or a backup code.');
    if (!pendingLogin) return endFactorStep();
    try {
      await pendingLogin.finish(code);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'factor_invalid') {
        $('factor-code').value = '';
        return invalid($('factor-code'), 'That code is not right (or was used already).');
      }
      if (err instanceof ApiError && err.code === 'factor_expired') {
        endFactorStep();
        throw new Error('The login step expired: log in again.', { cause: err });
      }
      throw err;
    }
    pendingLogin = null;
    $('form-factor').hidden = true;
    await enterVault();
  });
}

/** Back to the sign-up form: the prepared keys and the recovery code are dropped. */
function abandonSignup() {
  pendingSignup?.discard();
  pendingSignup = null;
  $('rc-code').textContent = '';
  showView('auth');
  selectTab('signup');
}

function initSignup() {
  onSubmit($('form-signup'), 'Creating your keys…', async () => {
    if (!checkEmail($('signup-email'))) return;
    if (!(await checkNewAccountPassword('signup'))) return;
    pendingSignup = await accounts.prepareSignup(api, {
      email: $('signup-email').value,
      password: $('signup-password').value,
    });
    $('signup-password').value = '';
    $('signup-password2').value = '';
    showRecoveryCode(pendingSignup.code);
  });
}

function showRecoveryCode(code) {
  $('rc-code').textContent = code;
  $('rc-saved').checked = false;
  $('rc-continue').disabled = true;
  showView('recovery-code');
}

async function copyRecoveryCode() {
  try {
    await navigator.clipboard.writeText($('rc-code').textContent);
    flash('Recovery code copied.', { ok: true });
  } catch {
    flash('Copying is not allowed here: select the code and copy it yourself.');
  }
}

function downloadRecoveryCode() {
  const text = `Hygieia recovery code for ${$('signup-email').value.trim()}\n\n${$('rc-code').textContent}\n\nKeep it safe: it can set a new password for your account.\n`;
  saveBlob(new Blob([text], { type: 'text/plain' }), 'hygieia-recovery-code.txt');
}

/** The recovery code view: the account is created only once the user saved the code. */
function initRecoveryCode() {
  $('rc-saved').addEventListener('change', () => {
    $('rc-continue').disabled = !$('rc-saved').checked;
  });
  $('rc-copy').addEventListener('click', copyRecoveryCode);
  $('rc-download').addEventListener('click', downloadRecoveryCode);
  $('rc-cancel').addEventListener('click', abandonSignup);
  onSubmit($('form-rc-confirm'), 'Creating your account…', async () => {
    if (!$('rc-saved').checked) return;
    try {
      await pendingSignup.submit();
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        abandonSignup();
        throw new Error('An account with this email already exists.', { cause: err });
      }
      throw err;
    }
    pendingSignup = null;
    $('rc-code').textContent = '';
    await enterVault();
    flash('Account created. Your records are encrypted with keys only you hold.', { ok: true });
  });
}

function checkRecoveryCode(input) {
  return (
    /^[A-Za-z2-7\s-]{32,48}$/.test(input.value.trim()) ||
    invalid(input, 'A recovery code has 32 letters and digits in groups of 4.')
  );
}

function initRecover() {
  onSubmit($('form-recover'), 'Recovering your account…', async () => {
    if (!checkEmail($('recover-email'))) return;
    if (!checkRecoveryCode($('recover-code'))) return;
    if (!(await checkNewAccountPassword('recover'))) return;
    let recovered;
    try {
      recovered = await accounts.recover(api, {
        email: $('recover-email').value,
        code: $('recover-code').value,
        password: $('recover-password').value,
      });
    } catch (err) {
      if (
        (err instanceof ApiError && err.status === 401) ||
        err instanceof RangeError ||
        err instanceof DecryptionError
      ) {
        throw new Error('The email or recovery code is not correct.', { cause: err });
      }
      throw err;
    }
    await enterVault();
    flash(
      recovered.factorsRemoved
        ? 'New password set. Other devices were logged out, and your second factors were removed: add them again in Settings.'
        : 'New password set. Other devices were logged out.',
      { ok: true },
    );
  });
}

/** The locked view: the password unlocks the key again, or the user logs out. */
function initUnlock() {
  onSubmit($('form-unlock'), 'Unlocking…', async () => {
    try {
      await accounts.unlock({ password: $('unlock-password').value });
    } catch (err) {
      if (err instanceof DecryptionError) return invalid($('unlock-password'), 'Wrong password.');
      throw err;
    }
    $('unlock-password').value = '';
    await enterVault();
  });
  $('btn-locked-logout').addEventListener('click', logout);
}

function initAuth() {
  initTabs();
  initLogin();
  initFactorStep();
  initSignup();
  initRecoveryCode();
  initRecover();
  initUnlock();
}

function initSettings() {
  onSubmit($('form-password'), 'Changing your password…', async (form) => {
    if (!$('pw-current').value) return invalid($('pw-current'), 'Enter your current password.');
    if (!(await checkNewPassword($('pw-new'), $('pw-new2'), session.account.email))) return;
    try {
      await accounts.changePassword(api, {
        current: $('pw-current').value,
        next: $('pw-new').value,
      });
    } catch (err) {
      if (err instanceof DecryptionError || (err instanceof ApiError && err.status === 401)) {
        return invalid($('pw-current'), 'Your current password is not correct.');
      }
      throw err;
    }
    form.reset();
    flash('Password changed. Other devices were logged out.', { ok: true });
  });

  onSubmit($('form-export'), 'Protecting your key…', async (form) => {
    if (!$('ex-pass').value) {
      return invalid($('ex-pass'), 'Choose a passphrase for the exported key.');
    }
    if ($('ex-pass').value !== $('ex-pass2').value) {
      return invalid($('ex-pass2'), 'The two passphrases differ.');
    }
    const problem = await accounts.exportPassphraseProblem($('ex-pass').value);
    if (problem) return invalid($('ex-pass'), problem);
    const armored = await accounts.exportSecretKey($('ex-pass').value);
    form.reset();
    saveBlob(
      new Blob([armored], { type: 'application/pgp-keys' }),
      `hygieia-${session.account.fingerprint.slice(-16)}-secret.asc`,
    );
    flash(
      'Secret key exported, locked with the passphrase you just chose (not your account password). Import it with: gpg --import',
      { ok: true },
    );
  });
  initDelete();
  $('ex-public').addEventListener('click', () => {
    saveBlob(
      new Blob([accounts.exportPublicKey()], { type: 'application/pgp-keys' }),
      `hygieia-${session.account.fingerprint.slice(-16)}-public.asc`,
    );
  });
}

const CODE_NEEDED = 'Enter a code from your authenticator app (or a backup code).';

/**
 * The second factor a sensitive form proves (deleting the account, rotating the keys or
 * the recovery code; its fields `${prefix}-factor` in `${prefix}-factor-wrap`): the typed
 * code; the code left empty on a passkey account: a function making a passkey assertion;
 * null for an account without factors. Undefined: a code is needed (the field is shown).
 */
async function formFactor(prefix) {
  const code = $(`${prefix}-factor`).value.trim();
  if (code) return accounts.factorAnswer(code);
  const { factors } = await api.factors();
  if (factors.some((f) => f.kind === 'passkey')) return () => actionProof(api);
  if (!factors.length) return null;
  $(`${prefix}-factor-wrap`).hidden = false;
  invalid($(`${prefix}-factor`), CODE_NEEDED);
  return undefined;
}

/** After a sensitive form failed: true when the server refused its factor (said so). */
function factorRefused(prefix, err, factor, nothingDone) {
  if (err instanceof PasskeyError) {
    flash(err.message);
    return true;
  }
  if (!(err instanceof ApiError)) return false;
  if (typeof factor === 'function' && err.status === 401 && err.code !== 'invalid_credentials') {
    flash(`The server did not accept that passkey. ${nothingDone}`);
    return true;
  }
  if (!err.code?.startsWith('factor_')) return false;
  $(`${prefix}-factor-wrap`).hidden = false;
  invalid(
    $(`${prefix}-factor`),
    err.code === 'factor_required'
      ? CODE_NEEDED
      : `That code is not right (or was used already). ${nothingDone}`,
  );
  return true;
}

function initDelete() {
  // The exports offered before leaving are the Settings page's own.
  $('del-kit').addEventListener('click', () => $('kit-download').click());
  $('del-car').addEventListener('click', () => $('car-download').click());
  onSubmit($('form-delete'), 'Deleting your account…', async (form) => {
    const email = session.account.email;
    if (!$('del-password').value) return invalid($('del-password'), 'Enter your password.');
    if ($('del-email').value.trim().toLowerCase() !== email.toLowerCase()) {
      return invalid($('del-email'), `Type ${email} to confirm.`);
    }
    const factor = await formFactor('del');
    if (factor === undefined) return false;
    try {
      await accounts.deleteAccount(api, { password: $('del-password').value, factor });
    } catch (err) {
      if (err instanceof DecryptionError || err?.code === 'invalid_credentials') {
        return invalid($('del-password'), 'Your password is not correct. Nothing was deleted.');
      }
      if (factorRefused('del', err, factor, 'Nothing was deleted.')) return false;
      throw err;
    }
    form.reset();
    $('del-factor-wrap').hidden = true;
    await leaveVault();
    showLogin();
    flash(`The account ${email} was deleted, with everything the server held of it.`, {
      ok: true,
    });
  });
}

/** Settings → Rotate keys: say when a rotation is under way (it is resumed the same way). */
async function showRotationState() {
  const state = await rotationState(api);
  const note = $('rot-pending');
  if (state.pending) {
    note.textContent = `A key rotation is under way: ${state.remaining} record(s) are still on the old key. Enter your password to finish it.`;
    note.hidden = false;
    $('rot-submit').textContent = 'Resume key rotation';
  } else {
    note.hidden = true;
    $('rot-submit').textContent = 'Rotate keys';
  }
}

function initRotation() {
  onSubmit($('form-rotate'), 'Rotating your keys…', async (form) => {
    if (!$('rot-password').value) return invalid($('rot-password'), 'Enter your password.');
    // Starting a rotation proves a second factor too (resuming one needs none).
    const { pending } = await rotationState(api);
    const factor = pending ? null : await formFactor('rot');
    if (factor === undefined) return false;
    const progress = $('rot-progress');
    let result;
    try {
      result = await rotateKeys(api, {
        password: $('rot-password').value,
        recoveryCode: $('rot-code').value || null,
        factor,
        onProgress: (done, total) => {
          progress.textContent = `Re-sealed ${done} of ${total} record(s)…`;
        },
      });
    } catch (err) {
      if (err instanceof DecryptionError || err?.code === 'invalid_credentials') {
        return invalid($('rot-password'), 'Your password is not correct.');
      }
      if (err instanceof RotationError) return invalid($('rot-code'), err.message);
      if (factorRefused('rot', err, factor, 'Nothing was changed.')) return false;
      throw err;
    } finally {
      await showRotationState().catch(() => {});
    }
    form.reset();
    $('rot-factor-wrap').hidden = true;
    progress.textContent = `Done: ${result.records} record(s) re-sealed.`;
    $('set-fingerprint').textContent = session.account.fingerprint.replace(/(.{4})/g, '$1 ').trim();
    document.body.dataset.rotated = session.account.fingerprint;
    flash('Keys rotated. Other devices were logged out.', { ok: true });
  });

  onSubmit($('form-recovery-code'), 'Making a new recovery code…', async (form) => {
    if (!$('nrc-password').value) return invalid($('nrc-password'), 'Enter your password.');
    const factor = await formFactor('nrc');
    if (factor === undefined) return false;
    let code;
    try {
      code = await rotateRecoveryCode(api, { password: $('nrc-password').value, factor });
    } catch (err) {
      if (err instanceof DecryptionError || err?.code === 'invalid_credentials') {
        return invalid($('nrc-password'), 'Your password is not correct.');
      }
      if (factorRefused('nrc', err, factor, 'The old recovery code still works.')) return false;
      throw err;
    }
    form.reset();
    $('nrc-factor-wrap').hidden = true;
    $('nrc-code').textContent = code;
    $('nrc-result').hidden = false;
    flash('New recovery code made; the old one no longer works.', { ok: true });
  });
}

function initNav() {
  for (const b of document.querySelectorAll('[data-go]')) {
    b.addEventListener('click', () => go(b.dataset.go));
  }
  $('btn-lock').addEventListener('click', lock);
  $('btn-logout').addEventListener('click', logout);
}

async function start() {
  initAuth();
  initSettings();
  initRotation();
  initNav();
  initRecords({ api, go, message, idle: () => idle });
  initOffline({ api, enterVault, message, onSubmit, idle: () => idle });
  initEmergency({ api, go, message, onSubmit });
  initLinks({ api, message });
  initFactors({ api, message, onSubmit });
  initActivity({ api, message });
  registerWorker();
  await sweepScratch(); // plaintext a closed or crashed tab left behind, before "ready"
  let offline = false;
  try {
    session.config = { ...session.config, ...(await api.config()) };
    rememberAllowedOrigins(session.config.gateway_origins);
    hideOfflineOffer();
  } catch (err) {
    // Keep the defaults: the server may be starting, or gone (then: the offline mode).
    offline = unreachable(err);
    if (offline) await offerOffline();
  }
  if (showViewerIfLink()) {
    document.body.dataset.ready = 'true';
    return;
  }
  showView('auth', { focus: false });
  selectTab('login');
  if (offline) flash(message(new ApiError(0, 'network_error')));
  document.body.dataset.ready = 'true';
}

/** The service worker keeps the app shell for when the server is unreachable (sw.js). */
function registerWorker() {
  navigator.serviceWorker?.register('/app/sw.js', { scope: '/' }).catch(() => {
    /* no offline start, everything else works */
  });
}

start();
