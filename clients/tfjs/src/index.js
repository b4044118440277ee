// fedagg device client for TensorFlow.js (Node >= 18 and browsers).
//
//   import { FedaggClient, Device } from 'fedagg-device';
//   const device = new Device({ client: new FedaggClient('http://127.0.0.1:8080'), interactions: [3, 17, 42] });
//   const { receipt } = await device.participate();
//
// See README.md beside this folder's package.json.

export { FedaggClient, FedaggError, backoffMs, parseRetryAfter } from './client.js';
export { Device, initialUserVec, rng } from './device.js';
export { useFastSegmentSum } from './kernels.js';
export {
  ALS_MAX_FACTORS,
  EMBED_DIM,
  alsScores,
  alsUpdate,
  alsUserVector,
  decodeSnapshot,
  layout,
  loadModel,
  scoreItems,
  weightsVector,
} from './model.js';
export { HEADER_BYTES, encodeUpdate, sealUpdate, sealUpdateBytes, sodiumReady, toBase64 } from './seal.js';

// The TensorFlow.js instance the client uses (one per bundle), e.g. for
// tf.setBackend('cpu') in a page.
export * as tf from '@tensorflow/tfjs';
