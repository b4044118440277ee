// Test helpers: a snapshot written by the C side (`fedagg model init`),
// turned into the server's single-response JSON form.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The single-response JSON of a fresh C-initialised model (FEDAGG_BIN must be set). */
export function cSnapshotJson(items = 30, seed = 3, version = 0, extra = []) {
  const bin = process.env.FEDAGG_BIN;
  if (!bin) throw new Error('FEDAGG_BIN is not set (the fedagg executable writes the test snapshots)');
  const dir = mkdtempSync(join(tmpdir(), 'fa-tfjs-test-'));
  try {
    execFileSync(bin, ['model', 'init', '--items', String(items), '--seed', String(seed), '--out', dir, '--version', String(version), ...extra], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const mj = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    const weights = readFileSync(join(dir, mj.weightsManifest[0].paths[0]));
    return {
      format: mj.format,
      generatedBy: mj.generatedBy,
      convertedBy: null,
      modelTopology: mj.modelTopology,
      weightSpecs: mj.weightsManifest[0].weights,
      weightData: weights.toString('base64'),
      fedagg: mj.fedagg,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A fetch stand-in answering from a list of (request) => Response functions, in order. */
export function scriptedFetch(steps) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, method: init.method, headers: init.headers, body: init.body });
    const step = steps.shift();
    if (step === undefined) throw new Error(`unexpected request ${init.method} ${url}`);
    return step({ url, init });
  };
  return { fetch, calls };
}

export const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
