// HTTP side of the fedagg device protocol (docs/api.md): key, check-in,
// round status, model downloads and sealed updates. Works with the fetch of
// Node >= 18 and of browsers. Every request has a timeout; 503 answers are
// retried after their Retry-After, network failures with exponential
// backoff, both a bounded number of times. Other errors become a
// FedaggError carrying the server's status and error code.

import { decodeSnapshot } from './model.js';

/** An error answer of the server (status > 0) or a failure of the client. */
export class FedaggError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, cause?: unknown}} [info]
   */
  constructor(message, { status = 0, code = 'client_error', cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'FedaggError';
    this.status = status;
    this.code = code;
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Exponential backoff with jitter: about base * 2^attempt, at most capMs. */
export function backoffMs(attempt, baseMs = 250, capMs = 8000) {
  const ms = Math.min(capMs, baseMs * 2 ** attempt);
  return ms / 2 + Math.random() * (ms / 2);
}

/** Seconds of a Retry-After header (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value, nowMs = Date.now()) {
  if (value == null || value === '') return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - nowMs) / 1000);
}

function isNetworkError(e) {
  // fetch rejects with a TypeError on connection failures, AbortSignal.timeout
  // with a TimeoutError (or AbortError in older runtimes).
  return e instanceof TypeError || e?.name === 'TimeoutError' || e?.name === 'AbortError';
}

export class FedaggClient {
  /**
   * @param {string} baseUrl  server origin, e.g. "http://127.0.0.1:8080"; "" in a page served
   *                          from the same origin as the API (or behind a reverse proxy)
   * @param {object} [opts]
   * @param {typeof fetch} [opts.fetch]     fetch implementation (default: the global one)
   * @param {number} [opts.timeoutMs]       per attempt (default 30 s)
   * @param {number} [opts.maxAttempts]     attempts per request for 503 / network errors (default 6)
   * @param {number} [opts.maxRetryAfterS]  longest Retry-After honoured (default 60 s)
   * @param {number} [opts.modelCacheSize]  decoded model versions kept (default 2)
   * @param {(event: object) => void} [opts.onRetry]  told about each retry
   * @param {string|(() => string|Promise<string>)} [opts.token]  the device token from the
   *                          app's identity provider (a JWT), sent as `Authorization: Bearer` on
   *                          every request to a server with auth = jwt; a function is called
   *                          before each request (to refresh an expiring token)
   * @param {'binary'|'json'} [opts.updateForm]  how updates are posted: the sealed box as an
   *                          application/octet-stream body with the fields in headers (default),
   *                          or the JSON form with the box in base64
   */
  constructor(baseUrl = '', opts = {}) {
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = opts.timeoutMs ?? 30000;
    this.maxAttempts = opts.maxAttempts ?? 6;
    this.maxRetryAfterS = opts.maxRetryAfterS ?? 60;
    this.modelCacheSize = opts.modelCacheSize ?? 2;
    this.onRetry = opts.onRetry ?? null;
    this.token = opts.token ?? null;
    this.updateForm = opts.updateForm ?? 'binary';
    if (this.updateForm !== 'binary' && this.updateForm !== 'json') {
      throw new RangeError(`updateForm must be 'binary' or 'json', got ${this.updateForm}`);
    }
    this._key = null;
    this._models = new Map(); // version -> Promise<snapshot>, oldest first
  }

  /**
   * One request with retries. Returns the parsed JSON body (or the Response
   * for raw requests). Throws FedaggError for error answers.
   */
  async request(method, path, { json, bytes, accept = 'application/json', headers = {}, raw = false } = {}) {
    const url = this.baseUrl + path;
    const init = { method, headers: { Accept: accept, ...headers } };
    if (this.token !== null) {
      const tok = typeof this.token === 'function' ? await this.token() : this.token;
      if (typeof tok !== 'string' || tok === '' || /[\r\n]/.test(tok)) {
        throw new FedaggError('the device token is not a non-empty single-line string', { code: 'bad_token' });
      }
      init.headers.Authorization = `Bearer ${tok}`;
    }
    if (json !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(json);
    } else if (bytes !== undefined) {
      init.headers['Content-Type'] = 'application/octet-stream';
      init.body = bytes;
    }
    for (let attempt = 0; ; attempt++) {
      const last = attempt + 1 >= this.maxAttempts;
      let resp;
      try {
        resp = await this.fetch(url, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
      } catch (e) {
        if (!isNetworkError(e)) throw e;
        if (last) {
          throw new FedaggError(`${method} ${path}: no answer after ${attempt + 1} attempts (${e.message})`, {
            code: 'unreachable',
            cause: e,
          });
        }
        const waitMs = backoffMs(attempt);
        this.onRetry?.({ method, path, attempt, reason: e.name, waitMs });
        await sleep(waitMs);
        continue;
      }
      if (resp.status === 503 && !last) {
        const after = parseRetryAfter(resp.headers.get('Retry-After'));
        const waitMs =
          after === null ? backoffMs(attempt) : Math.min(after, this.maxRetryAfterS) * 1000;
        await resp.body?.cancel();
        this.onRetry?.({ method, path, attempt, reason: 'unavailable', waitMs });
        await sleep(waitMs);
        continue;
      }
      if (resp.ok || resp.status === 304) {
        if (raw) return resp;
        const text = await resp.text();
        try {
          return text === '' ? null : JSON.parse(text);
        } catch (e) {
          throw new FedaggError(`${method} ${path}: answer is not JSON`, { status: resp.status, code: 'bad_answer', cause: e });
        }
      }
      let code = 'http_' + resp.status;
      let message = resp.statusText;
      try {
        const body = await resp.json();
        if (typeof body?.error?.code === 'string') code = body.error.code;
        if (typeof body?.error?.message === 'string') message = body.error.message;
      } catch {
        // not a JSON error body; keep the status line
      }
      throw new FedaggError(`${method} ${path}: ${resp.status} ${code}: ${message}`, { status: resp.status, code });
    }
  }

  /** The server's sealed-box key: {keyId, publicKey (base64), algorithm}; cached. */
  async key() {
    if (this._key === null) {
      const k = await this.request('GET', '/api/federated/key');
      if (typeof k?.keyId !== 'string' || typeof k?.publicKey !== 'string') {
        throw new FedaggError('key answer lacks keyId or publicKey', { code: 'bad_answer' });
      }
      this._key = k;
    }
    return this._key;
  }

  /** Drops the cached key (after an unknown_key answer: the server rotated it). */
  forgetKey() {
    this._key = null;
  }

  /** Joins the open round: {roundId, modelVersion, state, selected, roundToken, ...}. */
  checkin(deviceId) {
    return this.request('POST', '/api/federated/checkin', { json: deviceId === undefined ? {} : { deviceId } });
  }

  /** The open round's status (no token). */
  round() {
    return this.request('GET', '/api/federated/round');
  }

  /** {version, parent, sha256, createdAt, formats, metrics} of the newest model. */
  latest() {
    return this.request('GET', '/api/federated/model/latest');
  }

  /**
   * Model version v, downloaded in the TF.js single-response form, checked
   * and decoded (see decodeSnapshot). Versions are immutable, so the last
   * few are cached.
   */
  model(version) {
    const v = Number(version);
    if (!Number.isSafeInteger(v) || v < 0) return Promise.reject(new FedaggError(`bad model version ${version}`));
    let p = this._models.get(v);
    if (p === undefined) {
      p = this.request('GET', `/api/federated/model/${v}`).then(async (json) => {
        const snap = await decodeSnapshot(json);
        if (snap.version !== v) {
          throw new FedaggError(`model ${v} says it is version ${snap.version}`, { code: 'bad_model' });
        }
        return snap;
      });
      p.catch(() => this._models.delete(v)); // do not cache failures
      this._models.set(v, p);
      while (this._models.size > this.modelCacheSize) this._models.delete(this._models.keys().next().value);
    }
    return p;
  }

  /**
   * Posts a sealed update; {receipt, roundId, cohort, duplicate} on 202.
   * With `box` (the sealed bytes) in the binary form: the box is the body,
   * the other fields go in Fedagg-* headers (docs/api.md); with
   * `encryptedGradients` (base64) in the JSON form.
   */
  postUpdate({ modelVersion, roundToken, keyId, numSamples, encryptedGradients, box }) {
    if (box !== undefined) {
      return this.request('POST', '/api/federated/update', {
        bytes: box,
        headers: {
          'Fedagg-Model-Version': String(modelVersion),
          'Fedagg-Round-Token': String(roundToken),
          'Fedagg-Key-Id': String(keyId),
          'Fedagg-Num-Samples': String(numSamples),
        },
      });
    }
    return this.request('POST', '/api/federated/update', {
      json: { modelVersion, roundToken, keyId, numSamples, encryptedGradients },
    });
  }
}
