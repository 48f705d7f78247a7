/**
 * The generation engine with the real tiny CDD-ICM (16x16 pixels, a few DDIM steps) and recording hooks.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { decodePng, type RgbImage } from '../../src/data/index.js';
import { Sampler, saveCheckpoint, type CddIcm, type SolverName } from '../../src/model/index.js';
import { createEngine, type BatchInfo, type EngineOptions, type GenerationEngine } from '../../src/engine/index.js';
import { backendInfo } from '../../src/backend/index.js';
import { RecordingHooks, maxDiff, soloSample, tinyModel } from './recorder.js';
import { perturb } from '../model/fixtures.js';

let model: CddIcm;
/** The fresh tiny model predicts eps = 0 (zero-initialised output), where every solver agrees: this one does not. */
let perturbed: CddIcm;
let engine: GenerationEngine | null = null;
let tensorsBefore = 0;

beforeAll(() => {
  model = tinyModel();
  perturbed = tinyModel();
  perturb(perturbed, 0.05);
});
afterAll(() => {
  model.dispose();
  perturbed.dispose();
});

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
  return soloSample(model, { ...req, guidanceScale: 1, icmGuidanceScale: 0 });
}

const settled = (hooks: RecordingHooks, ids: string[]) => Promise.all(ids.map((id) => hooks.outcome(id)));

