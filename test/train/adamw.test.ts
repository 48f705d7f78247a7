import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { AdamW } from '../../src/train/adamw.js';

/** Reference AdamW in plain numbers (PyTorch's algorithm: decoupled decay, then the bias-corrected step). */
function referenceAdamW(p0: number[], grads: number[][], lr: number, wd: number, b1 = 0.9, b2 = 0.999, eps = 1e-8): number[] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      p[i] = p[i]! * (1 - lr * wd);
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! ** 2;
      const mh = m[i]! / (1 - b1 ** t);
      const vh = v[i]! / (1 - b2 ** t);
      p[i] = p[i]! - (lr * mh) / (Math.sqrt(vh) + eps);
    }
  });
  return p;
}

describe('AdamW', () => {
  it('matches a hand computation over several steps, with decoupled weight decay and a backbone lr ratio', () => {
    const head = tf.variable(tf.tensor1d([0.5, -1.0, 2.0]));
    const backbone = tf.variable(tf.tensor1d([1.5, -0.25]));
    const lr = 0.1;
    const eta = 0.001;
    const wd = 0.01;
    const opt = new AdamW(
      [
        { name: 'head', params: new Map([['head.w', head]]), lrScale: 1 },
        { name: 'backbone', params: new Map([['bb.w', backbone]]), lrScale: eta },
      ],
      { lr, weightDecay: wd },
    );
    const headGrads = [[0.3, -0.2, 1.0], [0.1, 0.4, -0.5], [-0.6, 0.0, 0.25]];
    const bbGrads = [[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]];
    for (let k = 0; k < 3; k++) {
      const g = { [head.name]: tf.tensor1d(headGrads[k]!), [backbone.name]: tf.tensor1d(bbGrads[k]!) };
      opt.step(g);
      Object.values(g).forEach((t) => t.dispose());
    }
    const expHead = referenceAdamW([0.5, -1.0, 2.0], headGrads, lr, wd);
    const expBb = referenceAdamW([1.5, -0.25], bbGrads, lr * eta, wd);
    const gotHead = Array.from(head.dataSync());
    const gotBb = Array.from(backbone.dataSync());
    gotHead.forEach((x, i) => expect(x).toBeCloseTo(expHead[i]!, 5));
    gotBb.forEach((x, i) => expect(x).toBeCloseTo(expBb[i]!, 6));
    // The backbone moved ~eta times as far as it would at the full rate.
    expect(Math.abs(gotBb[0]! - 1.5)).toBeLessThan(0.001);
    expect(opt.stepCount).toBe(3);
  });

  it('decays weights even with a zero gradient (decoupled decay), and a zero lrScale freezes a group', () => {
    const w = tf.variable(tf.tensor1d([2.0]));
    const frozen = tf.variable(tf.tensor1d([3.0]));
    const opt = new AdamW(
      [
        { name: 'w', params: new Map([['w', w]]), lrScale: 1 },
        { name: 'frozen', params: new Map([['f', frozen]]), lrScale: 0 },
      ],
      { lr: 0.5, weightDecay: 0.1 },
    );
    expect(opt.trainableVariables()).toEqual([w]);
    opt.step({ [w.name]: tf.tensor1d([0]), [frozen.name]: tf.tensor1d([1]) });
    // p * (1 - lr * wd) and an Adam step of 0 / (0 + eps) = 0.
    expect(w.dataSync()[0]).toBeCloseTo(2.0 * (1 - 0.05), 6);
    expect(frozen.dataSync()[0]).toBe(3.0);
  });

  it('round-trips its moments and step count through stateArrays / loadStateArrays', () => {
    const a = tf.variable(tf.tensor2d([[1, 2], [3, 4]]));
    const opt = new AdamW([{ name: 'a', params: new Map([['a', a]]), lrScale: 1 }], { lr: 0.01 });
    opt.step({ [a.name]: tf.tensor2d([[1, -1], [0.5, 2]]) });
    const state = opt.stateArrays();
    const b = tf.variable(a.clone());
    const opt2 = new AdamW([{ name: 'a', params: new Map([['a', b]]), lrScale: 1 }], { lr: 0.01 });
    opt2.loadStateArrays(state, opt.stepCount);
    const g = tf.tensor2d([[0.2, 0.3], [-0.4, 1]]);
    opt.step({ [a.name]: g });
    opt2.step({ [b.name]: g });
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
  });

  it('clips the global gradient norm when asked', () => {
    const w = tf.variable(tf.tensor1d([0, 0]));
    const opt = new AdamW([{ name: 'w', params: new Map([['w', w]]), lrScale: 1 }], { lr: 1, weightDecay: 0, clipNorm: 1 });
    const norm = opt.step({ [w.name]: tf.tensor1d([30, 40]) });
    expect(norm).toBeCloseTo(50, 4);
    // Adam's first step is lr * sign(g) regardless of scale; the moments hold the clipped gradient.
    const m = opt.stateArrays().get('m.w')!.data;
    expect(m[0]).toBeCloseTo(0.1 * 0.6, 5);
    expect(m[1]).toBeCloseTo(0.1 * 0.8, 5);
  });
});
