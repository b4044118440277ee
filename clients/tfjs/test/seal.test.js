import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HEADER_BYTES, encodeUpdate, sealUpdate, sodiumReady } from '../src/index.js';

test('the plaintext is the worked example of docs/api.md', () => {
  const plain = encodeUpdate(7, 12, Float32Array.from([0.5, -1.0, 0.25]));
  const want = [
    0x46, 0x41, 0x55, 0x31, 0x07, 0, 0, 0, 0x03, 0, 0, 0, 0x0c, 0, 0, 0,
    0, 0, 0, 0x3f, 0, 0, 0x80, 0xbf, 0, 0, 0x80, 0x3e,
  ];
  assert.deepEqual(Array.from(plain), want);
  assert.equal(HEADER_BYTES, 16);
});

test('non-finite deltas and oversized header fields are refused before sealing', () => {
  assert.throws(() => encodeUpdate(1, 1, Float32Array.from([0, NaN])), /delta\[1\] is not finite/);
  assert.throws(() => encodeUpdate(1, 1, Float32Array.from([Infinity])), /not finite/);
  assert.throws(() => encodeUpdate(-1, 1, new Float32Array(1)), /model version/);
  assert.throws(() => encodeUpdate(1, 2 ** 32, new Float32Array(1)), /numSamples/);
});

test('the sealed box opens with the server key to the same bytes, and the plaintext is wiped', async () => {
  const na = await sodiumReady();
  const kp = na.crypto_box_keypair();
  const delta = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) / 100);
  const plain = encodeUpdate(3, 9, delta);
  const copy = plain.slice();
  const b64 = await sealUpdate(plain, na.to_base64(kp.publicKey, na.base64_variants.ORIGINAL));
  assert.match(b64, /^[A-Za-z0-9+/]+={0,2}$/);
  const box = na.from_base64(b64, na.base64_variants.ORIGINAL);
  assert.equal(box.length, copy.length + na.crypto_box_SEALBYTES);
  assert.deepEqual(na.crypto_box_seal_open(box, kp.publicKey, kp.privateKey), copy);
  assert.ok(plain.every((b) => b === 0));
});

test('a public key of the wrong size is refused', async () => {
  await assert.rejects(sealUpdate(new Uint8Array(20), Buffer.alloc(31).toString('base64')), /public key is 31 bytes/);
});
