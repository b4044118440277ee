// The browser device: one round of federated training from this page.
// Query parameters: items=3,17,42 (item rows this user interacted with),
// seed=N, backend=cpu|webgl (default cpu, where the client's faster
// Embedding gradient kernel applies). The outcome is shown on the page and
// left in window.fedaggResult for automation.
import { Device, FedaggClient, tf } from '/fedagg-device.js';

const params = new URLSearchParams(location.search);
const statusEl = document.getElementById('status');
const logEl = document.getElementById('log');

function log(msg) {
  logEl.textContent += `${(performance.now() / 1000).toFixed(2)} s  ${msg}\n`;
  console.log(msg);
}

function status(text, cls) {
  statusEl.textContent = text;
  statusEl.className = cls ?? '';
}

// The device's pseudonym and user vector live in this browser only.
function stored(key, make) {
  let v = localStorage.getItem(key);
  if (v === null) {
    v = make();
    localStorage.setItem(key, v);
  }
  return v;
}

async function run() {
  await tf.setBackend(params.get('backend') ?? 'cpu');
  await tf.ready();
  log(`TensorFlow.js ${tf.version.tfjs}, backend ${tf.getBackend()}`);
  const deviceId = stored('fedagg.deviceId', () => crypto.randomUUID());
  const savedVec = localStorage.getItem('fedagg.userVec');
  // A server with auth = jwt wants the device's token from the app's
  // identity provider; this example takes it from the page address.
  const token = params.get('token') ?? undefined;
  const client = new FedaggClient('', {
    token,
    onRetry: (e) => log(`${e.method} ${e.path}: ${e.reason}, retrying in ${(e.waitMs / 1000).toFixed(1)} s`),
  });
  const device = new Device({
    client,
    interactions: (params.get('items') ?? '0,1,2,3,4,5,6,7').split(',').map(Number),
    seed: Number(params.get('seed') ?? 1),
    userVec: savedVec === null ? undefined : JSON.parse(savedVec),
    deviceId,
    log,
  });
  status('training');
  const res = await device.participate();
  if (res.selected === false) {
    log(`not selected for round ${res.roundId}`);
    status('not selected this round');
    window.fedaggResult = { ok: true, selected: false, roundId: res.roundId };
    return;
  }
  localStorage.setItem('fedagg.userVec', JSON.stringify(Array.from(device.userVec)));
  log(`update accepted: round ${res.roundId}, model version ${res.modelVersion}, cohort ${res.cohort}, ` +
      `receipt ${res.receipt}, local loss ${res.loss.toFixed(4)}`);
  status('update accepted', 'ok');
  window.fedaggResult = { ok: true, selected: true, backend: tf.getBackend(), ...res };
}

run().catch((e) => {
  log(`failed: ${e.message}`);
  status('failed', 'failed');
  window.fedaggResult = { ok: false, error: String(e.message ?? e), code: e.code ?? null, status: e.status ?? null };
});
