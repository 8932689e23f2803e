// What the page knows while someone is logged in. Memory only: nothing here is ever
// written to localStorage, sessionStorage, IndexedDB or a cookie (the recovery kit
// kept in IndexedDB, kit.js, holds only what the server holds too).

export const session = {
  account: null, // AccountPublic from the server (public and locked values only)
  privateKey: null, // unlocked OpenPGP key; cleared on lock and logout
  publicKey: null, // derived from privateKey, not taken from the server
  // During a key rotation (protocol §12): the pending identity's unlocked key, for the
  // records already sealed to it; cleared on lock and logout like privateKey.
  pendingKey: null,
  records: [], // [{id, ..., meta}] with decrypted metadata; cleared on lock
  offline: false, // opened from a kept recovery kit: no server, read-only
  kit: null, // that kit (public and locked values only, like `account`)
  shared: [], // records shared with me, the same way (sharing.js); cleared on lock
  emergency: null, // another owner's vault opened by emergency access (emergency.js)
  config: { idle_lock_seconds: 900, max_record_bytes: 2 * 1024 ** 3 },
};

export function isUnlocked() {
  return session.privateKey !== null;
}

/** Forget the keys and every decrypted value; keep the account (an idle lock). */
export function lockKeys() {
  try {
    session.privateKey?.clearPrivateParams?.();
  } catch {
    /* already cleared */
  }
  session.privateKey = null;
  session.publicKey = null;
  try {
    session.pendingKey?.clearPrivateParams?.();
  } catch {
    /* already cleared */
  }
  session.pendingKey = null;
  session.records = [];
  session.shared = [];
  try {
    session.emergency?.privateKey?.clearPrivateParams?.();
  } catch {
    /* already cleared */
  }
  session.emergency = null;
}

/** Forget the account too (log-out, expired session). */
export function clearSession() {
  lockKeys();
  session.account = null;
  session.offline = false;
  session.kit = null;
}

/**
 * Call `onIdle` after `seconds` without keyboard, pointer or touch activity (or an
 * active transfer, counted with `busy()`). Returns {busy, stop}: `busy()` marks a
 * transfer as running and returns the function that marks it done.
 */
export function idleTimer(seconds, onIdle) {
  let last = Date.now();
  let busy = 0;
  const touch = () => {
    last = Date.now();
  };
  const events = ['pointerdown', 'keydown', 'wheel', 'touchstart', 'input'];
  for (const e of events) window.addEventListener(e, touch, { passive: true, capture: true });
  const check = () => {
    if (busy > 0) touch();
    else if (Date.now() - last >= seconds * 1000) onIdle();
  };
  const tick = setInterval(check, Math.min(5000, Math.max(250, (seconds * 1000) / 4)));
  const visibility = () => document.visibilityState === 'visible' && check();
  document.addEventListener('visibilitychange', visibility);
  return {
    busy() {
      busy += 1;
      return () => {
        busy -= 1;
        touch();
      };
    },
    stop() {
      clearInterval(tick);
      for (const e of events) window.removeEventListener(e, touch, { capture: true });
      document.removeEventListener('visibilitychange', visibility);
    },
  };
}
