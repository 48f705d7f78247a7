/**
 * The fused norm / activation ops (src/backend/fusedOps.ts): one native kernel each on native-cpu must agree,
 * forward and through tf.grads, with the same math composed of tfjs ops (what runs on the stock cpu backend).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { activation, groupNorm, layerNorm, type FusedActivation } from '../../src/backend/index.js';
import { compareBackends, int, nativeActive, pick, randInput, rng } from './helpers.js';

/** The fused kernels that ran while fn ran (tf.profile sees every kernel). */
async function kernelsOf(fn: () => tf.Tensor | tf.Tensor[]): Promise<Set<string>> {
  const p = await tf.profile(() => {
    const r = fn();
    tf.dispose(r);
  });
  return new Set(p.kernels.map((k) => k.name));
}

describe.runIf(nativeActive())('fused ops: native kernels vs composed tfjs ops', () => {
  it('GroupNorm (+ SiLU / none) on random NHWC shapes and groups, with gradients for x, gamma, beta', async () => {
    const r = rng(11);
    for (let trial = 0; trial < 6; trial++) {
      const groups = pick(r, [1, 2, 4, 8]);
      const c = groups * int(r, 1, 6);
      const shape = [int(r, 1, 3), int(r, 1, 7), int(r, 1, 7), c];
      const act = pick(r, ['none', 'silu'] as FusedActivation[]);
      const x = randInput(r, shape, -3, 5); // a non-zero mean exercises the centring
      await compareBackends(`groupNorm ${JSON.stringify(shape)} g${groups} ${act}`,
        (xt, gt, bt) => groupNorm(xt!, gt!, bt!, groups, 1e-5, act),
        [x, randInput(r, [c], 0.5, 1.5), randInput(r, [c], -0.5, 0.5)], { grads: true, seed: trial, rtol: 1e-3 });
    }
  });

  it('LayerNorm over the last axis of 2-D and 3-D inputs, with gradients', async () => {
    const r = rng(12);
    for (const shape of [[5, 16], [2, 7, 24], [1, 1, 8]]) {
      const c = shape[shape.length - 1]!;
      await compareBackends(`layerNorm ${JSON.stringify(shape)}`, (xt, gt, bt) => layerNorm(xt!, gt!, bt!, 1e-5),
        [randInput(r, shape, -2, 3), randInput(r, [c], 0.5, 1.5), randInput(r, [c], -0.5, 0.5)], { grads: true, rtol: 1e-3 });
    }
  });

  it('SiLU, tanh-GELU and quick-GELU, with gradients', async () => {
    const r = rng(13);
    for (const act of ['silu', 'gelu_tanh', 'quick_gelu'] as FusedActivation[]) {
      await compareBackends(`activation ${act}`, (xt) => activation(xt!, act), [randInput(r, [3, 50], -8, 8)], { grads: true });
    }
  });

  it('runs as single native kernels on native-cpu and as composed ops on the stock cpu backend', async () => {
    const x = tf.randomNormal([2, 4, 4, 8]);
    const g = tf.ones([8]);
    const b = tf.zeros([8]);
    const fused = await kernelsOf(() => tf.grads((xt: tf.Tensor) => tf.sum(activation(groupNorm(xt, g, b, 4, 1e-5, 'silu'), 'gelu_tanh')))([x]));
    expect([...fused].filter((k) => k.startsWith('Native')).sort()).toEqual(
      ['NativeActivation', 'NativeActivationGrad', 'NativeGroupNorm', 'NativeGroupNormGrad']);
    expect(fused.has('Sigmoid')).toBe(false);
    await tf.setBackend('cpu');
    try {
      const composed = await kernelsOf(() => groupNorm(x, g, b, 4, 1e-5, 'silu'));
      expect(composed.has('NativeGroupNorm')).toBe(false);
      expect(composed.has('Sigmoid')).toBe(true);
    } finally {
      await tf.setBackend('native-cpu');
    }
    tf.dispose([x, g, b]);
  });
});
