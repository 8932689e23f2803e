// HTTP client for /api/v1. Bodies carry only ciphertext, public keys and KDF outputs.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const BASE = '/api/v1';

async function errorFrom(res) {
  let code = 'http_error';
  let detail = `HTTP ${res.status}`;
  try {
    const body = await res.json();
    code = body.code ?? code;
    detail = body.detail ?? detail;
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, code, detail);
}

/** 401 codes that answer a signed-in request without ending its session: a wrong
 * password or second factor (protocol §10). Every other 401 ends the session here. */
const PROOF_REFUSED = new Set([
  'invalid_credentials',
  'factor_invalid',
  'factor_required',
  'factor_expired',
]);

function sessionEnded(status, err) {
  return status === 401 && !PROOF_REFUSED.has(err.code);
}

export class Api {
  constructor({ onUnauthorized } = {}) {
    this.token = null;
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra = {}) {
    // Which client this is, for the account's list of sessions and its activity trail.
    const h = { 'X-Hygieia-Client': 'web', ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  /** Fetch; throws ApiError on a non-2xx answer. Returns the Response. */
  async raw(method, path, { json, body, headers, signal } = {}) {
    const init = {
      method,
      headers: this.headers(headers),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
      signal,
    };
    if (json !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    let res;
    try {
      res = await fetch(BASE + path, init);
    } catch (err) {
      if (err?.name === 'AbortError') throw err;
      throw new ApiError(0, 'network_error', 'network error'); // the server is unreachable
    }
    if (!res.ok) {
      const err = await errorFrom(res);
      if (sessionEnded(res.status, err) && this.token && this.onUnauthorized) {
        this.onUnauthorized(err);
      }
      throw err;
    }
    return res;
  }

  async json(method, path, opts) {
    const res = await this.raw(method, path, opts);
    return res.status === 204 ? null : res.json();
  }

  /**
   * Upload with progress (fetch has no upload progress; XHR does). `body` is a
   * FormData or Blob; Blob parts stream from the browser's blob store.
   */
  upload(method, path, body, { onProgress, signal } = {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, BASE + path);
      for (const [k, v] of Object.entries(this.headers())) xhr.setRequestHeader(k, v);
      xhr.responseType = 'json';
      if (onProgress) {
        xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
      }
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.response);
        const r = xhr.response || {};
        const err = new ApiError(xhr.status, r.code, r.detail);
        if (sessionEnded(xhr.status, err) && this.onUnauthorized) this.onUnauthorized(err);
        reject(err);
      };
      xhr.onerror = () => reject(new ApiError(0, 'network_error', 'network error'));
      xhr.onabort = () => reject(new DOMException('upload cancelled', 'AbortError'));
      signal?.addEventListener('abort', () => xhr.abort(), { once: true });
      xhr.send(body);
    });
  }

  // ---- accounts (protocol §4) ----
  config() {
    return this.json('GET', '/config');
  }
  prelogin(email) {
    return this.json('GET', `/auth/prelogin?email=${encodeURIComponent(email)}`);
  }
  signup(body) {
    return this.json('POST', '/auth/signup', { json: body });
  }
  login(email, authKey) {
    return this.json('POST', '/auth/login', { json: { email, auth_key: authKey } });
  }
  logout() {
    return this.json('POST', '/auth/logout');
  }
  changePassword(body) {
    return this.json('POST', '/auth/password', { json: body });
  }
  deleteAccount(body) {
    return this.json('POST', '/auth/account/delete', { json: body });
  }
  recover(email, recoveryAuth) {
    return this.json('POST', '/auth/recover', { json: { email, recovery_auth: recoveryAuth } });
  }
  recoverComplete(body) {
    return this.json('POST', '/auth/recover/complete', { json: body });
  }

  // ---- second factors (protocol §10) ----
  loginFactor(pendingToken, { method, code, credential }) {
    return this.json('POST', '/auth/login/factor', {
      json: { pending_token: pendingToken, method, code, credential },
    });
  }
  // passkeys (protocol §10, "Passkeys"); the ceremonies are in passkeys.js
  passkeyCreationOptions() {
    return this.json('POST', '/auth/factors/passkey/options', { json: {} });
  }
  addPasskey(label, credential) {
    return this.json('POST', '/auth/factors/passkey', {
      json: label ? { label, credential } : { credential },
    });
  }
  passkeyLoginOptions(pendingToken) {
    return this.json('POST', '/auth/login/passkey/options', {
      json: { pending_token: pendingToken },
    });
  }
  passkeyProofOptions() {
    return this.json('POST', '/auth/factors/proof/passkey-options', { json: {} });
  }
  factors() {
    return this.json('GET', '/auth/factors');
  }
  startTotp(label) {
    return this.json('POST', '/auth/factors/totp', { json: label ? { label } : {} });
  }
  confirmTotp(factorId, code) {
    return this.json('POST', `/auth/factors/totp/${encodeURIComponent(factorId)}/confirm`, {
      json: { code },
    });
  }
  removeFactor(factorId, body) {
    return this.json('POST', `/auth/factors/${encodeURIComponent(factorId)}/remove`, {
      json: body,
    });
  }
  renewBackupCodes(body) {
    return this.json('POST', '/auth/factors/backup-codes', { json: body });
  }
}
