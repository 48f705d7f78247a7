import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { WeightAverage } from '../../src/train/index.js';

describe('WeightAverage', () => {
  it('folds each step in with decay min(d, (1 + n) / (10 + n)) and reaches the target decay after the warm-up', () => {
    const w = tf.variable(tf.tensor1d([0, 10]));
    const avg = new WeightAverage(new Map([['w', w]]), 0.5);
    const expected = [0, 10];
    for (let step = 1; step <= 30; step++) {
      w.assign(tf.tensor1d([step, 10 - step]));
      const d = Math.min(0.5, (1 + step - 1) / (10 + step - 1));
      expect(avg.currentDecay()).toBeCloseTo(d, 12);
      avg.update();
      expected[0] = d * expected[0]! + (1 - d) * step;
      expected[1] = d * expected[1]! + (1 - d) * (10 - step);
    }
    expect(avg.updates).toBe(30);
    expect(avg.currentDecay()).toBe(0.5); // (31 / 40) > 0.5: the warm-up is over
    const s = avg.snapshot();
    const got = s.weights.get('w')!.dataSync();
    expect(got[0]).toBeCloseTo(expected[0]!, 4);
    expect(got[1]).toBeCloseTo(expected[1]!, 4);
    // The average lags the weights it follows (they grow by 1 a step): it is below the last value.
    expect(got[0]).toBeLessThan(30);
    tf.dispose([...s.weights.values()]);
    avg.dispose();
    w.dispose();
  });

  it('withAverage swaps the average in and puts the trained weights back, also when the callback throws', async () => {
    const w = tf.variable(tf.tensor1d([1, 2]));
    const avg = new WeightAverage(new Map([['w', w]]), 0.9, 1000);
    w.assign(tf.tensor1d([11, 12]));
    avg.update(); // 0.9 * [1, 2] + 0.1 * [11, 12] = [2, 3]
    const seen = await avg.withAverage(() => Array.from(w.dataSync()));
    expect(seen[0]).toBeCloseTo(2, 5);
    expect(seen[1]).toBeCloseTo(3, 5);
    expect(Array.from(w.dataSync())).toEqual([11, 12]);
    await expect(avg.withAverage(() => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(Array.from(w.dataSync())).toEqual([11, 12]);
    // load() goes back to an earlier average and update count; applyToVariables() keeps the average for good.
    const before = avg.snapshot();
    avg.update();
    avg.load(before);
    expect(avg.updates).toBe(1001);
    avg.applyToVariables();
    expect(Array.from(w.dataSync()).map((x) => Math.round(x * 1e4) / 1e4)).toEqual([2, 3]);
    tf.dispose([...before.weights.values()]);
    avg.dispose();
    w.dispose();
  });

  it('rejects a decay outside (0, 1)', () => {
    const w = tf.variable(tf.scalar(0));
    expect(() => new WeightAverage(new Map([['w', w]]), 1)).toThrow(/decay/);
    expect(() => new WeightAverage(new Map([['w', w]]), 0)).toThrow(/decay/);
    w.dispose();
  });
});
