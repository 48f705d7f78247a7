import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { AdamW, WeightAverage, initialLoopState, runStage, type LoopOptions, type StageTask } from '../../src/train/index.js';

/** runStage from a fresh state with quiet defaults (no progress bar, no timed checkpoints); metrics go to `dir`. */
function runScripted(task: StageTask, dir: string, over: Partial<LoopOptions> & Pick<LoopOptions, 'budget'>, onBest: () => void = () => {}) {
  return runStage(task, initialLoopState(0.1, 0), null, { saveLast: async () => {}, saveBest: async () => void onBest() }, {
    valEvery: 2,
    checkpointMinutes: 1000,
    metricsFile: join(dir, 'metrics.jsonl'),
    progress: false,
    shouldStop: () => false,
    ...over,
  });
}

/** One weight pulled toward 3 by a quadratic; validation returns a scripted sequence of losses. */
function scriptedTask(valLosses: number[]): { task: StageTask; w: tf.Variable; weightsAtVal: number[]; weightsAtLoss: number[] } {
  const w = tf.variable(tf.scalar(0));
  const optimizer = new AdamW([{ name: 'w', params: new Map([['w', w]]), lrScale: 1 }], { lr: 0.1, weightDecay: 0 });
  const weightsAtVal: number[] = [];
  const weightsAtLoss: number[] = [];
  let i = 0;
  const task: StageTask = {
    name: 'scripted',
    optimizer,
    batchSize: 1,
    loss: () => {
      weightsAtLoss.push(w.dataSync()[0]!);
      const total = tf.square(tf.sub(w, 3)) as tf.Scalar;
      return { total, parts: {} };
    },
    validate: () => {
      weightsAtVal.push(w.dataSync()[0]!);
      return valLosses[Math.min(i++, valLosses.length - 1)]!;
    },
    snapshot: () => new Map([['w', tf.clone(w)]]),
    restore: (s) => w.assign(s.get('w')! as tf.Scalar),
  };
  return { task, w, weightsAtVal, weightsAtLoss };
}

describe('runStage validation handling', () => {
  it('restores the kept weights and halves the lr on a worse validation, and stops at the 5th restore', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loop-'));
    try {
      // baseline 10 (kept), 9 (kept, at step 2), then worse five times.
      const { task, w, weightsAtVal } = scriptedTask([10, 9, 9.5, 9.6, 9.7, 9.8, 9.9]);
      let bestSaves = 0;
      const r = await runScripted(task, dir, { budget: { steps: 100 } }, () => void bestSaves++);
      expect(r.state.finished).toBe('restores');
      expect(r.state.step).toBe(12); // validations at 0 (baseline), 2, 4, 6, 8, 10, 12
      expect(r.state.validation.restores).toBe(5);
      expect(r.state.validation.best).toBe(9);
      expect(r.state.validation.bestStep).toBe(2);
      expect(task.optimizer.lr).toBeCloseTo(0.1 / 32, 10);
      expect(bestSaves).toBe(2);
      // After every restore the next 2 steps start again from the kept weights, so each later validation
      // sees the same weight (same start, same gradients, halved steps make it move less each time).
      const kept = weightsAtVal[1]!;
      expect(w.dataSync()[0]).toBeCloseTo(kept, 6);
      for (let k = 3; k < weightsAtVal.length; k++) {
        expect(Math.abs(weightsAtVal[k]! - kept)).toBeLessThan(Math.abs(weightsAtVal[k - 1]! - kept) + 1e-9);
      }
      const vals = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; action?: string });
      expect(vals.filter((v) => v.kind === 'val').map((v) => v.action)).toEqual(['improved', 'improved', 'restore', 'restore', 'restore', 'restore', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops at the step budget and ends on the kept model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loop-'));
    try {
      const { task, w } = scriptedTask([10, 8, 9]); // the last validation (at the budget end) is worse
      const r = await runScripted(task, dir, { budget: { steps: 4 } });
      expect(r.state.finished).toBe('steps');
      expect(r.state.step).toBe(4);
      // Kept model = the weights after 2 steps of Adam at lr 0.1 from 0 toward 3: about 0.2.
      expect(w.dataSync()[0]).toBeCloseTo(0.2, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with --val-patience 2 keeps training through one worse validation and restores only after two in a row', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loop-'));
    try {
      // baseline 10, 9 (kept, step 2), 9.5 (wait: training goes on), 8 (kept, step 6), 8.5, 8.6 (restore).
      const { task, weightsAtVal } = scriptedTask([10, 9, 9.5, 8, 8.5, 8.6]);
      const r = await runScripted(task, dir, { budget: { steps: 10 }, valPatience: 2 });
      const vals = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; action?: string; lr?: number });
      const valRows = vals.filter((v) => v.kind === 'val');
      expect(valRows.map((v) => v.action)).toEqual(['improved', 'improved', 'wait', 'improved', 'wait', 'restore']);
      expect(valRows[2]!.lr).toBeCloseTo(0.1, 10); // a wait does not halve
      expect(r.state.validation.restores).toBe(1);
      expect(r.state.validation.bestStep).toBe(6);
      // The wait kept the weights: they moved on toward 3 between steps 2 and 6 (no jump back to step 2's).
      expect(weightsAtVal[3]!).toBeGreaterThan(weightsAtVal[2]!);
      expect(weightsAtVal[2]!).toBeGreaterThan(weightsAtVal[1]!);
      // The restore at step 10 went back to step 6's weights, where the stage ends (its budget is spent).
      expect(r.state.finished).toBe('steps');
      expect(task.optimizer.lr).toBeCloseTo(0.05, 10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with a weight average validates the average, restores it with the weights, and ends the stage on the kept average', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loop-'));
    try {
      // baseline 10, 9 (kept, step 2), 9.5 at step 4 (restore): the stage ends on step 2's average.
      const { task, w, weightsAtVal, weightsAtLoss } = scriptedTask([10, 9, 9.5]);
      const average = new WeightAverage(new Map([[w.name, w]]), 0.5);
      const r = await runScripted(task, dir, { budget: { steps: 4 }, average });
      // Raw weights after steps 1 and 2 are what the loss saw at steps 2 and 3.
      const [w1, w2] = [weightsAtLoss[1]!, weightsAtLoss[2]!];
      const a1 = 0.1 * 0 + 0.9 * w1; // decay min(0.5, 1/10)
      const a2 = (2 / 11) * a1 + (9 / 11) * w2; // decay min(0.5, 2/11)
      expect(weightsAtVal[1]!).toBeCloseTo(a2, 6);
      expect(weightsAtVal[1]!).toBeLessThan(w2); // the average lags weights moving toward 3
      expect(r.state.averageUpdates).toBe(2); // restored with the kept model (it had 2 updates)
      expect(r.state.finished).toBe('steps');
      expect(w.dataSync()[0]).toBeCloseTo(a2, 6);
      average.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
