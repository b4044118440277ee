// A faster UnsortedSegmentSum for TensorFlow.js's cpu backend.
//
// The gradient of an Embedding lookup (tf.gather) is an UnsortedSegmentSum
// of the output gradient over the looked-up rows. The cpu backend of tfjs
// 4.22 implements it with one whole-tensor equal/multiply/sum per segment,
// i.e. O(numSegments * batch * 64) work and allocations per step: with 1682
// items that is about 2 s per batch of 64. A scatter-add is O(batch * 64)
// and gives the same sums.

const KERNEL = 'UnsortedSegmentSum';
const BACKEND = 'cpu';

function scatterAdd({ inputs, backend, attrs }) {
  const { x, segmentIds } = inputs;
  const numSegments = attrs.numSegments;
  const xVals = backend.readSync(x.dataId);
  const ids = backend.readSync(segmentIds.dataId);
  const inner = ids.length === 0 ? 0 : xVals.length / ids.length;
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const out = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const seg = ids[i];
    if (seg < 0 || seg >= numSegments) continue; // as TensorFlow: out-of-range ids are dropped
    const src = i * inner;
    const dst = seg * inner;
    for (let j = 0; j < inner; j++) out[dst + j] += xVals[src + j];
  }
  return backend.makeTensorInfo(outShape, x.dtype, out);
}

/**
 * Replaces the cpu backend's UnsortedSegmentSum kernel with a scatter-add.
 * Idempotent; a no-op where the cpu backend is not registered. Other
 * backends (webgl, wasm) keep their own kernels.
 * @param {typeof import('@tensorflow/tfjs')} tf
 * @returns {boolean} whether the fast kernel is in place
 */
export function useFastSegmentSum(tf) {
  const current = tf.getKernel(KERNEL, BACKEND);
  if (current !== undefined && current.kernelFunc === scatterAdd) return true;
  if (tf.findBackendFactory(BACKEND) == null) return false;
  if (current !== undefined) tf.unregisterKernel(KERNEL, BACKEND);
  tf.registerKernel({ kernelName: KERNEL, backendName: BACKEND, kernelFunc: scatterAdd });
  return true;
}
