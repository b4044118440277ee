import assert from 'node:assert/strict';
import { test } from 'node:test';

import { rng, tf, useFastSegmentSum } from '../src/index.js';

tf.enableProdMode();

function embeddingGradient(table, ids, dy) {
  // d/d table of sum(gather(table, ids) * dy): the UnsortedSegmentSum path.
  return tf.tidy(() => {
    const t = tf.tensor2d(table, [20, 8]);
    const g = tf.grad((x) => tf.sum(tf.mul(tf.gather(x, tf.tensor1d(ids, 'int32')), tf.tensor2d(dy, [ids.length, 8]))));
    return g(t).dataSync().slice();
  });
}

test('the scatter-add kernel gives the stock kernel\'s sums, repeated rows included', async () => {
  await tf.setBackend('cpu');
  const next = rng(5);
  const table = Float32Array.from({ length: 160 }, () => next() - 0.5);
  const ids = [3, 7, 3, 19, 0, 7, 7, 12];
  const dy = Float32Array.from({ length: ids.length * 8 }, () => next() - 0.5);
  const stock = embeddingGradient(table, ids, dy);
  assert.equal(useFastSegmentSum(tf), true);
  assert.equal(useFastSegmentSum(tf), true); // idempotent
  const fast = embeddingGradient(table, ids, dy);
  for (let i = 0; i < stock.length; i++) assert.ok(Math.abs(stock[i] - fast[i]) <= 1e-6, `index ${i}: ${stock[i]} vs ${fast[i]}`);
  assert.equal(fast.slice(8, 16).every((x) => x === 0), true); // row 1 was not looked up

  const direct = tf.unsortedSegmentSum(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]), tf.tensor1d([2, -1, 2], 'int32'), 3);
  assert.deepEqual(Array.from(direct.dataSync()), [0, 0, 0, 0, 6, 8]);
  direct.dispose();
});
