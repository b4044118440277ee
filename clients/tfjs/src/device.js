// One device: its own interactions and user vector, local training with
// TensorFlow.js, and one round of the protocol (check in, download, train,
// seal, post), retried the way docs/api.md asks.
//
// The user embedding is the model input `user_vec`; it never leaves the
// device. Training treats it as one more variable: each step minimises the
// binary cross-entropy over the MLP, the item embedding AND the user vector
// (a tf.Variable tiled over the batch), so the user vector follows its own
// gradient, as in the C trainer (docs/model.md, "Local training"). The
// trained vector is kept only once the server accepted the update; a
// device constructed with trainUserVec: false keeps it fixed.

import * as tf from '@tensorflow/tfjs';

import { FedaggError, backoffMs, sleep } from './client.js';
import { useFastSegmentSum } from './kernels.js';
import { EMBED_DIM, alsScores, alsUpdate, alsUserVector, loadModel, scoreItems, weightsVector } from './model.js';
import { encodeUpdate, sealUpdateBytes, toBase64 } from './seal.js';

/** Answers to an update that mean "check in again" (docs/api.md). */
const RECHECKIN = new Set(['round_closed', 'stale_model_version', 'round_full']);

/** A small seeded PRNG (mulberry32): negatives and shuffling are reproducible per seed. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** N(0, sd^2) user vector from a seed, as the C side initialises users. */
export function initialUserVec(seed, sd = 0.01) {
  const next = rng(seed ^ 0x5bd1e995);
  const v = new Float32Array(EMBED_DIM);
  for (let i = 0; i < EMBED_DIM; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - next()));
    const th = 2 * Math.PI * next();
    v[i] = sd * r * Math.cos(th);
    if (i + 1 < EMBED_DIM) v[i + 1] = sd * r * Math.sin(th);
  }
  return v;
}

export class Device {
  /**
   * @param {object} o
   * @param {import('./client.js').FedaggClient} o.client
   * @param {number[]} o.interactions  item rows (item id - 1) the user interacted with
   * @param {Float32Array} [o.userVec]  64 floats; default N(0, 0.01^2) from the seed
   * @param {number} [o.seed]           fixes the initial user vector, negatives and shuffling
   * @param {string} [o.deviceId]       stable pseudonym, needed when the server samples devices
   * @param {number} [o.epochs]         local epochs per round (default 2)
   * @param {number} [o.batchSize]      default 32
   * @param {number} [o.learningRate]   default 0.1
   * @param {'sgd'|'adam'} [o.optimizer]  default 'sgd' (untouched embedding rows stay exactly 0 in the delta)
   * @param {number} [o.negatives]      sampled negatives per positive and epoch (default 4)
   * @param {boolean} [o.trainUserVec]  train the user vector with its own gradient (default true)
   * @param {number} [o.maxAttempts]    check-ins per participate() before giving up (default 8)
   * @param {(msg: string, level: 'info'|'warn') => void} [o.log]  progress ('info') and
   *        re-check-ins ('warn')
   */
  constructor(o) {
    const rows = Array.from(o.interactions ?? [], Number);
    if (rows.length === 0 || !rows.every((r) => Number.isInteger(r) && r >= 0)) {
      throw new RangeError('a device needs at least one interaction, given as item rows >= 0');
    }
    this.client = o.client;
    this.interactions = [...new Set(rows)];
    this.seed = (o.seed ?? 1) >>> 0;
    this.userVec = o.userVec ? Float32Array.from(o.userVec) : initialUserVec(this.seed);
    if (this.userVec.length !== EMBED_DIM) throw new RangeError(`userVec must have ${EMBED_DIM} values`);
    this.deviceId = o.deviceId;
    this.epochs = o.epochs ?? 2;
    this.batchSize = o.batchSize ?? 32;
    this.learningRate = o.learningRate ?? 0.1;
    this.optimizer = o.optimizer ?? 'sgd';
    this.negatives = o.negatives ?? 4;
    this.trainUserVec = o.trainUserVec ?? true;
    this.maxAttempts = o.maxAttempts ?? 8;
    this.log = o.log ?? (() => {});
    this.trainings = 0;
  }

