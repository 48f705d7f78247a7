import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { GatedFusion, IcmHead, symmetricInfoNce } from '../../src/model/index.js';

/** erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7) for an exact GELU. */
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}
const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

describe('gated fusion (Eq. 1)', () => {
  it('computes g*h + (1-g)*u from [u; v; u*v; u-v] as a hand computation does', () => {
    const d = 2;
    const f = new GatedFusion(d);
    // W is [4d, d] (x W): rows index the concatenated features.
    const Wg = [[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6], [0.7, -0.8], [0.2, 0.1], [-0.3, 0.2], [0.05, -0.1], [0.4, 0.3]];
    const Wh = [[-0.2, 0.1], [0.5, -0.4], [0.3, 0.3], [-0.6, 0.2], [0.1, 0.9], [0.2, -0.2], [-0.7, 0.1], [0.05, 0.6]];
    const bg = [0.1, -0.1];
    const bh = [-0.2, 0.3];
    f.gate.weight.assign(tf.tensor2d(Wg));
    f.gate.bias!.assign(tf.tensor1d(bg));
    f.hidden.weight.assign(tf.tensor2d(Wh));
    f.hidden.bias!.assign(tf.tensor1d(bh));
    const u = [[0.5, -1], [2, 0.25]];
    const v = [[1.5, 0.5], [-0.5, -0.75]];
    const out = f.apply(tf.tensor2d(u), tf.tensor2d(v)).arraySync();
    u.forEach((ui, b) => {
      const vi = v[b]!;
      const x = [...ui, ...vi, ...ui.map((a, k) => a * vi[k]!), ...ui.map((a, k) => a - vi[k]!)];
      for (let j = 0; j < d; j++) {
        const g = sigmoid(x.reduce((s, xk, k) => s + xk * Wg[k]![j]!, bg[j]!));
        const h = gelu(x.reduce((s, xk, k) => s + xk * Wh[k]![j]!, bh[j]!));
        expect(out[b]![j]).toBeCloseTo(g * h + (1 - g) * ui[j]!, 3);
      }
    });
    f.dispose();
  });
});

/** Eq. 12 by hand: mean over rows of -log softmax(S/tau)_ii plus the same for S^T. */
function handIcm(S: number[][], tau: number): number {
  const n = S.length;
  const side = (M: number[][]): number =>
    M.reduce((acc, row, i) => {
      const lse = Math.log(row.reduce((s, x) => s + Math.exp(x / tau), 0));
      return acc - (row[i]! / tau - lse);
    }, 0) / n;
  const St = S[0]!.map((_, j) => S.map((r) => r[j]!));
  return side(S) + side(St);
}

describe('ICM loss (Eq. 12)', () => {
  it('with hard negatives, the softmax of each target also runs over the extra conditions', () => {
    const S = [[0.9, 0.1, -0.3], [0.2, 0.5, 0.4], [-0.1, 0.6, 0.8]];
    const H = [[0.7, 0.0, 0.1], [0.1, 0.2, 0.75]]; // two extra conditions, close to targets 0 and 2
    const tau = Math.exp(-1);
    const n = S.length;
    const rowSide = S.reduce((acc, row, i) => acc - (row[i]! / tau - Math.log(row.reduce((s, x) => s + Math.exp(x / tau), 0))), 0) / n;
    const colSide =
      S[0]!.reduce((acc, _, j) => {
        const cands = [...S.map((r) => r[j]!), ...H.map((r) => r[j]!)];
        return acc - (S[j]![j]! / tau - Math.log(cands.reduce((s, x) => s + Math.exp(x / tau), 0)));
      }, 0) / n;
    const got = symmetricInfoNce(tf.tensor2d(S), tf.scalar(-1), tf.tensor2d(H)).dataSync()[0]!;
    expect(got).toBeCloseTo(rowSide + colSide, 4);
    expect(got).toBeGreaterThan(handIcm(S, tau));
    // No extra rows is Eq. 12 exactly.
    expect(symmetricInfoNce(tf.tensor2d(S), tf.scalar(-1), tf.zeros([0, 3]) as tf.Tensor2D).dataSync()[0]).toBeCloseTo(handIcm(S, tau), 5);
    // The gradient pushes a hard negative away from its target.
    const g = tf.grad((h: tf.Tensor) => symmetricInfoNce(tf.tensor2d(S), tf.scalar(-1), h as tf.Tensor2D))(tf.tensor2d(H));
    expect(g.dataSync()[0]).toBeGreaterThan(0);
  });

  it('is the symmetric InfoNCE of a known similarity matrix', () => {
    const S = [[0.9, 0.1, -0.3], [0.2, 0.5, 0.4], [-0.1, 0.6, 0.8]];
    for (const logTau of [-1, 0, -2]) {
      const got = symmetricInfoNce(tf.tensor2d(S), tf.scalar(logTau)).dataSync()[0]!;
      expect(got).toBeCloseTo(handIcm(S, Math.exp(logTau)), 4);
    }
  });

  it('uses cosine similarities and a trainable temperature initialised to e^-1', () => {
    const head = new IcmHead();
    expect(head.temperature).toBeCloseTo(Math.exp(-1), 6);
    expect(head.logTau.trainable).toBe(true);
    // rows of f and z with known cosines; scaling a vector must not change anything
    const f = tf.tensor2d([[2, 0], [0, 3], [1, 1]]);
    const z = tf.tensor2d([[5, 0], [0, 0.5], [0, 2]]);
    const r = Math.SQRT1_2;
    const S = [[1, 0, 0], [0, 1, 1], [r, r, r]];
    expect(head.loss(f, z).dataSync()[0]).toBeCloseTo(handIcm(S, Math.exp(-1)), 4);
    // the gradient reaches the temperature
    const g = tf.variableGrads(() => head.loss(f, z), [head.logTau]).grads[head.logTau.name]!;
    expect(Math.abs(g.dataSync()[0]!)).toBeGreaterThan(0);
    // matched pairs score lower loss than mismatched ones
    const good = head.loss(tf.tensor2d([[1, 0], [0, 1]]), tf.tensor2d([[1, 0.1], [0.1, 1]])).dataSync()[0]!;
    const bad = head.loss(tf.tensor2d([[1, 0], [0, 1]]), tf.tensor2d([[0.1, 1], [1, 0.1]])).dataSync()[0]!;
    expect(good).toBeLessThan(bad);
    head.dispose();
  });
});
