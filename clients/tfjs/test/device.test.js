import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Device, FedaggClient, decodeSnapshot, loadModel, scoreItems, sodiumReady, tf, weightsVector } from '../src/index.js';
import { cSnapshotJson, json, scriptedFetch } from './helpers.js';

tf.enableProdMode();
const ITEMS = 30;
const snapJson = cSnapshotJson(ITEMS, 3, 4);

test('a C-written snapshot decodes, loads and reads back bit for bit', async () => {
  const snap = await decodeSnapshot(snapJson);
  assert.equal(snap.version, 4);
  assert.equal(snap.numItems, ITEMS);
  assert.equal(snap.weights.length, 64 * ITEMS + 26881);
  const model = await loadModel(snap);
  assert.deepEqual(weightsVector(model, snap.weightSpecs), snap.weights);
  const s = scoreItems(model, new Float32Array(64).fill(0.1), [0, 5, 29]);
  assert.equal(s.length, 3);
  model.dispose();
});

test('damaged snapshots are refused', async () => {
  const swapped = structuredClone(snapJson);
  [swapped.weightSpecs[1], swapped.weightSpecs[3]] = [swapped.weightSpecs[3], swapped.weightSpecs[1]];
  await assert.rejects(decodeSnapshot(swapped), /weight spec 1 is not dense_1\/kernel/);
  const short = { ...snapJson, weightData: Buffer.from(snapJson.weightData, 'base64').subarray(4).toString('base64') };
  await assert.rejects(decodeSnapshot(short), /weight data is \d+ bytes/);
  const raw = Buffer.from(snapJson.weightData, 'base64');
  raw[100] ^= 1;
  await assert.rejects(decodeSnapshot({ ...snapJson, weightData: raw.toString('base64') }), /does not match its SHA-256/);
  await assert.rejects(decodeSnapshot({ ...snapJson, fedagg: { ...snapJson.fedagg, formatVersion: 2 } }), /format version/);
});

