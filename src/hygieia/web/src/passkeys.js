/**
 * Passkeys (WebAuthn) as a second factor (protocol §10, "Passkeys"), through
 * @simplewebauthn/browser. The server makes every challenge and checks every answer;
 * the page only hands its options to the browser and the browser's answer back. A
 * passkey never touches the vault keys: the password still unlocks them.
 */

import {
  browserSupportsWebAuthn,
  startAuthentication,
  startRegistration,
} from '@simplewebauthn/browser';

/** A passkey ceremony that did not happen; `message` is for people. */
export class PasskeyError extends Error {
  constructor(message, { cause } = {}) {
    super(message, { cause });
    this.name = 'PasskeyError';
  }
}

function errorName(err) {
  return err?.cause?.name || err?.name || '';
}

function explain(err, { enrolling = false } = {}) {
  const name = errorName(err);
  if (name === 'NotAllowedError' || name === 'AbortError') {
    return new PasskeyError(
      enrolling
        ? 'No passkey was created: the request was cancelled, timed out, or no authenticator is available.'
        : 'No passkey answered: none on this device is enrolled for this account, or the request was cancelled or timed out.',
      { cause: err },
    );
  }
  if (name === 'InvalidStateError') {
    return new PasskeyError('This authenticator already holds a passkey for this account.', {
      cause: err,
    });
  }
  if (name === 'SecurityError') {
    return new PasskeyError(
      'Passkeys need this page opened by its host name over HTTPS (or at localhost), not by an IP address.',
      { cause: err },
    );
  }
  return new PasskeyError(`The passkey could not be used: ${err?.message || name}`, {
    cause: err,
  });
}

/** Whether this browser has WebAuthn at all (a secure context, a recent browser). */
export function passkeysSupported() {
  return browserSupportsWebAuthn();
}

function requireSupport() {
  if (!passkeysSupported()) {
    throw new PasskeyError(
      'This browser can’t use passkeys here (they need HTTPS or localhost, and a recent browser).',
    );
  }
}

/** Create a passkey on an authenticator and enrol it; the server's answer (backup
 * codes with the account's first factor) is returned. */
export async function enrolPasskey(api, label) {
  requireSupport();
  const { options } = await api.passkeyCreationOptions();
  let credential;
  try {
    credential = await startRegistration({ optionsJSON: options });
  } catch (err) {
    throw explain(err, { enrolling: true });
  }
  return api.addPasskey(label, credential);
}

async function assertion(options) {
  requireSupport();
  try {
    return await startAuthentication({ optionsJSON: options });
  } catch (err) {
    throw explain(err);
  }
}

/** A passkey answer to a pending login's challenge: a FactorProof for /auth/login/factor. */
export async function loginProof(api, pendingToken) {
  const { options } = await api.passkeyLoginOptions(pendingToken);
  return { method: 'passkey', credential: await assertion(options) };
}

/** A passkey answer for a sensitive action (removing a factor, new backup codes). */
export async function actionProof(api) {
  const { options } = await api.passkeyProofOptions();
  return { method: 'passkey', credential: await assertion(options) };
}
