/**
 * The generation engine with the real tiny CDD-ICM (16x16 pixels, a few DDIM steps) and recording hooks.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { decodePng, type RgbImage } from '../../src/data/index.js';
import { Sampler, saveCheckpoint, type CddIcm } from '../../src/model/index.js';
import { createEngine, type BatchInfo, type EngineOptions, type GenerationEngine } from '../../src/engine/index.js';
import { RecordingHooks, tinyModel } from './recorder.js';

let model: CddIcm;
let engine: GenerationEngine | null = null;
let tensorsBefore = 0;

beforeAll(() => {
  model = tinyModel();
});
afterAll(() => model.dispose());

/** An engine over the shared model; every test checks that no tensor outlives its turns. */
function start(hooks: RecordingHooks, opts: Partial<EngineOptions> = {}): { engine: GenerationEngine; batches: BatchInfo[] } {
  tensorsBefore = tf.memory().numTensors;
  const batches: BatchInfo[] = [];
  engine = createEngine({ model, hooks, previewEvery: 0, onBatch: (b) => batches.push(b), ...opts });
  return { engine, batches };
}

afterEach(async () => {
  await engine?.drain();
  engine = null;
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

/** What the model makes of a request alone (the reference result the engine must reproduce). */
function solo(req: { text: string; reference: RgbImage; steps: number; seed: number }): RgbImage {
  const sampler = new Sampler(model);
  const s = sampler.prepare({ ...req, guidanceScale: 1, icmGuidanceScale: 0 });
  try {
    while (!s.done) sampler.step([s]);
    return s.result();
  } finally {
    s.dispose();
  }
}

function maxDiff(a: RgbImage, b: RgbImage): number {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

const settled = (hooks: RecordingHooks, ids: string[]) => Promise.all(ids.map((id) => hooks.outcome(id)));

describe('engine', () => {
  test('turns of two sessions that are ready together are denoised in one batch and both finish', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A');
    hooks.add('b1', 'B');
    const { engine, batches } = start(hooks);
    engine.enqueue('A', 'a1');
    engine.enqueue('B', 'b1');
    expect(await settled(hooks, ['a1', 'b1'])).toEqual(['finished', 'finished']);
    // Both start together: every U-Net call carries both turns.
    expect(batches.map((b) => b.size)).toEqual([2, 2, 2, 2]);
    expect(batches[0]!.turnIds.sort()).toEqual(['a1', 'b1']);
    for (const id of ['a1', 'b1']) {
      const f = hooks.of('finished', id)[0]!;
      expect(f.timings.steps).toBe(4);
      expect(f.timings.meanBatchSize).toBe(2);
      const img = await decodePng(f.png);
      expect([img.width, img.height]).toEqual([16, 16]);
    }
    // Batching does not change what a turn produces (up to float rounding in the batched kernels).
    expect(maxDiff(hooks.results.get('b1')!, solo(hooks.inputs.get('b1')!))).toBeLessThanOrEqual(2);
    expect(engine.status()).toMatchObject({ model: 'tiny', backend: 'cpu', queueLength: 0, busy: false, batching: true });
  });
});

