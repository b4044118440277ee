// The sealed update of POST /api/federated/update (docs/api.md): a 16-byte
// header ("FAU1", model version, dimension, numSamples; u32 little-endian)
// followed by the float32 little-endian delta, sealed with libsodium's
// crypto_box_seal to the server's X25519 key and sent as padded standard
// base64.

import sodium from 'libsodium-wrappers';

export const HEADER_BYTES = 16;
const MAGIC = [0x46, 0x41, 0x55, 0x31]; // "FAU1"
const U32_MAX = 0xffffffff;

/** libsodium, once its wasm module is ready. */
export async function sodiumReady() {
  await sodium.ready;
  return sodium;
}

/**
 * The update plaintext for a delta trained on modelVersion with numSamples
 * examples. Throws on a non-finite value (the server would refuse it) or
 * out-of-range header fields.
 * @param {number} modelVersion
 * @param {number} numSamples
 * @param {Float32Array} delta  theta_local - theta_global in canonical order
 * @returns {Uint8Array}
 */
export function encodeUpdate(modelVersion, numSamples, delta) {
  for (const [what, v] of [['model version', modelVersion], ['numSamples', numSamples], ['dimension', delta.length]]) {
    if (!Number.isInteger(v) || v < 0 || v > U32_MAX) throw new RangeError(`${what} ${v} does not fit the update header`);
  }
  const plain = new Uint8Array(HEADER_BYTES + 4 * delta.length);
  const view = new DataView(plain.buffer);
  plain.set(MAGIC, 0);
  view.setUint32(4, modelVersion, true);
  view.setUint32(8, delta.length, true);
  view.setUint32(12, numSamples, true);
  for (let i = 0; i < delta.length; i++) {
    const x = delta[i];
    if (!Number.isFinite(x)) throw new RangeError(`delta[${i}] is not finite`);
    view.setFloat32(HEADER_BYTES + 4 * i, x, true);
  }
  return plain;
}

/**
 * crypto_box_seal(plain, publicKey): the sealed box, the body of the binary
 * update form. The plaintext is wiped afterwards: it is the device's update
 * in the clear.
 * @param {Uint8Array} plain
 * @param {string} publicKeyB64  from GET /api/federated/key
 * @returns {Promise<Uint8Array>}
 */
export async function sealUpdateBytes(plain, publicKeyB64) {
  const na = await sodiumReady();
  const pk = na.from_base64(publicKeyB64, na.base64_variants.ORIGINAL);
  if (pk.length !== na.crypto_box_PUBLICKEYBYTES) {
    plain.fill(0);
    throw new RangeError(`server public key is ${pk.length} bytes, expected ${na.crypto_box_PUBLICKEYBYTES}`);
  }
  try {
    return na.crypto_box_seal(plain, pk);
  } finally {
    plain.fill(0);
  }
}

/** The sealed box as padded standard base64 (the JSON update form's encryptedGradients). */
export async function toBase64(box) {
  const na = await sodiumReady();
  return na.to_base64(box, na.base64_variants.ORIGINAL);
}

/**
 * crypto_box_seal(plain, publicKey) as padded standard base64 (the JSON
 * form). The plaintext is wiped afterwards.
 * @param {Uint8Array} plain
 * @param {string} publicKeyB64  from GET /api/federated/key
 * @returns {Promise<string>}
 */
export async function sealUpdate(plain, publicKeyB64) {
  return toBase64(await sealUpdateBytes(plain, publicKeyB64));
}
