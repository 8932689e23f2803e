// Account flows (protocol §1, §4): sign up, log in, unlock, change password, recover,
// key export. Every secret is derived and used here, in the page; the server gets
// auth_key, public key, locked key, wrapped vault keys and salts only. What the server
// says to derive with is vetted first (kdf-trust.js); new passwords must pass
// passwords.js.
import * as passkeys from './passkeys.js';
import * as c from './crypto/index.js';
import { forgetKdf, rememberKdf, vetKdf } from './kdf-trust.js';
import { MIN_PASSWORD, passwordProblem, requireStrongPassword } from './passwords.js';
import { session } from './session.js';

export { MIN_PASSWORD };

function normEmail(email) {
  return email.trim().toLowerCase();
}

/** Unwrap the account's vault key with the password's wrap key; unlock the identity. */
async function unlockWithPassword(account, wrapKey) {
  const vaultKey = await c.unwrapVaultKey(c.fromB64(account.wrapped_vault_key), wrapKey);
  try {
    return await unlockAccountKey(account, vaultKey);
  } finally {
    c.wipe(vaultKey);
  }
}

async function unlockAccountKey(account, vaultKey) {
  const privateKey = await c.unlockIdentity(account.locked_secret_key, vaultKey);
  // Trust the key we can unlock, not what the server says: a swapped public key
  // would have records encrypted to someone else.
  if (privateKey.getFingerprint().toUpperCase() !== account.fingerprint.toUpperCase()) {
    throw new c.DecryptionError('account key does not match its fingerprint');
  }
  return privateKey;
}

/** The unlocked vault: the account and its key, in memory only. */
function adopt(account, privateKey) {
  session.account = account;
  session.privateKey = privateKey;
  session.publicKey = privateKey.toPublic();
}

/**
 * Prepare a new account: every key made here. Returns {code, submit()} — the caller
 * shows `code`, and calls submit() once the user confirmed they saved it.
 */
export async function prepareSignup(api, { email, password }) {
  email = normEmail(email);
  await requireStrongPassword(password, [email]);
  const kdf = { ...c.DEFAULT_KDF };
  const salt = c.newSalt();
  const recoverySalt = c.newSalt();
  const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
  const vaultKey = c.newVaultKey();
  const identity = await c.generateIdentity({ email, vaultKey });
  const recovery = c.newRecoveryCode();
  const { recoveryWrap, recoveryAuth } = await c.deriveRecoveryKeys(recovery.bytes, recoverySalt);
  const body = {
    email,
    kdf,
    salt: c.toB64(salt),
    recovery_salt: c.toB64(recoverySalt),
    auth_key: c.toB64(authKey),
    public_key: identity.publicKey,
    locked_secret_key: identity.lockedSecretKey,
    wrapped_vault_key: c.toB64(await c.wrapVaultKey(vaultKey, wrapKey)),
    recovery_wrapped_vault_key: c.toB64(await c.wrapVaultKey(vaultKey, recoveryWrap)),
    recovery_verifier: c.toB64(recoveryAuth),
  };
  c.wipe(wrapKey, recoveryWrap, recovery.bytes);
  let done = false;
  return {
    code: recovery.code,
    async submit() {
      if (done) throw new Error('already submitted');
      await api.signup(body);
      done = true;
      await rememberKdf(email, kdf, body.salt);
      const sess = await api.login(email, body.auth_key);
      api.token = sess.token;
      try {
        adopt(sess.account, await unlockAccountKey(sess.account, vaultKey));
      } finally {
        c.wipe(vaultKey, authKey);
      }
    },
    discard() {
      c.wipe(vaultKey, authKey);
    },
  };
}

/** A typed second-factor code: six digits are a TOTP code, anything else a backup code. */
export function factorAnswer(code) {
  const compact = code.replace(/\s+/g, '');
  return /^\d{6}$/.test(compact)
    ? { method: 'totp', code: compact }
    : { method: 'backup_code', code: compact };
}

/**
 * Log in. `acceptNewSalt`: the user confirmed that the account's salt differs from the
 * one remembered here (salts never change; an account re-created under the same email
 * gets a new one).
 *
 * Returns `{ factorRequired: false }` once logged in, or, for an account with a second
 * factor (protocol §10), `{ factorRequired: true, methods, finish(code),
 * finishWithPasskey(), discard() }`: no session exists until `finish` gets a right code
 * or `finishWithPasskey` a passkey's answer (either may be called again after a wrong
 * one). The password's wrap key waits in that closure, and is wiped by `discard` or
 * once logged in.
 */
