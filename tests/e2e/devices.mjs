// End-to-end federation with real TensorFlow.js devices: N devices (one
// process, one FedaggClient each) take part in R rounds of a running
// fedagg server, then the model of version R is loaded with TF.js and
// scored for a few of the devices' trained user vectors.
//
// Usage: node devices.mjs --server URL --out DIR [--devices 20] [--rounds 3] [--seed 1]
//                        [--round-s S]
// A round always runs to its deadline and releases what arrived before it;
// with --round-s (the server's round_deadline_s) each round's devices start
// only when at least 3/4 of a round is left, so that all of them make it.
// Writes DIR/case.json (user vectors and item rows), DIR/tfjs.json (TF.js
// logits) and DIR/model.safetensors (version R, digest checked). Exits 1
// with a message on any failure.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Device, FedaggClient, alsUserVector, loadModel, rng, tf, useFastSegmentSum } from '../../clients/tfjs/src/index.js';

const { values: args } = parseArgs({
  options: {
    server: { type: 'string' },
    out: { type: 'string' },
    devices: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    'scored-users': { type: 'string', default: '5' },
    'round-s': { type: 'string', default: '0' },
    tokens: { type: 'string' },
  },
});
// With --tokens FILE (a server with auth = jwt): one device token per line,
// device i's on line i, the late device's after them.
const TOKENS = args.tokens ? readFileSync(args.tokens, 'utf8').split('\n').filter(Boolean) : null;
const tokenOf = (i) => (TOKENS === null ? undefined : TOKENS[i]);
const NUM_DEVICES = Number(args.devices);
const ROUNDS = Number(args.rounds);
const SEED = Number(args.seed);
const POSITIVES = 8;
const FACTORS = 4;
const ROUND_S = Number(args['round-s']);
const VERSION_TIMEOUT_MS = 120_000;

const t0 = performance.now();
const elapsed = () => ((performance.now() - t0) / 1000).toFixed(2) + ' s';

function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** Planted preferences: each device's positives are its top items under a random low-rank score. */
function syntheticInteractions(numItems, numDevices, seed) {
  const next = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const items = Array.from({ length: numItems }, () => Array.from({ length: FACTORS }, gauss));
  return Array.from({ length: numDevices }, () => {
    const pref = Array.from({ length: FACTORS }, gauss);
    const scored = items.map((f, row) => [f.reduce((s, x, k) => s + x * pref[k], 0) + 0.3 * gauss(), row]);
    scored.sort((a, b) => b[0] - a[0]);
    return scored.slice(0, Math.min(POSITIVES, numItems - 1)).map(([, row]) => row);
  });
}

/** A client whose first check-in answer is a saved one: a device coming back with an old token. */
class ReplayClient extends FedaggClient {
  constructor(url, opts) {
    super(url, opts);
    this.replay = null;
  }

  checkin(deviceId) {
    const saved = this.replay;
    this.replay = null;
    return saved !== null ? Promise.resolve(saved) : super.checkin(deviceId);
  }
}

