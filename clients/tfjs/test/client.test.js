import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FedaggClient, FedaggError, parseRetryAfter } from '../src/index.js';
import { json, scriptedFetch } from './helpers.js';

const unavailable = (retryAfter) =>
  json(503, { error: { code: 'unavailable', message: 'round closing' } }, retryAfter === undefined ? {} : { 'Retry-After': retryAfter });

test('Retry-After is read as seconds or as an HTTP date', () => {
  assert.equal(parseRetryAfter('2'), 2);
  assert.equal(parseRetryAfter(' 0 '), 0);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter('soon'), null);
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:03 GMT', now), 3);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0);
});

test('503 is retried after Retry-After, then the answer is returned', async () => {
  const { fetch, calls } = scriptedFetch([() => unavailable('0'), () => unavailable('0'), () => json(200, { keyId: 'k', publicKey: 'p' })]);
  const retries = [];
  const c = new FedaggClient('http://fedagg.test/', { fetch, onRetry: (e) => retries.push(e) });
  assert.deepEqual(await c.key(), { keyId: 'k', publicKey: 'p' });
  assert.equal(calls.length, 3);
  assert.equal(calls[0].url, 'http://fedagg.test/api/federated/key');
  assert.deepEqual(retries.map((r) => [r.reason, r.waitMs]), [['unavailable', 0], ['unavailable', 0]]);
  await c.key(); // cached
  assert.equal(calls.length, 3);
});

test('a long Retry-After is capped and 503 gives up after maxAttempts', async () => {
  const waits = [];
  const { fetch, calls } = scriptedFetch([() => unavailable('3600'), () => unavailable('0')]);
  const c = new FedaggClient('http://x', { fetch, maxAttempts: 2, maxRetryAfterS: 0.01, onRetry: (e) => waits.push(e.waitMs) });
  await assert.rejects(c.round(), (e) => e instanceof FedaggError && e.status === 503 && e.code === 'unavailable');
  assert.deepEqual(waits, [10]);
  assert.equal(calls.length, 2);
});

test('network failures are retried a bounded number of times', async () => {
  const fail = () => {
    throw new TypeError('fetch failed');
  };
  const { fetch, calls } = scriptedFetch([fail, fail, fail]);
  const c = new FedaggClient('http://x', { fetch, maxAttempts: 3 });
  await assert.rejects(c.latest(), (e) => e.code === 'unreachable' && /no answer after 3 attempts/.test(e.message));
  assert.equal(calls.length, 3);
});

test('error answers become FedaggError with the server code; 4xx is not retried', async () => {
  const { fetch, calls } = scriptedFetch([
    () => json(409, { error: { code: 'round_closed', message: 'round 4 has ended' } }),
  ]);
  const c = new FedaggClient('http://x', { fetch });
  await assert.rejects(
    c.postUpdate({ modelVersion: 1, roundToken: 't', keyId: 'k', numSamples: 1, encryptedGradients: 'AA==' }),
    (e) => e.status === 409 && e.code === 'round_closed' && /round 4 has ended/.test(e.message),
  );
  assert.equal(calls.length, 1);
  assert.equal(calls[0].headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(calls[0].body), { modelVersion: 1, roundToken: 't', keyId: 'k', numSamples: 1, encryptedGradients: 'AA==' });
});

test('postUpdate with a box sends the binary form: the box as the body, the fields as headers', async () => {
  const { fetch, calls } = scriptedFetch([() => json(202, { receipt: 'r', roundId: 2, cohort: 1, duplicate: false })]);
  const c = new FedaggClient('http://x', { fetch });
  const box = new Uint8Array([1, 2, 3, 250]);
  const res = await c.postUpdate({ modelVersion: 7, roundToken: 'tok', keyId: 'k1', numSamples: 12, box });
  assert.equal(res.receipt, 'r');
  assert.equal(calls[0].method, 'POST');
  assert.equal(calls[0].headers['Content-Type'], 'application/octet-stream');
  assert.equal(calls[0].body, box);
  assert.deepEqual(
    ['Fedagg-Model-Version', 'Fedagg-Round-Token', 'Fedagg-Key-Id', 'Fedagg-Num-Samples'].map((h) => calls[0].headers[h]),
    ['7', 'tok', 'k1', '12'],
  );
  assert.throws(() => new FedaggClient('http://x', { fetch, updateForm: 'xml' }), /updateForm/);
});

test('a device token goes out as Authorization: Bearer on every request', async () => {
  const { fetch, calls } = scriptedFetch([() => json(200, { selected: true }), () => json(200, { selected: true })]);
  let n = 0;
  const c = new FedaggClient('http://x', { fetch, token: async () => `tok-${++n}` });
  await c.checkin();
  await c.checkin();
  assert.deepEqual(calls.map((x) => x.headers.Authorization), ['Bearer tok-1', 'Bearer tok-2']);
  const plain = new FedaggClient('http://x', { fetch: scriptedFetch([() => json(200, {})]).fetch });
  assert.equal(plain.token, null);
  await assert.rejects(new FedaggClient('http://x', { fetch, token: 'a\nb' }).checkin(), (e) => e.code === 'bad_token');
});

test('check-in sends {} or the deviceId', async () => {
  const { fetch, calls } = scriptedFetch([() => json(200, { selected: true }), () => json(200, { selected: true })]);
  const c = new FedaggClient('http://x', { fetch });
  await c.checkin();
  await c.checkin('tv-1');
  assert.deepEqual(calls.map((x) => JSON.parse(x.body)), [{}, { deviceId: 'tv-1' }]);
});