describe('engine', () => {
  test("a session's next turn reads the previous result's latent instead of re-encoding its PNG", async () => {
    for (const cacheSize of [4096, 0]) {
      const hooks = new RecordingHooks();
      hooks.add('a1', 'A');
      hooks.add('a2', 'A');
      const { engine } = start(hooks, cacheSize === 0 ? { latentCacheSize: 0 } : {});
      engine.enqueue('A', 'a1');
      engine.enqueue('A', 'a2');
      expect(await settled(hooks, ['a1', 'a2'])).toEqual(['finished', 'finished']);
      // a2's reference is a1's result as stored (PNG, decoded again); a1's was the background.
      expect(maxDiff(hooks.references.get('a2')!, hooks.results.get('a1')!)).toBe(0);
      const st = engine.status();
      if (cacheSize > 0) expect([st.referenceLatentHits, st.referenceLatentMisses]).toEqual([1, 1]);
      else expect([st.referenceLatentHits, st.referenceLatentMisses]).toEqual([0, 2]);
      await engine.drain();
    }
  });

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
    expect(engine.status()).toMatchObject({ model: 'tiny', backend: backendInfo().name, queueLength: 0, busy: false, batching: true });
  });

  test('a best-of-n turn: its n candidates fill n batch slots, it keeps the best, a newcomer waits for room', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A', { candidates: 3 });
    hooks.add('b1', 'B', { candidates: 2 });
    hooks.add('c1', 'C');
    // A long preview grace: every preview lands before the next step, even on a loaded CI machine (with the
    // default 2 ms a slow encode may drop the last frame, which the engine allows: latest frame wins).
    const { engine, batches } = start(hooks, { maxBatchSize: 4, previewEvery: 1, previewGraceMs: 60_000 });
    engine.enqueue('A', 'a1');
    engine.enqueue('B', 'b1');
    engine.enqueue('C', 'c1');
    expect(await settled(hooks, ['a1', 'b1', 'c1'])).toEqual(['finished', 'finished', 'finished']);
    // No step denoises more than 4 samples: a1 (3) runs with c1 (1), which overtakes b1 (2); b1 waits for a1's end.
    expect(batches.map((b) => [b.turnIds.slice().sort().join(','), b.samples])).toEqual([
      ['a1,c1', 4], ['a1,c1', 4], ['a1,c1', 4], ['a1,c1', 4], ['b1', 2], ['b1', 2], ['b1', 2], ['b1', 2],
    ]);
    // The result is best-of-n sampling of the turn's request, with step-wise previews of candidate 0.
    const inp = hooks.inputs.get('a1')!;
    const sampler = new Sampler(model);
    const direct = sampler.prepare(inp);
    while (!direct.done) sampler.step([direct]);
    // (Its kept candidate is not the first, so a turn sampled plainly would not pass.)
    expect(direct.choice().scores).toHaveLength(3);
    expect(direct.choice().candidate).not.toBe(0);
    expect(maxDiff(hooks.results.get('a1')!, direct.result())).toBeLessThanOrEqual(2);
    direct.dispose();
    expect(hooks.of('progress', 'a1').map((e) => e.p.step)).toEqual([1, 2, 3]);
    // A turn asking for more candidates than the batch holds still runs (alone).
    hooks.add('d1', 'D', { candidates: 6 });
    engine.enqueue('D', 'd1');
    expect(await hooks.outcome('d1')).toBe('finished');
    expect(batches.filter((b) => b.turnIds.includes('d1')).map((b) => [b.size, b.samples])).toEqual([[1, 6], [1, 6], [1, 6], [1, 6]]);
  });

  test('sessions are served round-robin: a session with 5 queued turns does not starve another (batching off)', async () => {
    const hooks = new RecordingHooks();
    const a = ['a1', 'a2', 'a3', 'a4', 'a5'];
    for (const id of a) hooks.add(id, 'A', { steps: 2 });
    hooks.add('b1', 'B', { steps: 2 });
    hooks.add('c1', 'C', { steps: 2 });
    const { engine, batches } = start(hooks, {
      batching: false,
      onBatch: (b) => {
        batches.push(b);
        // C arrives while A's first turn runs: it still goes before A's second.
        if (batches.length === 1) engine.enqueue('C', 'c1');
      },
    });
    for (const id of a) engine.enqueue('A', id);
    engine.enqueue('B', 'b1');
    expect(engine.status()).toMatchObject({ queueLength: 6, batching: false });
    await settled(hooks, [...a, 'b1', 'c1']);
    expect(hooks.of('start').map((e) => e.turnId)).toEqual(['a1', 'b1', 'c1', 'a2', 'a3', 'a4', 'a5']);
    expect(batches.every((b) => b.size === 1)).toBe(true);
    expect(batches).toHaveLength(14);
  });

  test('with more sessions than batch slots, a freed slot goes to the session waiting longest', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A', { steps: 2 });
    hooks.add('a2', 'A', { steps: 2 });
    hooks.add('b1', 'B', { steps: 4 });
    hooks.add('c1', 'C', { steps: 2 });
    const { engine, batches } = start(hooks, { maxBatchSize: 2 });
    for (const [s, id] of [['A', 'a1'], ['A', 'a2'], ['B', 'b1'], ['C', 'c1']] as const) engine.enqueue(s, id);
    await settled(hooks, ['a1', 'a2', 'b1', 'c1']);
    expect(hooks.of('start').map((e) => e.turnId)).toEqual(['a1', 'b1', 'c1', 'a2']);
    expect(Math.max(...batches.map((b) => b.size))).toBe(2);
    expect(batches[2]!.turnIds).toEqual(['b1', 'c1']);
  });

  test("a session's turns run one at a time, in order, each on the previous result", async () => {
    const hooks = new RecordingHooks();
    for (const id of ['a1', 'a2', 'a3']) hooks.add(id, 'A', { steps: 2 });
    const { engine, batches } = start(hooks);
    for (const id of ['a1', 'a2', 'a3']) engine.enqueue('A', id);
    engine.enqueue('A', 'a2'); // a repeated id is ignored
    expect(await settled(hooks, ['a1', 'a2', 'a3'])).toEqual(['finished', 'finished', 'finished']);
    expect(hooks.of('start').map((e) => e.turnId)).toEqual(['a1', 'a2', 'a3']);
    // The next turn starts only after the previous one's result is recorded.
    expect(hooks.indexOf('start', 'a2')).toBeGreaterThan(hooks.indexOf('finished', 'a1'));
    expect(hooks.indexOf('start', 'a3')).toBeGreaterThan(hooks.indexOf('finished', 'a2'));
    expect(batches.every((b) => b.size === 1)).toBe(true);
    // Reference chaining: background -> a1 -> a2 -> a3, and each result is what the model makes of that reference.
    expect(hooks.references.get('a1')).toBe(hooks.background);
    expect(hooks.references.get('a2')).toBe(hooks.results.get('a1'));
    expect(hooks.references.get('a3')).toBe(hooks.results.get('a2'));
    expect(maxDiff(hooks.results.get('a3')!, solo(hooks.inputs.get('a3')!))).toBe(0);
    expect(maxDiff(hooks.results.get('a2')!, hooks.results.get('a3')!)).toBeGreaterThan(0);
  });

  test("a turn's solver is the one its sampler steps with, in a batch with a turn of the other solver", async () => {
    const hooks = new RecordingHooks();
    const settings = { steps: 6, seed: 5, guidanceScale: 3, icmGuidanceScale: 0 };
    hooks.add('d1', 'D', { ...settings, solver: 'ddim' });
    hooks.add('p1', 'P', { ...settings, solver: 'dpm++2m' });
    const { engine, batches } = start(hooks, { model: perturbed });
    engine.enqueue('D', 'd1');
    engine.enqueue('P', 'p1');
    expect(await settled(hooks, ['d1', 'p1'])).toEqual(['finished', 'finished']);
    expect(batches.some((b) => b.size === 2)).toBe(true);
    const alone = (id: string, solver: SolverName) => soloSample(perturbed, { ...hooks.inputs.get(id)!, solver });
    expect(maxDiff(hooks.results.get('d1')!, alone('d1', 'ddim'))).toBeLessThanOrEqual(2);
    expect(maxDiff(hooks.results.get('p1')!, alone('p1', 'dpm++2m'))).toBeLessThanOrEqual(2);
    // The same request under DDIM comes out otherwise.
    expect(maxDiff(hooks.results.get('p1')!, alone('p1', 'ddim'))).toBeGreaterThan(2);
  });

  test('a newcomer joins the running batch between steps, at its own step position', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A', { steps: 6 });
    hooks.add('b1', 'B', { steps: 3 });
    let joined = false;
    const { engine, batches } = start(hooks, {
      onBatch: (b) => {
        batches.push(b);
        if (!joined && b.steps[0] === 2) {
          joined = true;
          engine.enqueue('B', 'b1');
        }
      },
    });
    engine.enqueue('A', 'a1');
    expect(await settled(hooks, ['a1', 'b1'])).toEqual(['finished', 'finished']);
    // a1 alone for 2 steps, then both in one U-Net call at different positions until b1 is done, then a1 alone.
    expect(batches.map((b) => b.size)).toEqual([1, 1, 2, 2, 2, 1]);
    const mixed = batches[2]!;
    expect(mixed.turnIds).toEqual(['a1', 'b1']);
    expect(mixed.steps).toEqual([3, 1]);
    expect(hooks.of('finished', 'b1')[0]!.timings.meanBatchSize).toBe(2);
    expect(maxDiff(hooks.results.get('b1')!, solo(hooks.inputs.get('b1')!))).toBeLessThanOrEqual(2);
  });

  test('cancel: a queued turn is removed at once, a running one stops within one step, the session goes on', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A', { steps: 8 });
    hooks.add('a2', 'A', { steps: 2 });
    hooks.add('a3', 'A', { steps: 2 });
    let cancelledAt = -1;
    const { engine, batches } = start(hooks, {
      onBatch: (b) => {
        batches.push(b);
        if (cancelledAt < 0 && b.turnIds[0] === 'a1' && b.steps[0] === 2) {
          cancelledAt = batches.length;
          expect(engine.cancel('a2')).toBe(true);
          expect(engine.cancel('a1')).toBe(true);
        }
      },
    });
    for (const id of ['a1', 'a2', 'a3']) engine.enqueue('A', id);
    expect(await settled(hooks, ['a1', 'a2', 'a3'])).toEqual(['cancelled', 'cancelled', 'finished']);
    // a1 took no step after the one during which it was cancelled; a2 never started; a3 ran next.
    expect(batches.slice(cancelledAt).some((b) => b.turnIds.includes('a1'))).toBe(false);
    expect(batches.filter((b) => b.turnIds.includes('a1'))).toHaveLength(2);
    expect(hooks.of('start').map((e) => e.turnId)).toEqual(['a1', 'a3']);
    expect(hooks.of('finished', 'a1')).toHaveLength(0);
    // a3 starts from the session's head, which the cancelled turn did not move.
    expect(hooks.references.get('a3')).toBe(hooks.background);
    expect(engine.cancel('a3')).toBe(false);
    expect(engine.cancel('nope')).toBe(false);
  });

  test('a turn that throws fails alone; its session and the other sessions go on', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A', { reference: { width: 0, height: 16, data: new Uint8Array(10) } });
    hooks.add('a2', 'A', { steps: 2 });
    hooks.add('b1', 'B', { startError: new Error('store unavailable') });
    hooks.add('c1', 'C', { steps: 3 });
    hooks.add('d1', 'D', { steps: 0 });
    const { engine, batches } = start(hooks);
    for (const [s, id] of [['A', 'a1'], ['A', 'a2'], ['B', 'b1'], ['C', 'c1'], ['D', 'd1']] as const) engine.enqueue(s, id);
    expect(await settled(hooks, ['a1', 'a2', 'b1', 'c1', 'd1'])).toEqual(['failed', 'finished', 'failed', 'finished', 'failed']);
    expect(hooks.of('failed', 'b1')[0]!.error.message).toBe('store unavailable');
    expect(hooks.of('failed', 'd1')[0]!.error.message).toMatch(/steps/);
    expect(hooks.of('failed', 'a1')[0]!.error).toBeInstanceOf(Error);
    expect(hooks.references.get('a2')).toBe(hooks.background);
    expect(batches[0]!.turnIds).toEqual(['c1']);
    expect(batches.some((b) => b.size === 2)).toBe(true);
  });

  test('previews of the predicted x0 every N steps, with increasing step numbers, then the final image', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A', { steps: 10 });
    const { engine } = start(hooks, { previewEvery: 2 });
    engine.enqueue('A', 'a1');
    expect(await hooks.outcome('a1')).toBe('finished');
    const progress = hooks.of('progress', 'a1').map((e) => e.p);
    const steps = progress.map((p) => p.step);
    expect(steps).toEqual([...steps].sort((x, y) => x - y));
    expect(new Set(steps).size).toBe(steps.length);
    expect(steps.every((s) => s >= 1 && s < 10)).toBe(true);
    // Previews at steps 1 (the first glimpse), 2, 4, 6, 8; a frame still encoding when a newer one is ready may be
    // skipped (latest wins).
    const previews = progress.filter((p) => p.previewPng);
    const previewSteps = previews.map((p) => p.step);
    expect(previewSteps.every((s) => [1, 2, 4, 6, 8].includes(s))).toBe(true);
    expect(previewSteps.length).toBeGreaterThanOrEqual(3);
    for (const p of previews) {
      const img = await decodePng(p.previewPng!);
      expect([img.width, img.height]).toEqual([16, 16]);
      expect(p.totalSteps).toBe(10);
      expect(p.sessionId).toBe('A');
    }
    expect(progress.every((p) => p.etaMs > 0)).toBe(true);
    expect(progress.at(-1)!.etaMs).toBeLessThan(progress[0]!.etaMs);
    // Every report comes before the result.
    const fin = hooks.indexOf('finished', 'a1');
    expect(hooks.events.findLastIndex((e) => e.type === 'progress')).toBeLessThan(fin);
    expect(engine.status().stepMs).toBeGreaterThan(0);
  });

  test('with a preview grace period, every preview reaches the hooks before the next step starts', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A', { steps: 9 });
    const seen: number[][] = [];
    const { engine } = start(hooks, {
      previewEvery: 2,
      previewGraceMs: 1000,
      onBatch: () => seen.push(hooks.of('progress', 'a1').filter((e) => e.p.previewPng).map((e) => e.p.step)),
    });
    engine.enqueue('A', 'a1');
    expect(await hooks.outcome('a1')).toBe('finished');
    // When step k+1 runs, the preview of step k (k even) has been reported; step 1's (the glimpse of its x0) went
    // out before step 1 ran.
    expect(seen).toEqual([[1], [1], [1, 2], [1, 2], [1, 2, 4], [1, 2, 4], [1, 2, 4, 6], [1, 2, 4, 6], [1, 2, 4, 6, 8]]);
    expect(hooks.of('progress', 'a1').map((e) => e.p.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test('a few-step turn previews every step, the first one included, whatever previewEvery says', async () => {
    const hooks = new RecordingHooks();
    hooks.add('f1', 'A', { steps: 4 });
    const { engine } = start(hooks, { previewEvery: 5, previewGraceMs: 60_000 });
    engine.enqueue('A', 'f1');
    expect(await hooks.outcome('f1')).toBe('finished');
    // Steps 1-3 (step 4 is the final image itself).
    expect(hooks.of('progress', 'f1').filter((e) => e.p.previewPng).map((e) => e.p.step)).toEqual([1, 2, 3]);
  });

  test('drain stops after the current step and leaves unfinished turns un-finished', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A', { steps: 10 });
    hooks.add('a2', 'A', { steps: 2 });
    hooks.add('b1', 'B', { steps: 10 });
    hooks.add('c1', 'C', { steps: 2 });
    let drained: Promise<void> | null = null;
    const { engine, batches } = start(hooks, {
      maxBatchSize: 2,
      previewEvery: 1,
      onBatch: (b) => {
        batches.push(b);
        if (b.steps[0] === 2) drained ??= engine.drain();
      },
    });
    for (const [s, id] of [['A', 'a1'], ['A', 'a2'], ['B', 'b1'], ['C', 'c1']] as const) engine.enqueue(s, id);
    await new Promise<void>((resolve) => {
      const check = () => (drained ? resolve() : setTimeout(check, 5));
      check();
    });
    await drained;
    expect(batches.map((b) => b.size)).toEqual([2, 2]);
    expect(hooks.of('start').map((e) => e.turnId)).toEqual(['a1', 'b1']);
    expect(hooks.events.filter((e) => e.type === 'finished' || e.type === 'failed' || e.type === 'cancelled')).toEqual([]);
    expect(engine.status()).toMatchObject({ busy: false, running: 0, queueLength: 2 });
    engine.enqueue('D', 'd1');
    expect(engine.cancel('c1')).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(batches).toHaveLength(2);
    expect(engine.status().queueLength).toBe(2);
  });

  test('loads a checkpoint folder and reports backend, device, threads and model in status', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'engine-ckpt-'));
    try {
      await saveCheckpoint(model, dir);
      const hooks = new RecordingHooks();
      hooks.add('a1', 'A', { steps: 1 });
      const { engine } = start(hooks, { model: undefined, checkpoint: dir });
      expect(engine.status().model).toBe('loading');
      engine.enqueue('A', 'a1');
      await engine.ready!();
      expect(await hooks.outcome('a1')).toBe('finished');
      const st = engine.status();
      const b = backendInfo();
      expect(st).toMatchObject({ model: 'tiny', backend: b.name, device: b.device, threads: b.threads, queueLength: 0, busy: false });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a slow start does not hold up the other sessions', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    class SlowStore extends RecordingHooks {
      override async start(turnId: string) {
        if (turnId === 'a1') await gate;
        return super.start(turnId);
      }
    }
    const hooks = new SlowStore();
    hooks.add('a1', 'A', { steps: 2 });
    hooks.add('b1', 'B', { steps: 2 });
    const { engine, batches } = start(hooks);
    engine.enqueue('A', 'a1');
    engine.enqueue('B', 'b1');
    expect(await hooks.outcome('b1')).toBe('finished');
    expect(engine.status().busy).toBe(true);
    release();
    expect(await hooks.outcome('a1')).toBe('finished');
    expect(batches.map((b) => b.turnIds.join())).toEqual(['b1', 'b1', 'a1', 'a1']);
  });

  test('a checkpoint that does not load leaves turns queued and reports the model unavailable', async () => {
    const hooks = new RecordingHooks();
    hooks.add('a1', 'A');
    const { engine } = start(hooks, { model: undefined, checkpoint: join(tmpdir(), 'no-such-checkpoint-engine-test') });
    engine.enqueue('A', 'a1');
    await expect(engine.ready!()).rejects.toThrow();
    expect(engine.status()).toMatchObject({ model: 'unavailable', queueLength: 1, busy: false });
    await engine.drain();
    expect(hooks.events).toEqual([]);
  });

  test('a hook that rejects or throws is contained and the sessions go on', async () => {
    class FlakyStore extends RecordingHooks {
      override async finished(turnId: string, png: Buffer, timings: Parameters<RecordingHooks['finished']>[2]): Promise<void> {
        if (turnId === 'a1') {
          this.events.push({ type: 'finished', turnId, at: Date.now(), png, timings });
          throw new Error('disk full');
        }
        return super.finished(turnId, png, timings);
      }
      // Not async: throws synchronously.
      override start(turnId: string) {
        if (turnId === 'b1') throw new Error('sync throw');
        return super.start(turnId);
      }
    }
    const hooks = new FlakyStore();
    hooks.add('a1', 'A', { steps: 1 });
    hooks.add('a2', 'A', { steps: 1 });
    hooks.add('b1', 'B', { steps: 1 });
    const { engine } = start(hooks);
    engine.enqueue('A', 'a1');
    engine.enqueue('B', 'b1');
    engine.enqueue('A', 'a2');
    expect(await hooks.outcome('a2')).toBe('finished');
    expect(await hooks.outcome('b1')).toBe('failed');
    expect(hooks.of('failed', 'b1')[0]!.error.message).toBe('sync throw');
    expect(hooks.of('start').map((e) => e.turnId)).toEqual(['a1', 'a2']);
    expect(hooks.references.get('a2')).toBe(hooks.background);
  });

  test('randomised enqueue and cancel: every turn ends exactly once, a session never has two turns in flight', async () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const hooks = new RecordingHooks();
    const sessions = ['S0', 'S1', 'S2', 'S3'];
    const enqueued: Array<{ id: string; session: string }> = [];
    let n = 0;
    const { engine } = start(hooks, {
      maxBatchSize: 3,
      previewEvery: 1,
      onBatch: () => {
        if (n < 24 && rnd() < 0.6) add();
        if (rnd() < 0.25 && enqueued.length > 0) engine.cancel(enqueued[Math.floor(rnd() * enqueued.length)]!.id);
      },
    });
    const add = () => {
      const session = sessions[Math.floor(rnd() * sessions.length)]!;
      const id = `t${n++}`;
      hooks.add(id, session, { steps: 1 + Math.floor(rnd() * 3), seed: n });
      enqueued.push({ id, session });
      engine.enqueue(session, id);
    };
    for (let i = 0; i < 6; i++) add();
    // Keep feeding until 24 turns exist, then wait for all of them.
    while (n < 24) {
      await Promise.all(enqueued.map((t) => hooks.outcome(t.id)));
      if (n < 24) add();
    }
    await Promise.all(enqueued.map((t) => hooks.outcome(t.id)));
    const terminal = (e: { type: string }) => e.type === 'finished' || e.type === 'failed' || e.type === 'cancelled';
    for (const { id } of enqueued) {
      expect(hooks.events.filter((e) => e.turnId === id && terminal(e))).toHaveLength(1);
      expect(hooks.of('failed', id)).toEqual([]);
      const started = hooks.indexOf('start', id);
      const ended = hooks.events.findIndex((e) => e.turnId === id && terminal(e));
      // Progress only while running.
      for (const [i, e] of hooks.events.entries()) if (e.type === 'progress' && e.turnId === id) expect(i > started && i < ended).toBe(true);
    }
    for (const session of sessions) {
      const mine = enqueued.filter((t) => t.session === session).map((t) => t.id);
      const started = hooks.of('start').map((e) => e.turnId).filter((id) => mine.includes(id));
      // Starts follow enqueue order (turns cancelled while queued are skipped) ...
      expect(started).toEqual(mine.filter((id) => started.includes(id)));
      // ... and each starts only after the previous one of the session has ended.
      for (let i = 1; i < started.length; i++) {
        const prevEnd = hooks.events.findIndex((e) => e.turnId === started[i - 1] && terminal(e));
        expect(hooks.indexOf('start', started[i]!)).toBeGreaterThan(prevEnd);
      }
    }
    expect(hooks.of('finished').length).toBeGreaterThan(0);
    expect(hooks.of('cancelled').length).toBeGreaterThan(0);
  });

  test('status reports the backend it is given', async () => {
    const { engine } = start(new RecordingHooks(), { backend: { name: 'tensorflow', device: 'gpu:0', threads: 8 } });
    expect(engine.status()).toMatchObject({ backend: 'tensorflow', device: 'gpu:0', threads: 8, queueLength: 0, busy: false, running: 0 });
  });

  test('rejects bad options', () => {
    const hooks = new RecordingHooks();
    expect(() => createEngine({ hooks })).toThrow(/exactly one/);
    expect(() => createEngine({ model, hooks, maxBatchSize: 0 })).toThrow(/maxBatchSize/);
    expect(() => createEngine({ model, hooks, previewEvery: -1 })).toThrow(/previewEvery/);
  });
});
