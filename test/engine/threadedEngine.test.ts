/**
 * The engine in its worker thread (ThreadedEngine): real tiny CDD-ICM checkpoints loaded in the thread, the
 * recording hooks answered on this thread, and the faults: a killed thread, a model that does not load.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { RgbImage } from '../../src/data/index.js';
import { loadCheckpoint, modelWeights, saveCheckpoint, setModelWeights, type CddIcm } from '../../src/model/index.js';
import { nativeCallCounts, resetKernelCounts } from '../../src/backend/index.js';
import { ENGINE_DEFAULTS, ThreadedEngine, type BatchInfo, type ThreadedEngineOptions, type TurnInputs } from '../../src/engine/index.js';
import { RecordingHooks, maxDiff, soloSample, tinyModel } from './recorder.js';

let dir: string;
/** Two tiny models with different weights, and a folder whose weights are unreadable. */
let ckptA: string;
let ckptB: string;
let broken: string;
let modelA: CddIcm;
let modelB: CddIcm;
let engine: ThreadedEngine | null = null;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'threaded-engine-'));
  ckptA = join(dir, 'a');
  ckptB = join(dir, 'b');
  broken = join(dir, 'broken');
  for (const [p, m] of [[ckptA, untrained()], [ckptB, untrained()], [broken, tinyModel()]] as const) {
    await saveCheckpoint(m, p);
    m.dispose();
  }
  await writeFile(join(broken, 'model.safetensors'), 'not safetensors');
  // The same weights on this thread, to check what the engine thread computed.
  modelA = await loadCheckpoint(ckptA);
  modelB = await loadCheckpoint(ckptB);
});

afterAll(async () => {
  modelA?.dispose();
  modelB?.dispose();
  await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  await engine?.drain();
  engine = null;
});

/**
 * A tiny model whose zero-initialised layers (the U-Net's output convolutions, as in improved-diffusion) get small
 * random weights: two fresh tiny models would otherwise predict the same (zero) noise and draw the same images.
 */
function untrained(): CddIcm {
  const m = tinyModel();
  const w = modelWeights(m);
  for (const [k, v] of w) {
    if (k.endsWith('.weight') && v.data.every((x) => x === 0)) v.data.set(Float32Array.from(v.data, () => (Math.random() - 0.5) * 0.2));
  }
  setModelWeights(m, w);
  return m;
}

function start(hooks: RecordingHooks, over: Partial<ThreadedEngineOptions> = {}): { engine: ThreadedEngine; batches: BatchInfo[] } {
  const batches: BatchInfo[] = [];
  engine = new ThreadedEngine({
    models: { a: ckptA, b: ckptB },
    hooks,
    settings: { ...ENGINE_DEFAULTS, previewEvery: 0 },
    onBatch: (b) => batches.push(b),
    ...over,
  });
  return { engine, batches };
}

const solo = (model: CddIcm, req: TurnInputs): RgbImage => soloSample(model, req);

const settled = (hooks: RecordingHooks, ids: string[]) => Promise.all(ids.map((id) => hooks.outcome(id)));

