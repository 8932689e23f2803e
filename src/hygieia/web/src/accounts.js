// Account flows (protocol §1, §4): sign up, log in, unlock, change password, recover,
// key export. Every secret is derived and used here, in the page; the server gets
// auth_key, public key, locked key, wrapped vault keys and salts only.
import * as c from './crypto/index.js';
import { session } from './session.js';

export const MIN_PASSWORD = 10;

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

export async function login(api, { email, password }) {
  email = normEmail(email);
  const pre = await api.prelogin(email);
  const { authKey, wrapKey } = await c.deriveKeys(
    password,
    c.fromB64(pre.salt),
    c.checkKdf(pre.kdf),
  );
  try {
    const sess = await api.login(email, c.toB64(authKey));
    api.token = sess.token;
    adopt(sess.account, await unlockWithPassword(sess.account, wrapKey));
  } finally {
    c.wipe(authKey, wrapKey);
  }
}

/** After an idle lock: the password unlocks the key again (no server round trip). */
export async function unlock({ password }) {
  const account = session.account;
  const { authKey, wrapKey } = await c.deriveKeys(
    password,
    c.fromB64(account.salt),
    c.checkKdf(account.kdf),
  );
  try {
    adopt(account, await unlockWithPassword(account, wrapKey));
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
async function rewrap(password, vaultKey, salt) {
  const kdf = { ...c.DEFAULT_KDF };
  const { authKey, wrapKey } = await c.deriveKeys(password, salt, kdf);
  const wrapped = await c.wrapVaultKey(vaultKey, wrapKey);
  c.wipe(wrapKey);
  return {
    new_auth_key: c.toB64(authKey),
    new_salt: c.toB64(salt),
    new_kdf: kdf,
    new_wrapped_vault_key: c.toB64(wrapped),
  };
}

export async function changePassword(api, { current, next }) {
  const account = session.account;
  const old = await c.deriveKeys(current, c.fromB64(account.salt), c.checkKdf(account.kdf));
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
      ...(await rewrap(next, vaultKey, c.fromB64(account.salt))),
    };
    await api.changePassword(body);
    session.account = {
      ...account,
      salt: body.new_salt,
      kdf: body.new_kdf,
      wrapped_vault_key: body.new_wrapped_vault_key,
    };
  } finally {
    c.wipe(vaultKey, old.authKey, old.wrapKey);
  }
}

export async function recover(api, { email, code, password }) {
  email = normEmail(email);
  const codeBytes = c.parseRecoveryCode(code);
  const pre = await api.prelogin(email);
  let keys = await c.deriveRecoveryKeys(codeBytes, c.fromB64(pre.recovery_salt));
  const rec = await api.recover(email, c.toB64(keys.recoveryAuth));
  if (rec.recovery_salt !== pre.recovery_salt) {
    keys = await c.deriveRecoveryKeys(codeBytes, c.fromB64(rec.recovery_salt));
  }
  const vaultKey = await c.unwrapVaultKey(
    c.fromB64(rec.recovery_wrapped_vault_key),
    keys.recoveryWrap,
  );
  c.wipe(codeBytes, keys.recoveryWrap, keys.recoveryAuth);
  try {
    const body = {
      recovery_token: rec.recovery_token,
      ...(await rewrap(password, vaultKey, c.fromB64(pre.salt))),
    };
    const sess = await api.recoverComplete(body);
    api.token = sess.token;
    adopt(sess.account, await unlockAccountKey(sess.account, vaultKey));
  } finally {
    c.wipe(vaultKey);
  }
}

export async function exportSecretKey(passphrase) {
  return c.exportSecretKey(session.privateKey, passphrase);
}

export function exportPublicKey() {
  return session.publicKey.armor();
}