async function waitVersion(client, v) {
  const until = performance.now() + VERSION_TIMEOUT_MS;
  for (;;) {
    const latest = await client.latest();
    if (latest.version >= v) return latest;
    if (performance.now() > until) throw new Error(`version ${v} was not published within ${VERSION_TIMEOUT_MS / 1000} s (latest ${latest.version})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits until the open round has at least 3/4 of --round-s before its
 * deadline (the server shares this machine's clock): rounds follow a fixed
 * schedule, and the first one started with the server, before node did.
 */
async function freshRound(client) {
  const until = performance.now() + VERSION_TIMEOUT_MS;
  for (;;) {
    const round = await client.round();
    const left = round.deadline - Date.now() / 1000;
    if (left >= 0.75 * ROUND_S) return round;
    if (performance.now() > until) throw new Error(`no round with ${0.75 * ROUND_S} s left`);
    await new Promise((r) => setTimeout(r, Math.max(50, Math.min(1000, left * 1000))));
  }
}

async function main() {
  check(args.server && args.out, 'usage: node devices.mjs --server URL --out DIR');
  // Production mode only silences tfjs's warnings (in Node: the banner
  // suggesting the native tfjs-node backend, which cannot be installed here).
  tf.enableProdMode();
  await tf.ready();
  check(useFastSegmentSum(tf), 'the fast UnsortedSegmentSum kernel is not in place');
  console.log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}`);

  const admin = new FedaggClient(args.server);
  const start = await admin.latest();
  check(start.version === 0, `expected a fresh server at version 0, found ${start.version}`);
  const numItems = (await admin.model(0)).numItems;
  const interactions = syntheticInteractions(numItems, NUM_DEVICES, SEED);

  let retries = 0;
  const devices = interactions.map(
    (rows, i) =>
      new Device({
        client: new FedaggClient(args.server, { timeoutMs: 20000, onRetry: () => retries++, token: tokenOf(i) }),
        interactions: rows,
        seed: SEED * 1000 + i,
        deviceId: `e2e-device-${i}`,
        log: (m, level) => level === 'warn' && console.log(`  device ${i}: ${m}`),
      }),
  );
  console.log(`${NUM_DEVICES} devices, ${numItems} items, ${POSITIVES} positives each`);

  // A late device checks in to round 1 now and posts only after round R:
  // the server must answer 409 and the device must check in again.
  const lateLog = [];
  const late = new Device({
    client: new ReplayClient(args.server, { token: tokenOf(NUM_DEVICES) }),
    interactions: interactions[0],
    seed: 999,
    log: (m, level) => level === 'warn' && lateLog.push(m),
  });
  const staleCheckin = await late.client.checkin();
  check(staleCheckin.selected && staleCheckin.modelVersion === 0, 'the late device could not check in to round 1');

  for (let r = 1; r <= ROUNDS; r++) {
    const open = await freshRound(admin);
    const tr = performance.now();
    const results = await Promise.all(devices.map((d) => d.participate()));
    const posted = (performance.now() - tr) / 1000;
    for (const [i, res] of results.entries()) {
      check(typeof res.receipt === 'string' && res.receipt.length > 0, `device ${i} got no receipt in round ${r}`);
      check(res.duplicate === false, `device ${i}: duplicate update in round ${r}`);
      check(res.modelVersion === r - 1, `device ${i} trained on version ${res.modelVersion} in round ${r}`);
    }
    const roundIds = new Set(results.map((x) => x.roundId));
    check(roundIds.size === 1 && roundIds.has(open.roundId), `round ${r}: updates went to rounds ${[...roundIds]}, not ${open.roundId}`);
    const latest = await waitVersion(admin, r);
    check(latest.version === r && latest.parent === r - 1, `round ${r} published version ${latest.version} (parent ${latest.parent})`);
    const loss = results.reduce((s, x) => s + x.loss, 0) / results.length;
    console.log(
      `round ${r}: ${results.length} updates accepted in round ${[...roundIds][0]}, ` +
        `mean local loss ${loss.toFixed(4)}, posted in ${posted.toFixed(2)} s, version ` +
        `${latest.version} published at the deadline (${((performance.now() - tr) / 1000).toFixed(2)} s)`,
    );
  }

  late.client.replay = staleCheckin;
  const lateRes = await late.participate();
  check(lateLog.length === 1 && /round_closed|stale_model_version/.test(lateLog[0]), `late device: ${lateLog.join('; ')}`);
  check(lateRes.modelVersion === ROUNDS && lateRes.roundId > staleCheckin.roundId, `late device landed in ${JSON.stringify(lateRes)}`);
  console.log(`late device: "${lateLog[0]}", then accepted in round ${lateRes.roundId} on version ${lateRes.modelVersion}`);

  // The served metadata of the final version and its safetensors bytes.
  const latest = await admin.latest();
  const keys = Object.keys(latest).sort().join(',');
  check(keys === 'createdAt,formats,metrics,parent,sha256,version', `latest has fields ${keys}`);
  check(latest.version === ROUNDS && /^[0-9a-f]{64}$/.test(latest.sha256), 'latest is not the final version');
  check(latest.formats.tfjs === `/api/federated/model/${ROUNDS}`, `tfjs path ${latest.formats.tfjs}`);
  check(latest.formats.safetensors === `/api/federated/model/${ROUNDS}.safetensors`, `safetensors path ${latest.formats.safetensors}`);
  const resp = await admin.request('GET', latest.formats.safetensors, { accept: 'application/octet-stream', raw: true });
  const st = Buffer.from(await resp.arrayBuffer());
  const digest = createHash('sha256').update(st).digest('hex');
  check(digest === latest.sha256, 'safetensors bytes do not match the announced sha256');
  check(resp.headers.get('etag') === `"${latest.sha256}"`, `safetensors ETag ${resp.headers.get('etag')}`);
  writeFileSync(join(args.out, 'model.safetensors'), st);

  const budget = await admin.request('GET', '/api/privacy/budget');
  check(budget.releases === ROUNDS, `budget counts ${budget.releases} releases, expected ${ROUNDS}`);

  // TF.js scores of version R for a few devices' own (trained) user vectors.
  // ALS: the vectors are the ones the devices' histories give under version R.
  const snap = await new FedaggClient(args.server).model(ROUNDS);
  const als = snap.model === 'als';
  const model = als ? snap : await loadModel(snap);
  const rows = Array.from({ length: numItems }, (_, i) => i);
  const scored = devices.slice(0, Number(args['scored-users']));
  const scores = scored.map((d) => Array.from(d.score(model, rows)));
  const userVecs = scored.map((d) => Array.from(als ? alsUserVector(snap, d.interactions) : d.userVec));
  if (!als) model.dispose();
  const kept = devices.filter((d) => d.trainings === ROUNDS).length;
  check(kept === NUM_DEVICES, `${NUM_DEVICES - kept} devices trained more or less than once per round`);
  writeFileSync(join(args.out, 'tfjs.json'), JSON.stringify({ version: snap.version, sha256: snap.sha256, scores }));
  // Written last and renamed into place: the serving check waits for it.
  writeFileSync(
    join(args.out, 'case.json.tmp'),
    JSON.stringify({ version: ROUNDS, users: userVecs, items: rows }),
  );
  renameSync(join(args.out, 'case.json.tmp'), join(args.out, 'case.json'));
  console.log(
    `devices done: versions 1..${ROUNDS} published, epsilon spent ${budget.epsilonSpent.toFixed(3)}, ` +
      `${retries} retried requests, ${tf.memory().numTensors} live tensors, ${elapsed()}`,
  );
}

main().catch((e) => {
  console.error(`devices: ${e.stack ?? e}`);
  process.exit(1);
});
