// fedagg model snapshots in TensorFlow.js (docs/model.md): decoding the
// single-response JSON form, loading it as a layers model, and reading the
// model's weights back as the flat global vector in the canonical order
// that updates use.

import * as tf from '@tensorflow/tfjs';

export const EMBED_DIM = 64;

/** Largest factor count of an ALS model. */
export const ALS_MAX_FACTORS = 64;

/**
 * Names and shapes of the global vector, in order (docs/model.md): the NCF
 * tower, or with model 'als' the item factors and the Gram matrix.
 */
export function layout(numItems, model = 'ncf', factors = 0) {
  if (model === 'als') {
    return [
      ['item_factors/embeddings', [numItems, factors]],
      ['user_gram/embeddings', [factors, factors]],
    ];
  }
  return [
    ['item_embedding/embeddings', [numItems, EMBED_DIM]],
    ['dense_1/kernel', [2 * EMBED_DIM, 128]],
    ['dense_1/bias', [128]],
    ['dense_2/kernel', [128, 64]],
    ['dense_2/bias', [64]],
    ['dense_3/kernel', [64, 32]],
    ['dense_3/bias', [32]],
    ['out/kernel', [32, 1]],
    ['out/bias', [1]],
  ];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function fail(message) {
  const e = new Error(message);
  e.code = 'bad_model';
  return e;
}

function base64ToBytes(b64) {
  if (typeof globalThis.Buffer === 'function') {
    const buf = globalThis.Buffer.from(b64, 'base64');
    // A plain ArrayBuffer that covers exactly the bytes: tfjs reads
    // typedArray.buffer and ignores byteOffset.
    return new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  }
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Checks and decodes the JSON of GET /api/federated/model/<v>. The weight
 * specs must be exactly the canonical layout in order, the weight bytes
 * must match them in size and (where WebCrypto is available, which
 * includes Node and pages on localhost or https) the announced SHA-256.
 * Returns {version, parentVersion, numItems, epsilon, delta, sha256,
 * modelTopology, weightSpecs, weightData (ArrayBuffer), weights
 * (Float32Array over weightData: the global vector)}.
 */
export async function decodeSnapshot(json) {
  if (!LITTLE_ENDIAN) throw fail('this client needs a little-endian platform (float32 weights are little-endian)');
  if (json?.format !== 'layers-model' || typeof json.weightData !== 'string') {
    throw fail('not a TF.js single-response layers model');
  }
  const meta = json.fedagg;
  if (meta?.formatVersion !== 1 || !Number.isSafeInteger(meta.version) || !Number.isSafeInteger(meta.numItems)) {
    throw fail('the fedagg metadata is missing or has an unknown format version');
  }
  const model = meta.model ?? 'ncf';
  const factors = model === 'als' ? meta.factors : EMBED_DIM;
  if (model !== 'ncf' && model !== 'als') throw fail(`unknown model ${model}`);
  if (!Number.isSafeInteger(factors) || factors < 1 || factors > ALS_MAX_FACTORS) {
    throw fail('the ALS factor count is missing or out of range');
  }
  const specs = json.weightSpecs;
  const want = layout(meta.numItems, model, factors);
  if (!Array.isArray(specs) || specs.length !== want.length) throw fail('weight specs are not the model layout');
  let floats = 0;
  want.forEach(([name, shape], i) => {
    const s = specs[i];
    if (s?.name !== name || s.dtype !== 'float32' || JSON.stringify(s.shape) !== JSON.stringify(shape)) {
      throw fail(`weight spec ${i} is not ${name} float32 [${shape}]`);
    }
    floats += shape.reduce((a, b) => a * b, 1);
  });
  const bytes = base64ToBytes(json.weightData);
  if (bytes.byteLength !== 4 * floats) {
    throw fail(`weight data is ${bytes.byteLength} bytes, the layout needs ${4 * floats}`);
  }
  let sha256 = null;
  if (globalThis.crypto?.subtle !== undefined) {
    sha256 = await sha256Hex(bytes);
    if (typeof meta.weightsSha256 === 'string' && sha256 !== meta.weightsSha256) {
      throw fail(`weight data of version ${meta.version} does not match its SHA-256`);
    }
  }
  return {
    version: meta.version,
    parentVersion: meta.parentVersion ?? null,
    numItems: meta.numItems,
    model,
    factors,
    epsilon: meta.epsilon,
    delta: meta.delta,
    sha256,
    modelTopology: json.modelTopology,
    weightSpecs: specs,
    weightData: bytes.buffer,
    weights: new Float32Array(bytes.buffer),
  };
}

/** A tf.LayersModel holding the snapshot's weights (inputs [user_vec [B,64], item_id [B,1]]). */
export function loadModel(snap) {
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: snap.modelTopology,
      weightSpecs: snap.weightSpecs,
      weightData: snap.weightData,
    }),
  );
}