export async function login(api, { email, password, acceptNewSalt = false }) {
  email = normEmail(email);
  const pre = await api.prelogin(email);
  const { kdf, salt } = await vetKdf(email, pre.kdf, pre.salt, { acceptNewSalt });
  const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
  const enter = async (sess) => {
    api.token = sess.token;
    adopt(sess.account, await unlockWithPassword(sess.account, wrapKey));
    // Only now: the vault key unwrapped, so the account's owner chose these values.
    await rememberKdf(email, kdf, pre.salt);
    await adoptPendingKey(api, wrapKey);
  };
  let answer;
  try {
    answer = await api.login(email, c.toB64(authKey));
  } catch (err) {
    c.wipe(wrapKey);
    throw err;
  } finally {
    c.wipe(authKey);
  }
  if (!answer.factor_required) {
    try {
      await enter(answer);
    } finally {
      c.wipe(wrapKey);
    }
    return { factorRequired: false };
  }
  let done = false;
  return {
    factorRequired: true,
    methods: answer.methods,
    async finish(code) {
      if (done) throw new Error('this login step is over');
      const proof = typeof code === 'string' ? factorAnswer(code) : code;
      const sess = await api.loginFactor(answer.pending_token, proof);
      done = true;
      try {
        await enter(sess);
      } finally {
        c.wipe(wrapKey);
      }
    },
    async finishWithPasskey() {
      if (done) throw new Error('this login step is over');
      await this.finish(await passkeys.loginProof(api, answer.pending_token));
    },
    discard() {
      done = true;
      c.wipe(wrapKey);
    },
  };
}

/** The password proof (`auth_key`) for a sensitive action of the logged-in account. */
export async function passwordProof(password) {
  const account = session.account;
  const { kdf, salt } = await vetAccount(account);
  const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
  try {
    // A wrong password fails here, before anything is sent.
    c.wipe(await c.unwrapVaultKey(c.fromB64(account.wrapped_vault_key), wrapKey));
    return c.toB64(authKey);
  } catch (err) {
    throw new c.DecryptionError('current password is wrong', { cause: err });
  } finally {
    c.wipe(authKey, wrapKey);
  }
}

/**
 * During a key rotation (protocol §12), the pending identity's key too, so that records
 * already sealed to it open: accepted only if its vault key unwraps with the password's
 * key and unlocks a key of the fingerprint named. Best effort: without it those records
 * show as unreadable until the rotation is finished (Settings).
 */
async function adoptPendingKey(api, wrapKey) {
  try {
    const { pending } = await api.json('GET', '/auth/keys/rotation');
    if (!pending) return;
    const vaultKey = await c.unwrapVaultKey(c.fromB64(pending.wrapped_vault_key), wrapKey);
    try {
      const key = await c.unlockIdentity(pending.locked_secret_key, vaultKey);
      if (key.getFingerprint().toUpperCase() === pending.fingerprint.toUpperCase()) {
        session.pendingKey = key;
      }
    } finally {
      c.wipe(vaultKey);
    }
  } catch {
    /* no pending key: those records stay unreadable until the rotation is finished */
  }
}

/** The current account's parameters (from the server's login answer), vetted. */
function vetAccount(account) {
  return vetKdf(account.email, account.kdf, account.salt);
}

/** After an idle lock: the password unlocks the key again (no server round trip). */
export async function unlock({ password }) {
  const account = session.account;
  const { kdf, salt } = await vetAccount(account);
  const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
  try {
    adopt(account, await unlockWithPassword(account, wrapKey));
  } finally {
    c.wipe(authKey, wrapKey);
  }
}

/**
 * The vault key, unwrapped again with the password (emergency access seals it for a
 * contact): the page does not keep it after log-in. The caller wipes it.
 */
export async function vaultKeyWithPassword({ password }) {
  const account = session.account;
  const { kdf, salt } = await vetAccount(account);
  const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
  try {
    return await c.unwrapVaultKey(c.fromB64(account.wrapped_vault_key), wrapKey);
  } finally {
    c.wipe(authKey, wrapKey);
  }
}

export async function logout(api) {
  try {
    if (api.token) await api.logout();
  } finally {
    api.token = null;
  }
}

/**
 * Keys for `password` under the account's salt; the vault key re-wrapped (a few dozen
 * bytes). The salt never changes: prelogin shows it, and a changed one would tell
 * anyone watching that the email has an account (the server refuses it).
 */
async function rewrap(password, vaultKey, salt, pendingVaultKey = null) {
  const kdf = { ...c.DEFAULT_KDF };
  const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
  const wrapped = await c.wrapVaultKey(vaultKey, wrapKey);
  const body = {
    new_auth_key: c.toB64(authKey),
    new_salt: c.toB64(salt),
    new_kdf: kdf,
    new_wrapped_vault_key: c.toB64(wrapped),
  };
  if (pendingVaultKey) {
    // A key rotation is under way: its vault key must open with the new password too.
    body.new_pending_wrapped_vault_key = c.toB64(await c.wrapVaultKey(pendingVaultKey, wrapKey));
  }
  c.wipe(wrapKey);
  return body;
}