test('local training: only touched rows move, the delta is new - old, the user vector trains', async () => {
  const snap = await decodeSnapshot(snapJson);
  const before = snap.weights.slice();
  const d = new Device({ client: null, interactions: [1, 4, 9], seed: 11, negatives: 2, epochs: 3, learningRate: 0.5 });
  const u0 = d.userVec.slice();
  const t = await d.train(snap);
  assert.deepEqual(snap.weights, before); // the snapshot is not modified
  assert.equal(t.delta.length, snap.weights.length);
  assert.equal(t.numSamples, 3);
  assert.ok(t.delta.every(Number.isFinite));
  let moved = 0;
  for (let row = 0; row < ITEMS; row++) {
    const r = t.delta.subarray(row * 64, row * 64 + 64);
    if (r.some((x) => x !== 0)) moved++;
  }
  // Positives always move; with 2 negatives each over 3 epochs, some rows stay untouched (exactly 0).
  for (const row of [1, 4, 9]) assert.ok(t.delta.subarray(row * 64, row * 64 + 64).some((x) => x !== 0), `row ${row}`);
  assert.ok(moved < ITEMS, `${moved} rows moved`);
  assert.ok(t.delta.subarray(64 * ITEMS).some((x) => x !== 0)); // the MLP moved
  assert.ok(t.userVec.some((x, i) => x !== u0[i]));
  assert.deepEqual(d.userVec, u0); // kept only after the server accepts the update
  assert.equal(tf.memory().numTensors, 0);

  const fixed = new Device({ client: null, interactions: [1], seed: 11, trainUserVec: false });
  const tf2 = await fixed.train(snap);
  assert.deepEqual(tf2.userVec, fixed.userVec);
  await assert.rejects(new Device({ client: null, interactions: [ITEMS] }).train(snap), /outside the model's 30 items/);
});

test('participate: re-checks in after round_closed, seals a correct update, keeps the user vector', async () => {
  const na = await sodiumReady();
  const kp = na.crypto_box_keypair();
  const pk = na.to_base64(kp.publicKey, na.base64_variants.ORIGINAL);
  const round = (id, token) => json(200, { roundId: id, modelVersion: 4, state: 'open', selected: true, roundToken: token });
  const { fetch, calls } = scriptedFetch([
    () => round(7, 'tok-a'),
    ({ url }) => (url.endsWith('/key') ? json(200, { keyId: 'kid', publicKey: pk }) : json(200, snapJson)),
    ({ url }) => (url.endsWith('/key') ? json(200, { keyId: 'kid', publicKey: pk }) : json(200, snapJson)),
    () => json(409, { error: { code: 'round_closed', message: 'round 7 has ended' } }),
    () => round(8, 'tok-b'),
    () => json(202, { receipt: 'r-1', roundId: 8, cohort: 1, duplicate: false }),
  ]);
  const d = new Device({ client: new FedaggClient('http://x', { fetch }), interactions: [2, 3], seed: 5 });
  const u0 = d.userVec.slice();
  const res = await d.participate();
  assert.equal(res.receipt, 'r-1');
  assert.equal(res.modelVersion, 4);
  assert.deepEqual(calls.map((c) => c.method + ' ' + new URL(c.url).pathname), [
    'POST /api/federated/checkin',
    ...calls.slice(1, 3).map((c) => 'GET ' + new URL(c.url).pathname),
    'POST /api/federated/update',
    'POST /api/federated/checkin',
    'POST /api/federated/update',
  ]);
  // The binary form by default: the sealed box is the body, the fields are headers.
  const post = calls.at(-1);
  assert.equal(post.headers['Content-Type'], 'application/octet-stream');
  assert.equal(post.headers['Fedagg-Round-Token'], 'tok-b');
  assert.equal(post.headers['Fedagg-Key-Id'], 'kid');
  assert.equal(post.headers['Fedagg-Num-Samples'], '2');
  assert.equal(post.headers['Fedagg-Model-Version'], '4');
  assert.ok(post.body instanceof Uint8Array);
  const plain = na.crypto_box_seal_open(post.body, kp.publicKey, kp.privateKey);
  const view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  assert.equal(new TextDecoder().decode(plain.subarray(0, 4)), 'FAU1');
  assert.equal(view.getUint32(4, true), 4);
  assert.equal(view.getUint32(8, true), 64 * ITEMS + 26881);
  assert.equal(view.getUint32(12, true), 2);
  assert.equal(plain.length, 16 + 4 * (64 * ITEMS + 26881));
  assert.ok(d.userVec.some((x, i) => x !== u0[i]));
});

test('participate gives up after maxAttempts when no round opens', async () => {
  const noRound = () => json(404, { error: { code: 'no_open_round', message: 'no round is open' } });
  const { fetch } = scriptedFetch([noRound, noRound]);
  const d = new Device({ client: new FedaggClient('http://x', { fetch }), interactions: [0], maxAttempts: 2 });
  await assert.rejects(d.participate(), (e) => e.code === 'gave_up');
});

test('an unknown_key answer re-fetches the key and seals again with the same token', async () => {
  const na = await sodiumReady();
  const [old, fresh] = [na.crypto_box_keypair(), na.crypto_box_keypair()];
  const b64 = (k) => na.to_base64(k.publicKey, na.base64_variants.ORIGINAL);
  const { fetch, calls } = scriptedFetch([
    () => json(200, { roundId: 3, modelVersion: 4, state: 'open', selected: true, roundToken: 'tok' }),
    ({ url }) => (url.endsWith('/key') ? json(200, { keyId: 'old', publicKey: b64(old) }) : json(200, snapJson)),
    ({ url }) => (url.endsWith('/key') ? json(200, { keyId: 'old', publicKey: b64(old) }) : json(200, snapJson)),
    () => json(400, { error: { code: 'unknown_key', message: 'keyId is not the server key' } }),
    () => json(200, { keyId: 'new', publicKey: b64(fresh) }),
    () => json(202, { receipt: 'r-2', roundId: 3, cohort: 1, duplicate: false }),
  ]);
  const d = new Device({ client: new FedaggClient('http://x', { fetch, updateForm: 'json' }), interactions: [7] });
  assert.equal((await d.participate()).receipt, 'r-2');
  assert.equal(calls.at(-1).headers['Content-Type'], 'application/json');
  const body = JSON.parse(calls.at(-1).body);
  assert.equal(body.roundToken, 'tok');
  assert.equal(body.keyId, 'new');
  const box = na.from_base64(body.encryptedGradients, na.base64_variants.ORIGINAL);
  assert.equal(new TextDecoder().decode(na.crypto_box_seal_open(box, fresh.publicKey, fresh.privateKey).subarray(0, 4)), 'FAU1');
});

test('an ALS snapshot decodes and loads; a device sends its sufficient statistics, norm 1', async () => {
  const snap = await decodeSnapshot(cSnapshotJson(12, 5, 0, ['--model', 'als', '--factors', '4']));
  assert.equal(snap.model, 'als');
  assert.equal(snap.factors, 4);
  assert.equal(snap.weights.length, 12 * 4 + 16);
  // The TF.js layers form loads, and its weights read back bit for bit.
  const model = await loadModel(snap);
  assert.deepEqual(weightsVector(model, snap.weightSpecs), snap.weights);
  model.dispose();

  const rows = [1, 4, 9];
  const device = new Device({ client: null, interactions: rows, seed: 2 });
  const t = await device.train(snap);
  assert.equal(t.numSamples, 3);
  let n2 = 0;
  for (const x of t.delta) n2 += x * x;
  assert.ok(Math.abs(Math.sqrt(n2) - 1) < 1e-5, `norm ${Math.sqrt(n2)}`);
  // u by hand: the normalised sum of rows 1, 4 and 9.
  const sum = [0, 1, 2, 3].map((j) => rows.reduce((s, r) => s + snap.weights[r * 4 + j], 0));
  const norm = Math.hypot(...sum);
  const c = 1 / Math.sqrt(4);
  for (let j = 0; j < 4; j++) {
    assert.ok(Math.abs(t.delta[4 * 4 + j] - (c * sum[j]) / norm) < 1e-6);
    assert.equal(t.delta[2 * 4 + j], 0); // row 2 is not the device's
    assert.ok(Math.abs(t.delta[48 + j * 4 + j] - (c * sum[j] * sum[j]) / (norm * norm)) < 1e-6);
  }
  // Scores: u . v_i, highest for the direction the device likes.
  const s = device.score(snap, [1, 2]);
  assert.ok(Math.abs(s[0] - [0, 1, 2, 3].reduce((a, j) => a + (sum[j] / norm) * snap.weights[4 + j], 0)) < 1e-6);
});
