// Loads the C-written TensorFlow.js snapshot in both forms (model.json +
// group1-shard1of1.bin, and the single-response JSON with base64 weightData)
// with tf.loadLayersModel(tf.io.fromMemory(...)) and checks that predict()
// gives the logits the C forward pass computed (case.json) within 1e-5.
// Usage: node check.mjs WORKDIR. Exits 1 on any mismatch.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

const TOL = 1e-5;
const work = process.argv[2];
const readJson = (name) => JSON.parse(readFileSync(join(work, name), 'utf8'));

// tfjs reads typedArray.buffer and ignores byteOffset, so pass a plain
// ArrayBuffer that covers exactly the weight bytes.
const exactBuffer = (buf) => buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);

async function predict(artifacts, c) {
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const n = c.batch;
  const users = tf.tensor2d(c.user_vecs, [n, 64], 'float32');
  const items = tf.tensor2d(c.items, [n, 1], 'int32');
  const out = model.predict([users, items]);
  const got = Array.from(await out.data());
  tf.dispose([users, items, out]);
  model.dispose();
  return got;
}

function compare(what, got, want, failures) {
  let worst = 0;
  if (got.length !== want.length) {
    failures.push(`${what}: ${got.length} outputs, expected ${want.length}`);
    return;
  }
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  console.log(`${what.padEnd(22)} max abs error ${worst.toExponential(3)} ${worst <= TOL ? 'ok' : 'MISMATCH'}`);
  if (!(worst <= TOL)) failures.push(`${what}: max abs error ${worst}`);
}

async function main() {
  await tf.ready();
  const c = readJson('case.json');
  const want = c.bce.logits;
  const failures = [];

  // File form.
  const mj = readJson('model.json');
  const manifest = mj.weightsManifest;
  if (manifest.length !== 1 || manifest[0].paths.length !== 1) failures.push('manifest is not one group of one file');
  const bin = readFileSync(join(work, manifest[0].paths[0]));
  compare('file form', await predict({
    modelTopology: mj.modelTopology,
    weightSpecs: manifest[0].weights,
    weightData: exactBuffer(bin),
  }, c), want, failures);

  // Single-response form.
  const single = readJson('model_single.json');
  const raw = Buffer.from(single.weightData, 'base64');
  const digest = createHash('sha256').update(raw).digest('hex');
  if (digest !== single.fedagg.weightsSha256) failures.push('weightsSha256 does not match weightData');
  if (!raw.equals(bin)) failures.push('single-response weightData differs from the .bin file');
  if (single.format !== 'layers-model') failures.push('format is not layers-model');
  if (single.fedagg.version !== c.meta.version || single.fedagg.numItems !== c.num_items) failures.push('fedagg metadata mismatch');
  compare('single-response form', await predict({
    modelTopology: single.modelTopology,
    weightSpecs: single.weightSpecs,
    weightData: exactBuffer(raw),
  }, c), want, failures);

  if (failures.length > 0) {
    console.log('FAILED:\n  ' + failures.join('\n  '));
    process.exit(1);
  }
  console.log(`tfjs ${tf.version.tfjs} (${tf.getBackend()}) cross-check passed`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