async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('threaded engine', () => {
  test('turns are denoised in the engine thread: this thread runs no kernel, and the results are the model\'s', async () => {
    const hooks = new RecordingHooks();
    const { engine } = start(hooks, { settings: { ...ENGINE_DEFAULTS, previewEvery: 1 } });
    await engine.ready();
    expect(engine.threadId).not.toBeNull();
    hooks.add('t1', 'S', { steps: 4 });
    hooks.add('t2', 'S', { steps: 4 });
    resetKernelCounts();
    const tensors = tf.memory().numTensors;
    engine.enqueue('S', 't1', 'a');
    engine.enqueue('S', 't2', 'a');
    expect(engine.status().queueLength).toBe(2);
    expect(await settled(hooks, ['t1', 't2'])).toEqual(['finished', 'finished']);
    // No tensor and no native kernel on this thread while two turns ran.
    expect([...nativeCallCounts().values()].reduce((n, c) => n + c, 0)).toBe(0);
    expect(tf.memory().numTensors).toBe(tensors);
    // Per-session order: t2 starts after t1 ended (its reference is t1's result).
    expect(hooks.indexOf('start', 't2')).toBeGreaterThan(hooks.indexOf('finished', 't1'));
    expect(maxDiff(hooks.references.get('t2')!, hooks.results.get('t1')!)).toBe(0);
    // Previews of every step crossed the thread boundary as PNGs, in step order.
    const steps = hooks.of('progress', 't1').map((e) => e.p.step);
    expect(steps).toEqual([...steps].sort((x, y) => x - y));
    expect(hooks.of('progress', 't1').some((e) => e.p.previewPng?.subarray(1, 4).toString() === 'PNG')).toBe(true);
    expect(maxDiff(hooks.results.get('t1')!, solo(modelA, hooks.inputs.get('t1')!))).toBeLessThanOrEqual(2);
  });

  test('each model renders its own turns, loaded on its first one, and no batch mixes models', async () => {
    const hooks = new RecordingHooks();
    const { engine, batches } = start(hooks);
    await engine.ready();
    expect(engine.status().models?.map((m) => [m.key, m.loaded])).toEqual([['a', false], ['b', false]]);
    const modelOf: Record<string, string> = {};
    const turns = [['a1', 'SA', 'a'], ['b1', 'SB', 'b'], ['a2', 'SC', 'a'], ['b2', 'SD', 'b']] as const;
    for (const [id, session, model] of turns) {
      hooks.add(id, session, { steps: 4, seed: 7 });
      modelOf[id] = model;
    }
    for (const [id, session, model] of turns) engine.enqueue(session, id, model);
    expect(await settled(hooks, Object.keys(modelOf))).toEqual(['finished', 'finished', 'finished', 'finished']);
    await until(() => engine.status().models?.every((m) => m.loaded) ?? false, 'both models loaded in the status');
    for (const b of batches) {
      expect(b.model).toBeDefined();
      for (const id of b.turnIds) expect(modelOf[id]).toBe(b.model);
    }
    // Turns of one model did share a batch (a1 with a2, b1 with b2).
    expect(batches.some((b) => b.model === 'a' && b.size === 2)).toBe(true);
    // Same text, seed and reference (seed 7, blank background): each model's result is its own.
    for (const id of ['a1', 'b1']) {
      const inputs = hooks.inputs.get(id)!;
      const own = modelOf[id] === 'a' ? modelA : modelB;
      const other = modelOf[id] === 'a' ? modelB : modelA;
      expect(maxDiff(hooks.results.get(id)!, solo(own, inputs))).toBeLessThanOrEqual(2);
      expect(maxDiff(hooks.results.get(id)!, solo(other, inputs))).toBeGreaterThan(2);
    }
  });

  test('a killed engine thread is restarted and its turns run again, each ending exactly once, in session order', async () => {
    const hooks = new RecordingHooks();
    const { engine } = start(hooks);
    await engine.ready();
    const first = engine.threadId;
    hooks.add('k1', 'S', { steps: 40 });
    hooks.add('k2', 'S', { steps: 3 });
    hooks.add('k3', 'T', { steps: 3 });
    engine.enqueue('S', 'k1', 'a');
    engine.enqueue('S', 'k2', 'a');
    engine.enqueue('T', 'k3', 'a');
    await until(() => hooks.of('start', 'k1').length > 0 && engine.status().stepMs !== null, 'k1 to be denoising');
    await engine.crashThread();
    expect(await settled(hooks, ['k1', 'k2', 'k3'])).toEqual(['finished', 'finished', 'finished']);
    expect(engine.restartCount).toBe(1);
    expect(engine.threadId).not.toBe(first);
    for (const id of ['k1', 'k2', 'k3']) expect(hooks.of('finished', id)).toHaveLength(1);
    // k1 was started again in the new thread, and k2 still waited for it.
    expect(hooks.of('start', 'k1').length).toBeGreaterThanOrEqual(2);
    expect(hooks.indexOf('start', 'k2')).toBeGreaterThan(hooks.indexOf('finished', 'k1'));
    expect(maxDiff(hooks.results.get('k1')!, solo(modelA, hooks.inputs.get('k1')!))).toBeLessThanOrEqual(2);
  });

  test('a turn running whenever the thread dies is failed after maxCrashesPerTurn, with the reason', async () => {
    const hooks = new RecordingHooks();
    const { engine } = start(hooks, { maxCrashesPerTurn: 2 });
    await engine.ready();
    hooks.add('p1', 'S', { steps: 200 });
    engine.enqueue('S', 'p1', 'a');
    for (let crash = 1; crash <= 2; crash++) {
      await until(() => hooks.of('start', 'p1').length >= crash && engine.threadId !== null && engine.status().busy, `p1 started (${crash})`);
      await new Promise((r) => setTimeout(r, 50));
      await engine.crashThread();
    }
    expect(await hooks.outcome('p1')).toBe('failed');
    expect(hooks.of('failed', 'p1')[0]!.error.message).toMatch(/crashed 2 times/);
    // The engine serves on.
    hooks.add('p2', 'S', { steps: 2 });
    await until(() => engine.threadId !== null, 'the restarted thread');
    engine.enqueue('S', 'p2', 'a');
    expect(await hooks.outcome('p2')).toBe('finished');
  });

  test('a model that cannot load fails its turns with the reason; the other model serves on', async () => {
    const hooks = new RecordingHooks();
    const { engine } = start(hooks, { models: { a: ckptA, broken } });
    await engine.ready();
    hooks.add('x1', 'S', { steps: 2 });
    hooks.add('ok', 'T', { steps: 2 });
    engine.enqueue('S', 'x1', 'broken');
    engine.enqueue('T', 'ok', 'a');
    expect(await settled(hooks, ['x1', 'ok'])).toEqual(['failed', 'finished']);
    expect(hooks.of('failed', 'x1')[0]!.error.message).toMatch(/The model "broken" could not be loaded/);
    hooks.add('y1', 'S', { steps: 2 });
    engine.enqueue('S', 'y1', 'nope');
    expect(await hooks.outcome('y1')).toBe('failed');
    expect(hooks.of('failed', 'y1')[0]!.error.message).toMatch(/No model "nope" is served/);
  });

  test('cancel stops a running turn across the thread boundary; drain leaves the unfinished ones without an end', async () => {
    const hooks = new RecordingHooks();
    const { engine, batches } = start(hooks);
    await engine.ready();
    hooks.add('c1', 'S', { steps: 200 });
    hooks.add('d1', 'T', { steps: 200 });
    hooks.add('d2', 'T', { steps: 2 });
    engine.enqueue('S', 'c1', 'a');
    engine.enqueue('T', 'd1', 'a');
    engine.enqueue('T', 'd2', 'a');
    await until(() => batches.length > 0, 'a first step');
    expect(engine.cancel('c1')).toBe(true);
    expect(await hooks.outcome('c1')).toBe('cancelled');
    const stepsOfC1 = batches.filter((b) => b.turnIds.includes('c1')).length;
    expect(stepsOfC1).toBeLessThan(200);
    await engine.drain();
    expect(hooks.of('finished', 'd1')).toHaveLength(0);
    expect(hooks.of('failed', 'd1')).toHaveLength(0);
    expect(hooks.of('start', 'd2')).toHaveLength(0);
    expect(engine.cancel('d1')).toBe(false);
  });
});
