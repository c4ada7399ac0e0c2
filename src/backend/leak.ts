import { tf } from './tf';

/**
 * Runs `fn` and throws when it leaves more tensors alive than before (tf.tidy/dispose
 * discipline). Returns fn's result; tensors inside the result are not counted if `keep`
 * says how many the caller expects to receive.
 */
export async function assertNoTensorLeak<T>(fn: () => T | Promise<T>, keep = 0): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn();
  const after = tf.memory().numTensors;
  if (after - before > keep) {
    throw new Error(`tensor leak: ${after - before} tensors left alive (expected at most ${keep})`);
  }
  return out;
}
