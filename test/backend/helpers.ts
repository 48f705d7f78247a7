/** Shared helpers for the backend tests: seeded randomness and native-cpu vs stock cpu comparison. */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { backendInfo, nativeCallCounts, fallbackCounts } from '../../src/backend/index.js';

/** The native tests only make sense when the addon is built and selected. */
export const nativeActive = (): boolean => backendInfo().name === 'native-cpu';

import { mulberry32 as rng } from '../../src/data/index.js';

export { rng };

export const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
export const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** A tensor description independent of any backend. */
export interface Input {
  shape: number[];
  values: Float32Array;
  dtype?: 'float32' | 'int32';
}

export function randInput(r: () => number, shape: number[], lo = -1, hi = 1): Input {
  const n = shape.reduce((p, d) => p * d, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = lo + (hi - lo) * r();
  return { shape, values };
}

type Fn = (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/** Run fn on a backend; returns every output's values and shape. */
export async function runOn(backend: string, fn: Fn, inputs: Input[]): Promise<{ shape: number[]; values: Float32Array }[]> {
  await tf.setBackend(backend);
  const res = tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.dtype === 'int32' ? Int32Array.from(i.values) : i.values, i.shape, i.dtype ?? 'float32'));
    const out = fn(...xs);
    return Array.isArray(out) ? out : [out];
  });
  const vals = res.map((t) => ({ shape: t.shape, values: Float32Array.from(t.dataSync() as ArrayLike<number>) }));
  tf.dispose(res);
  return vals;
}

/** Forward outputs and, for float outputs, gradients of a random projection of them w.r.t. every input. */
export function withGrads(fn: Fn, seed: number): Fn {
  return (...xs) => {
    const g = tf.grads((...ys: tf.Tensor[]) => {
      const out = fn(...ys);
      const outs = Array.isArray(out) ? out : [out];
      const r = rng(seed);
      // A random cotangent makes every output element matter to the gradient.
      return tf.addN(outs.map((o) => tf.sum(tf.mul(o, tf.tensor(Float32Array.from({ length: o.size }, () => r() * 2 - 1), o.shape)))));
    });
    const out = fn(...xs);
    return [...(Array.isArray(out) ? out : [out]), ...g(xs)];
  };
}

export function expectClose(actual: Float32Array, expected: Float32Array, what: string, rtol = 2e-4, atolScale = 2e-5): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let scale = 1;
  for (const v of expected) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  const atol = atolScale * scale;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e)) {
      expect(Number.isNaN(a), `${what}[${i}]: expected NaN, got ${a}`).toBe(true);
      continue;
    }
    if (Math.abs(a - e) > atol + rtol * Math.abs(e)) {
      expect.fail(`${what}[${i}]: native ${a} vs stock ${e} (tol ${atol + rtol * Math.abs(e)})`);
    }
  }
}

/**
 * Compare fn on native-cpu and stock cpu (forward and, with grads, all input gradients); also require that
 * each of `kernels` actually ran natively, so a silent fallback cannot make the test pass.
 */
export async function compareBackends(what: string, fn: Fn, inputs: Input[], opts: { grads?: boolean; kernels?: string[]; seed?: number; rtol?: number } = {}): Promise<void> {
  const f = opts.grads ? withGrads(fn, opts.seed ?? 7) : fn;
  const before = new Map(nativeCallCounts());
  const nat = await runOn('native-cpu', f, inputs);
  for (const k of opts.kernels ?? []) {
    expect((nativeCallCounts().get(k) ?? 0) - (before.get(k) ?? 0), `${what}: kernel ${k} ran natively`).toBeGreaterThan(0);
  }
  const ref = await runOn('cpu', f, inputs);
  await tf.setBackend('native-cpu');
  expect(nat.length).toBe(ref.length);
  nat.forEach((o, i) => {
    expect(o.shape, `${what}: output ${i} shape`).toEqual(ref[i]!.shape);
    expectClose(o.values, ref[i]!.values, `${what}: output ${i}`, opts.rtol);
  });
}

export { fallbackCounts, nativeCallCounts };
