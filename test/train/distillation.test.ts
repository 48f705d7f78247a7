import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadCheckpoint, readSafetensors, saveCheckpoint } from '../../src/model/index.js';
import { DEFAULT_OPTIONS, train, trainModel, type TrainOptions } from '../../src/train/index.js';

function options(out: string, over: Partial<TrainOptions> = {}): TrainOptions {
  return {
    ...DEFAULT_OPTIONS,
    dataset: 'iclevr',
    config: 'tiny',
    stage: 2,
    out,
    steps: 2,
    batch: 4,
    lr: 1e-3,
    valEvery: 2,
    valBatches: 1,
    trainEpisodes: 6,
    valEpisodes: 2,
    imageSize: 16,
    checkpointMinutes: 1000,
    progress: false,
    ...over,
  };
}

const trainLines = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number; loss: number; cursor: number; eps?: number; v?: number })
    .filter((r) => r.kind === 'train');

/** A teacher whose conditional and null predictions differ: a short stage-2 run's model, every weight moved by noise. */
async function noisyTeacher(root: string): Promise<string> {
  const teacherRun = join(root, 'teacher');
  await trainModel(options(teacherRun));
  const init = join(root, 'teacher-model');
  const t = await loadCheckpoint(join(teacherRun, 'model'));
  let k = 3;
  for (const v of t.parameters()) tf.tidy(() => v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.05, 'float32', k++))));
  await saveCheckpoint(t, init, { dtype: 'float32' });
  t.dispose();
  return init;
}

describe('npm run train -- --stage guidance / progressive', () => {
  it('distils --init into a one-pass student, resumes after an interrupt to the same weights, and refuses without a teacher', async () => {
    const root = mkdtempSync(join(tmpdir(), 'train-guidance-'));
    try {
      const init = await noisyTeacher(root);
      const gd = (out: string) => options(out, { stage: 'guidance', init, steps: 4, lr: 1e-4, guidanceRange: [1, 6] });
      const a = join(root, 'a');
      const b = join(root, 'b');
      const ra = await train(gd(a));
      expect(ra).toMatchObject({ interrupted: false, steps: [4] });
      const cfg = JSON.parse(readFileSync(join(a, 'model', 'config.json'), 'utf8')) as { config: { unet: { guidanceEmbedding?: boolean } } };
      expect(cfg.config.unet.guidanceEmbedding).toBe(true);
      const la = trainLines(a);
      expect(la).toHaveLength(4);
      for (const r of la) expect(r.loss).toBeCloseTo(r.eps! + r.v!, 5);

      let polls = 0;
      expect(await train(gd(b), { shouldStop: () => ++polls > 2 })).toMatchObject({ interrupted: true });
      expect(await train({ ...gd(b), resume: true })).toMatchObject({ interrupted: false, steps: [4] });
      const lb = trainLines(b);
      expect(lb.map((r) => r.cursor)).toEqual(la.map((r) => r.cursor));
      lb.forEach((r, i) => expect(r.loss).toBeCloseTo(la[i]!.loss, 5));
      const wa = await readSafetensors(join(a, 'model', 'model.safetensors'));
      const wb = await readSafetensors(join(b, 'model', 'model.safetensors'));
      let diff = 0;
      for (const [k, t] of wa) t.data.forEach((x, i) => (diff = Math.max(diff, Math.abs(x - wb.get(k)!.data[i]!))));
      expect(diff).toBeLessThan(1e-5);
      // Only the U-Net moved: the encoders are the teacher's, bit for bit.
      const wt = await readSafetensors(join(init, 'model.safetensors'));
      const moved = (prefix: string) => [...wt].filter(([k]) => k.startsWith(prefix)).some(([k, t]) => t.data.some((x, i) => x !== wa.get(k)!.data[i]));
      expect(moved('text_encoder.')).toBe(false);
      // Validation (fixed batches, noise, phi) improves over the teacher's own one-pass prediction.
      const vals = readFileSync(join(a, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; val?: number }).filter((r) => r.kind === 'val');
      expect(vals.at(-1)!.val!).toBeLessThan(0.95 * vals[0]!.val!);
      expect(moved("unet.")).toBe(true);
      expect(wa.has('unet.guidance_embed_2.weight')).toBe(true);

      await expect(train(options(join(root, 'c'), { stage: 'guidance' }))).rejects.toThrow(/--init/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 240_000);
  it('progressive: the student (phi as input) records its step count, resumes to the same weights, and beats the teacher on its own target', async () => {
    const root = mkdtempSync(join(tmpdir(), 'train-progressive-'));
    try {
      const init = await noisyTeacher(root);
      const pd = (out: string) => options(out, { stage: 'progressive', init, steps: 4, lr: 1e-4, guidanceRange: [2, 4], studentSteps: 3, teacherSubsteps: 2 });
      const a = join(root, 'a');
      const b = join(root, 'b');
      expect(await train(pd(a))).toMatchObject({ interrupted: false, steps: [4] });
      const cfg = JSON.parse(readFileSync(join(a, 'model', 'config.json'), 'utf8')) as { config: { unet: { guidanceEmbedding?: boolean }; sampling?: { steps?: number } } };
      expect(cfg.config.unet.guidanceEmbedding).toBe(true);
      expect(cfg.config.sampling?.steps).toBe(3);
      const la = trainLines(a);
      expect(la).toHaveLength(4);
      for (const r of la) expect(r.loss).toBeCloseTo(r.eps! + r.v!, 5);
      let polls = 0;
      expect(await train(pd(b), { shouldStop: () => ++polls > 2 })).toMatchObject({ interrupted: true });
      const state = JSON.parse(readFileSync(join(b, 'last', 'trainer.json'), 'utf8')) as { kind: string };
      expect(state.kind).toBe('progressive-distillation');
      expect(await train({ ...pd(b), resume: true })).toMatchObject({ interrupted: false, steps: [4] });
      trainLines(b).forEach((r, i) => expect(r.loss).toBeCloseTo(la[i]!.loss, 5));
      const vals = readFileSync(join(a, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; val?: number }).filter((r) => r.kind === 'val');
      expect(vals.at(-1)!.val!).toBeLessThan(vals[0]!.val!);
      // A guidance run cannot resume a progressive one's checkpoint.
      await expect(train({ ...options(b, { stage: 'guidance', init, steps: 6 }), resume: true })).rejects.toThrow(/not a guidance distillation training state/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 240_000);
});