  /** One epoch's examples: every positive plus `negatives` uniform non-positives each, shuffled. */
  examples(numItems, next) {
    const pos = new Set(this.interactions);
    const items = [];
    const labels = [];
    const canSample = pos.size < numItems;
    for (const r of this.interactions) {
      items.push(r);
      labels.push(1);
      for (let k = 0; canSample && k < this.negatives; k++) {
        let j;
        do j = Math.floor(next() * numItems);
        while (pos.has(j));
        items.push(j);
        labels.push(0);
      }
    }
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
      [labels[i], labels[j]] = [labels[j], labels[i]];
    }
    return { items, labels };
  }

  /**
   * Trains a copy of the snapshot's model on this device's interactions.
   * Returns {delta (Float32Array, canonical order), userVec (trained, not
   * yet kept), numSamples, loss (mean BCE of the last epoch), steps}.
   */
  async train(snap) {
    const bad = this.interactions.find((r) => r >= snap.numItems);
    if (bad !== undefined) throw new RangeError(`interaction row ${bad} is outside the model's ${snap.numItems} items`);
    if (snap.model === 'als') {
      // ALS has no local training: the user vector comes from the item
      // factors each round and the update is its sufficient statistics.
      const u = alsUserVector(snap, this.interactions);
      this.trainings++;
      return { delta: alsUpdate(snap, u, this.interactions), userVec: this.userVec, numSamples: this.interactions.length, loss: 0, steps: 0 };
    }
    useFastSegmentSum(tf);
    const model = await loadModel(snap);
    const user = tf.tidy(() => tf.variable(tf.tensor2d(this.userVec, [1, EMBED_DIM]), this.trainUserVec));
    const opt = this.optimizer === 'adam' ? tf.train.adam(this.learningRate) : tf.train.sgd(this.learningRate);
    const vars = model.trainableWeights.map((w) => w.read());
    if (this.trainUserVec) vars.push(user);
    const next = rng(
      Math.imul(this.seed, 0x9e3779b1) ^ Math.imul(snap.version + 1, 0x85ebca6b) ^ Math.imul(this.trainings + 1, 0xc2b2ae35),
    );
    let loss = 0;
    let steps = 0;
    try {
      for (let e = 0; e < this.epochs; e++) {
        const { items, labels } = this.examples(snap.numItems, next);
        let sum = 0;
        for (let b = 0; b < items.length; b += this.batchSize) {
          const n = Math.min(this.batchSize, items.length - b);
          const itemT = tf.tensor2d(items.slice(b, b + n), [n, 1], 'int32');
          const labelT = tf.tensor2d(labels.slice(b, b + n), [n, 1]);
          const cost = opt.minimize(
            () => {
              const u = tf.tile(user, [n, 1]);
              const logits = model.apply([u, itemT], { training: true });
              return tf.losses.sigmoidCrossEntropy(labelT, logits);
            },
            true,
            vars,
          );
          sum += cost.dataSync()[0] * n;
          tf.dispose([cost, itemT, labelT]);
          steps++;
        }
        loss = sum / items.length;
        await sleep(0); // let the event loop (HTTP, a page's UI) run between epochs
      }
      const trained = weightsVector(model, snap.weightSpecs);
      const delta = new Float32Array(trained.length);
      for (let i = 0; i < delta.length; i++) delta[i] = trained[i] - snap.weights[i];
      this.trainings++;
      return { delta, userVec: user.dataSync().slice(), numSamples: this.interactions.length, loss, steps };
    } finally {
      opt.dispose();
      user.dispose();
      model.dispose();
    }
  }

  /**
   * Takes part in the open round: check in, download the round's model,
   * train, seal and post. 503s are retried inside the client; 409
   * round_closed / stale_model_version / round_full and a missing open
   * round lead to a new check-in (after a backoff), at most maxAttempts
   * times. Returns {receipt, roundId, cohort, duplicate, modelVersion,
   * loss, steps}, or {selected: false, roundId} when the server's sampling
   * left this device out.
   */
  async participate() {
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      if (attempt > 0) await sleep(backoffMs(attempt - 1));
      let ck;
      try {
        ck = await this.client.checkin(this.deviceId);
      } catch (e) {
        // No round open yet, or this deviceId already holds a token of the
        // open round (e.g. its update was refused as round_full): wait for
        // the next round.
        if (e instanceof FedaggError && (e.code === 'no_open_round' || e.code === 'already_checked_in')) {
          this.log(`check-in: ${e.code}; trying again`, 'warn');
          continue;
        }
        throw e;
      }
      if (!ck.selected) return { selected: false, roundId: ck.roundId };
      if (ck.state !== 'open') {
        this.log(`round ${ck.roundId} is ${ck.state}; checking in again`, 'warn');
        continue;
      }
      this.log(`checked in to round ${ck.roundId} on model version ${ck.modelVersion}`, 'info');
      const [snap] = await Promise.all([this.client.model(ck.modelVersion), this.client.key()]);
      const t = await this.train(snap);
      this.log(`trained ${t.steps} steps on ${t.numSamples} interactions, loss ${t.loss.toFixed(4)}`, 'info');
      let res;
      try {
        res = await this.postSealed(ck, t);
      } catch (e) {
        if (e instanceof FedaggError && e.status === 409 && RECHECKIN.has(e.code)) {
          this.log(`update for round ${ck.roundId}: ${e.code}; checking in again`, 'warn');
          continue;
        }
        throw e;
      } finally {
        t.delta.fill(0); // the update in the clear is not needed any more
      }
      this.userVec = t.userVec;
      return { ...res, modelVersion: ck.modelVersion, loss: t.loss, steps: t.steps };
    }
    throw new FedaggError(`gave up after ${this.maxAttempts} check-ins`, { code: 'gave_up' });
  }

  /**
   * Seals the trained delta to the server key and posts it with the
   * check-in's token. An unknown_key answer (the server's key changed)
   * re-fetches the key and seals again, once.
   */
  async postSealed(ck, t) {
    for (let keyTries = 0; ; keyTries++) {
      const key = await this.client.key();
      const box = await sealUpdateBytes(encodeUpdate(ck.modelVersion, t.numSamples, t.delta), key.publicKey);
      const fields = { modelVersion: ck.modelVersion, roundToken: ck.roundToken, keyId: key.keyId, numSamples: t.numSamples };
      try {
        return await this.client.postUpdate(
          this.client.updateForm === 'json' ? { ...fields, encryptedGradients: await toBase64(box) } : { ...fields, box },
        );
      } catch (e) {
        if (!(e instanceof FedaggError && e.code === 'unknown_key' && keyTries === 0)) throw e;
        this.log('the server key changed; fetching it again', 'warn');
        this.client.forgetKey();
      }
    }
  }

  /**
   * Scores of item rows: logits under a loaded NCF model for this device's
   * user vector, or for an ALS snapshot (decodeSnapshot's result) u . v_i
   * with the user vector its interactions give.
   */
  score(model, rows) {
    if (model?.model === 'als') return alsScores(model, alsUserVector(model, this.interactions), rows);
    return scoreItems(model, this.userVec, rows);
  }
}