export async function changePassword(api, { current, next }) {
  const account = session.account;
  await requireStrongPassword(next, [account.email]);
  const vetted = await vetAccount(account);
  const old = await c.deriveKeys(current, vetted.salt, vetted.kdf);
  let vaultKey;
  try {
    vaultKey = await c.unwrapVaultKey(c.fromB64(account.wrapped_vault_key), old.wrapKey);
  } catch (err) {
    c.wipe(old.authKey, old.wrapKey);
    throw new c.DecryptionError('current password is wrong', { cause: err });
  }
  try {
    const body = {
      auth_key: c.toB64(old.authKey),
      ...(await rewrap(next, vaultKey, vetted.salt)),
    };
    await api.changePassword(body);
    session.account = {
      ...account,
      salt: body.new_salt,
      kdf: body.new_kdf,
      wrapped_vault_key: body.new_wrapped_vault_key,
    };
    await rememberKdf(account.email, body.new_kdf, body.new_salt); // chosen here
  } finally {
    c.wipe(vaultKey, old.authKey, old.wrapKey);
  }
}

export async function recover(api, { email, code, password }) {
  email = normEmail(email);
  await requireStrongPassword(password, [email]);
  const codeBytes = c.parseRecoveryCode(code);
  const pre = await api.prelogin(email);
  // The new password is derived with the account's salt: vetted like a login's.
  const vetted = await vetKdf(email, pre.kdf, pre.salt);
  let keys = await c.deriveRecoveryKeys(codeBytes, c.fromB64(pre.recovery_salt));
  const rec = await api.recover(email, c.toB64(keys.recoveryAuth));
  if (rec.recovery_salt !== pre.recovery_salt) {
    keys = await c.deriveRecoveryKeys(codeBytes, c.fromB64(rec.recovery_salt));
  }
  const vaultKey = await c.unwrapVaultKey(
    c.fromB64(rec.recovery_wrapped_vault_key),
    keys.recoveryWrap,
  );
  const pendingVaultKey = rec.pending_recovery_wrapped_vault_key
    ? await c.unwrapVaultKey(c.fromB64(rec.pending_recovery_wrapped_vault_key), keys.recoveryWrap)
    : null;
  c.wipe(codeBytes, keys.recoveryWrap, keys.recoveryAuth);
  try {
    const body = {
      recovery_token: rec.recovery_token,
      ...(await rewrap(password, vaultKey, vetted.salt, pendingVaultKey)),
    };
    const sess = await api.recoverComplete(body);
    api.token = sess.token;
    adopt(sess.account, await unlockAccountKey(sess.account, vaultKey));
    await rememberKdf(email, body.new_kdf, body.new_salt);
    return { factorsRemoved: Boolean(sess.factors_removed) };
  } finally {
    c.wipe(vaultKey);
    if (pendingVaultKey) c.wipe(pendingVaultKey);
  }
}

/**
 * Whether `candidate`, as typed or without surrounding spaces, is the account password:
 * it derives the wrap key that opens the vault key (the page keeps no copy of the
 * password to compare with). The KDF normalises with NFKC, so compatibility variants
 * are caught too.
 */
async function isAccountPassword(candidate) {
  const account = session.account;
  const { kdf, salt } = await vetAccount(account);
  for (const variant of new Set([candidate, candidate.trim()])) {
    if (!variant) continue;
    const { authKey, wrapKey } = await c.deriveKeys(variant, salt, kdf);
    try {
      c.wipe(await c.unwrapVaultKey(c.fromB64(account.wrapped_vault_key), wrapKey));
      return true;
    } catch {
      /* another passphrase: good */
    } finally {
      c.wipe(authKey, wrapKey);
    }
  }
  return false;
}

/**
 * What is wrong with `passphrase` for a key export, or null: the file is locked with
 * OpenPGP's iterated SHA-256 (what gpg reads), fast on GPUs, so it must be strong and
 * must not be the account password (the file would let whoever finds it test guesses
 * of the password cheaply). The rules of hygieia.client.passwords.
 */
export async function exportPassphraseProblem(passphrase) {
  if (!passphrase.trim()) return 'Choose a passphrase for the exported key.';
  if (await isAccountPassword(passphrase)) {
    return 'That is your account password. The exported file is locked with a fast hash, so it would let whoever finds it test guesses of your password cheaply: choose another passphrase.';
  }
  return passwordProblem(passphrase, [session.account.email]);
}

export async function exportSecretKey(passphrase) {
  return c.exportSecretKey(session.privateKey, passphrase);
}

/**
 * Delete the account on the server (protocol §4, "Deleting an account"): the password
 * is checked here first (the vault key must unwrap), then its auth_key, and the second
 * factor if the account has one, are sent (a wrong one's 401 does not end the page's
 * session: api.js). `factor`: a FactorProof, null, or a function making one (a passkey
 * assertion). The remembered KDF parameters and salt go with the account.
 */
export async function deleteAccount(api, { password, factor = null }) {
  const { email } = session.account;
  const authKey = await passwordProof(password);
  // A passkey is asked for only once the password checked out.
  const proof = typeof factor === 'function' ? await factor() : factor;
  await api.deleteAccount({ auth_key: authKey, factor: proof });
  api.token = null;
  await forgetKdf(email);
}

export function exportPublicKey() {
  return session.publicKey.armor();
}