/**
 * The model's weights as one Float32Array in the order of weightSpecs (the
 * canonical order), matched by name. Variable names get a suffix when
 * several models live in one process, so the original names are used.
 */
export function weightsVector(model, weightSpecs) {
  const byName = new Map(model.weights.map((w) => [w.originalName, w]));
  const sizes = weightSpecs.map((s) => s.shape.reduce((a, b) => a * b, 1));
  const out = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let off = 0;
  weightSpecs.forEach((s, i) => {
    const w = byName.get(s.name);
    if (w === undefined) throw fail(`the model has no weight ${s.name}`);
    const data = w.read().dataSync();
    if (data.length !== sizes[i]) throw fail(`weight ${s.name} has ${data.length} values, expected ${sizes[i]}`);
    out.set(data, off);
    off += sizes[i];
  });
  return out;
}

/**
 * Logits of item rows (item id - 1) for one user vector: model.predict on
 * [user_vec tiled, rows]. Returns a Float32Array.
 */
export function scoreItems(model, userVec, rows) {
  return tf.tidy(() => {
    const n = rows.length;
    const u = tf.tile(tf.tensor2d(Float32Array.from(userVec), [1, EMBED_DIM]), [n, 1]);
    const i = tf.tensor2d(Int32Array.from(rows), [n, 1], 'int32');
    return model.predict([u, i]).dataSync().slice();
  });
}

/**
 * ALS (docs/model.md, "ALS"): the device's user vector, the normalised sum
 * of the item factor rows it interacted with (all zero when that sum is 0).
 * Accumulates in double precision like the C side.
 */
export function alsUserVector(snap, rows) {
  const f = snap.factors;
  const acc = new Float64Array(f);
  for (const r of rows) {
    for (let j = 0; j < f; j++) acc[j] += snap.weights[r * f + j];
  }
  let n2 = 0;
  for (let j = 0; j < f; j++) n2 += acc[j] * acc[j];
  const u = new Float32Array(f);
  if (n2 > 0 && Number.isFinite(n2)) for (let j = 0; j < f; j++) u[j] = acc[j] / Math.sqrt(n2);
  return u;
}

/**
 * ALS: the update of a device with user vector u and interaction rows
 * (distinct): c u on each of its rows and c u u^T in the Gram matrix,
 * c = 1 / sqrt(1 + rows), so its norm is 1 (the global vector's layout).
 */
export function alsUpdate(snap, u, rows) {
  const f = snap.factors;
  const gram = snap.numItems * f;
  const out = new Float32Array(gram + f * f);
  const c = 1 / Math.sqrt(1 + rows.length);
  for (const r of rows) for (let j = 0; j < f; j++) out[r * f + j] = c * u[j];
  for (let a = 0; a < f; a++) for (let b = 0; b < f; b++) out[gram + a * f + b] = c * u[a] * u[b];
  return out;
}

/** ALS scores (u . v_i) of item rows. */
export function alsScores(snap, u, rows) {
  const f = snap.factors;
  return Float32Array.from(rows, (r) => {
    let s = 0;
    for (let j = 0; j < f; j++) s += u[j] * snap.weights[r * f + j];
    return s;
  });
}
