import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../src/model/index.js';
import { DEFAULT_OPTIONS, trainModel, type TrainOptions } from '../../src/train/index.js';

function options(out: string, emaDecay = 0): TrainOptions {
  return {
    ...DEFAULT_OPTIONS,
    dataset: 'iclevr',
    config: 'tiny',
    stage: 2,
    out,
    steps: 4,
    batch: 4,
    lr: 3e-3,
    valEvery: 2,
    valBatches: 1,
    trainEpisodes: 6,
    valEpisodes: 2,
    imageSize: 16,
    checkpointMinutes: 1000,
    progress: false,
    emaDecay,
  };
}

function trainLines(out: string): { step: number; loss: number; cursor: number }[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number; loss: number; cursor: number })
    .filter((r) => r.kind === 'train');
}

describe('interrupt and resume', () => {
  it.each([
    ['without a weight average', 0],
    ['with a weight average (--ema-decay)', 0.9],
  ])('a run stopped after 2 steps and resumed ends in the same state as an uninterrupted run, %s', async (_, emaDecay) => {
    const root = mkdtempSync(join(tmpdir(), 'train-resume-'));
    try {
      const a = join(root, 'a');
      const b = join(root, 'b');
      const ra = await trainModel(options(a, emaDecay));
      expect(ra.interrupted).toBe(false);
      expect(ra.steps).toEqual([4]);

      let polls = 0;
      const rb1 = await trainModel(options(b, emaDecay), { shouldStop: () => ++polls > 2 });
      expect(rb1.interrupted).toBe(true);
      const stopped = JSON.parse(readFileSync(join(b, 'last', 'trainer.json'), 'utf8')) as { loop: { step: number; cursor: number; adamStep: number } };
      expect(stopped.loop).toMatchObject({ step: 2, cursor: 8, adamStep: 2 });
      if (emaDecay > 0) {
        // The model files hold the average; raw.safetensors the optimised weights, which differ from it.
        expect(stopped.loop).toMatchObject({ averageUpdates: 2 });
        const model = await readSafetensors(join(b, 'last', 'model.safetensors'));
        const raw = await readSafetensors(join(b, 'last', 'raw.safetensors'));
        expect(raw.size).toBeGreaterThan(0);
        let differ = 0;
        for (const [k, t] of raw) t.data.forEach((x, i) => (differ = Math.max(differ, Math.abs(x - model.get(k)!.data[i]!))));
        expect(differ).toBeGreaterThan(1e-4);
      } else {
        expect(existsSync(join(b, 'last', 'raw.safetensors'))).toBe(false);
      }

      const rb2 = await trainModel({ ...options(b, emaDecay), resume: true });
      expect(rb2.interrupted).toBe(false);
      expect(rb2.steps).toEqual([4]);

      // Same batches (data position) and the same losses step by step.
      const la = trainLines(a);
      const lb = trainLines(b);
      expect(lb.map((r) => r.cursor)).toEqual(la.map((r) => r.cursor));
      lb.forEach((r, i) => expect(r.loss).toBeCloseTo(la[i]!.loss, 5));

      // Same final weights, and the same optimizer moments in the kept (best) checkpoint.
      const wa = await readSafetensors(join(a, 'model', 'model.safetensors'));
      const wb = await readSafetensors(join(b, 'model', 'model.safetensors'));
      expect([...wb.keys()]).toEqual([...wa.keys()]);
      let maxDiff = 0;
      for (const [k, t] of wa) t.data.forEach((x, i) => (maxDiff = Math.max(maxDiff, Math.abs(x - wb.get(k)!.data[i]!))));
      expect(maxDiff).toBeLessThan(1e-5);
      const oa = await readSafetensors(join(a, 'best', 'optimizer.safetensors'));
      const ob = await readSafetensors(join(b, 'best', 'optimizer.safetensors'));
      let maxMoment = 0;
      for (const [k, t] of oa) t.data.forEach((x, i) => (maxMoment = Math.max(maxMoment, Math.abs(x - ob.get(k)!.data[i]!))));
      expect(oa.size).toBeGreaterThan(0);
      expect(maxMoment).toBeLessThan(1e-6);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('Ctrl-C (SIGINT) to the CLI checkpoints after the current step and exits with 130; --resume continues', async () => {
    const root = mkdtempSync(join(tmpdir(), 'train-sigint-'));
    const out = join(root, 'run');
    const args = ['--import', 'tsx', 'src/train/cli.ts', '--dataset', 'iclevr', '--config', 'tiny', '--image-size', '16', '--stage', '2', '--out', out,
      '--steps', '1000', '--batch', '2', '--val-every', '1000', '--val-batches', '1', '--train-episodes', '4', '--val-episodes', '2', '--no-progress'];
    try {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'silent' } });
      const code = await new Promise<number | null>((resolve, reject) => {
        const metrics = join(out, 'metrics.jsonl');
        const timer = setInterval(() => {
          // Interrupt once a few steps are done.
          if (existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').filter((l) => l.includes('"train"')).length >= 3) {
            clearInterval(timer);
            child.kill('SIGINT');
          }
        }, 200);
        child.on('error', reject);
        child.on('exit', (c) => {
          clearInterval(timer);
          resolve(c);
        });
      });
      expect(code).toBe(130);
      const st = JSON.parse(readFileSync(join(out, 'last', 'trainer.json'), 'utf8')) as { loop: { step: number; adamStep: number; finished: string | null } };
      expect(st.loop.step).toBeGreaterThanOrEqual(3);
      expect(st.loop.adamStep).toBe(st.loop.step);
      expect(st.loop.finished).toBeNull();
      const r = await trainModel({ ...options(out), steps: st.loop.step + 1, batch: 2, trainEpisodes: 4, valEvery: 1000, resume: true });
      expect(r.steps).toEqual([st.loop.step + 1]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
