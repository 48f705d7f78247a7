import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { backgroundFor, generateIclevrEpisodes, type Episode } from '../../src/data/index.js';
import { WordTokenizer, createModel, modelConfig, sampleWithLatents, type CddIcm } from '../../src/model/index.js';
import {
  DEFAULT_OPTIONS,
  batchTensors,
  buildTurnDataset,
  checkSelfReferences,
  hostBatch,
  mixSeed,
  ownReferenceSlots,
  readSelfReferences,
  rolloutOrder,
  rolloutSelfReferences,
  trainModel,
  type RolloutOptions,
} from '../../src/train/index.js';

const SIZE = 16;

function tinyIclevrModel(episodes: readonly Episode[]): CddIcm {
  const texts = episodes.flatMap((e) => e.turns.map((t) => t.text));
  return createModel(modelConfig('tiny', { imageSize: SIZE }), { tokenizer: WordTokenizer.fromCorpus(texts, { contextLength: 24 }) });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('scheduled sampling: rollouts of the model own canvases', () => {
  let root = '';
  const episodes = generateIclevrEpisodes({ count: 8, seed: 5, split: 'train' });
  let model: CddIcm;
  const settings = { count: 3, steps: 3, guidanceScale: 2, icmGuidanceScale: 0, seed: 7, trainEpisodes: episodes.length };
  const opts = (file: string, over: Partial<RolloutOptions> = {}): RolloutOptions => ({ ...settings, file, batch: 2, ...over });

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'rollouts-'));
    model = tinyIclevrModel(episodes);
  });
  afterAll(() => {
    model.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it('records each turn but the last as the next turn reference, generated as at inference', async () => {
    const file = join(root, 'a.safetensors');
    const r = await rolloutSelfReferences(model, episodes, opts(file));
    const chosen = rolloutOrder(episodes.length, 3, settings.seed);
    expect(new Set(chosen).size).toBe(3);
    expect(r.episodesDone).toBe(3);
    expect(r.turns.length).toBe(chosen.reduce((s, e) => s + episodes[e]!.turns.length - 1, 0));
    const ds = buildTurnDataset('iclevr', episodes, SIZE);
    checkSelfReferences(r, ds, [model.latentSize, model.latentSize, model.latentChannels]);

    // Entries of the first episode: turn 1's reference is the model's turn-0 canvas on the background, turn 2's
    // continues from that canvas with its latent handed on, exactly as the engine and eval do.
    const e = chosen[0]!;
    const base = episodes.slice(0, e).reduce((s, ep) => s + ep.turns.length, 0);
    const i0 = [...r.turns].indexOf(base + 1);
    const i1 = [...r.turns].indexOf(base + 2);
    expect(i0).toBeGreaterThanOrEqual(0);
    expect(i1).toBeGreaterThan(i0);
    expect(r.texts[i0]).toBe(episodes[e]!.turns[1]!.text);
    const seedOf = (t: number): number => mixSeed(settings.seed, 67, e, t) % 2147483647;
    const [g0] = await sampleWithLatents(model, [
      { text: episodes[e]!.turns[0]!.text, reference: backgroundFor('iclevr', SIZE), steps: 3, guidanceScale: 2, icmGuidanceScale: 0, seed: seedOf(0) },
    ]);
    const px = SIZE * SIZE * 3;
    expect(maxAbsDiff(r.pixels.subarray(i0 * px, (i0 + 1) * px), g0!.image.data)).toBeLessThanOrEqual(1);
    const [g1] = await sampleWithLatents(model, [
      { text: episodes[e]!.turns[1]!.text, reference: g0!.image, referenceLatent: g0!.latent, steps: 3, guidanceScale: 2, icmGuidanceScale: 0, seed: seedOf(1) },
    ]);
    const lat = g1!.latent.length;
    expect(maxAbsDiff(r.latents.subarray(i1 * lat, (i1 + 1) * lat), g1!.latent)).toBeLessThan(1e-4);
    // The file holds what was returned.
    const back = await readSelfReferences(file);
    expect([...back.turns]).toEqual([...r.turns]);
    expect(back.texts).toEqual(r.texts);
    expect(maxAbsDiff(back.latents, r.latents)).toBe(0);
    expect(maxAbsDiff(back.pixels, r.pixels)).toBe(0);
  }, 120_000);

  it('an interrupted rollout continues to the same file; other settings are refused', async () => {
    const whole = await readSelfReferences(join(root, 'a.safetensors'));
    const file = join(root, 'b.safetensors');
    let polls = 0;
    const part = await rolloutSelfReferences(model, episodes, opts(file, { shouldStop: () => ++polls > 1 }));
    expect(part.episodesDone).toBe(2);
    const rest = await rolloutSelfReferences(model, episodes, opts(file));
    expect(rest.episodesDone).toBe(3);
    expect([...rest.turns]).toEqual([...whole.turns]);
    expect(maxAbsDiff(rest.latents, whole.latents)).toBe(0);
    await expect(rolloutSelfReferences(model, episodes, opts(file, { steps: 4 }))).rejects.toThrow(/other settings/);
  }, 120_000);

  it('a rollout file of other episodes is refused', async () => {
    const r = await readSelfReferences(join(root, 'a.safetensors'));
    const shape: [number, number, number] = [model.latentSize, model.latentSize, model.latentChannels];
    const other = buildTurnDataset('iclevr', generateIclevrEpisodes({ count: 8, seed: 6, split: 'train' }), SIZE);
    expect(() => checkSelfReferences(r, other, shape)).toThrow(/does not match the training episodes/);
    const fewer = buildTurnDataset('iclevr', episodes.slice(0, 7), SIZE);
    expect(() => checkSelfReferences(r, fewer, shape)).toThrow(/8 training episodes, this run has 7/);
  });

  it('batches swap the chosen slots for own-canvas turns: own reference and latent, that turn text and target', async () => {
    const r = await readSelfReferences(join(root, 'a.safetensors'));
    const ds = buildTurnDataset('iclevr', episodes, SIZE);
    const none = ownReferenceSlots(r.turns.length, 0, 1, 0, 16);
    expect(none.every((x) => x === -1)).toBe(true);
    const all = ownReferenceSlots(r.turns.length, 1, 1, 0, 16);
    expect(all.every((x) => x >= 0 && x < r.turns.length)).toBe(true);
    const some = ownReferenceSlots(r.turns.length, 0.5, 1, 32, 64);
    expect(some.filter((x) => x >= 0).length).toBeGreaterThan(16);
    expect(some.filter((x) => x >= 0).length).toBeLessThan(48);
    expect(ownReferenceSlots(r.turns.length, 0.5, 1, 32, 64)).toEqual(some); // fixed by (seed, cursor)
    expect(ownReferenceSlots(r.turns.length, 0.5, 1, 48, 64)).not.toEqual(some);

    const b = hostBatch(ds, [0, 1, 2], { refs: r, entries: [-1, 4, -1], target: 'ground-truth' });
    const plain = hostBatch(ds, [0, 1, 2]);
    const px = SIZE * SIZE * 3;
    const t = r.turns[4]!;
    expect(b.texts).toEqual([ds.texts[0], ds.texts[t], ds.texts[2]]);
    expect(maxAbsDiff(b.target.subarray(px, 2 * px), hostBatch(ds, [t]).target)).toBe(0);
    expect(maxAbsDiff(b.reference.subarray(px, 2 * px), Float32Array.from(r.pixels.subarray(4 * px, 5 * px), (v) => v / 127.5 - 1))).toBeLessThan(1e-6);
    expect(maxAbsDiff(b.reference.subarray(0, px), plain.reference.subarray(0, px))).toBe(0);
    expect([...b.ownLatents!.use]).toEqual([0, 1, 0]);
    const lat = r.latentShape.reduce((a, d) => a * d, 1);
    expect(maxAbsDiff(b.ownLatents!.data.subarray(lat, 2 * lat), r.latents.subarray(4 * lat, 5 * lat))).toBe(0);
    expect(plain.ownLatents).toBeUndefined();
    // composite: the own canvas, except where the rendering changes from the turn's reference to its target.
    const c = hostBatch(ds, [0, 1, 2], { refs: r, entries: [-1, 4, -1], target: 'composite' });
    const at = (img: number, j: number): number => ds.images[img * px + j]!;
    let fromNext = 0;
    let fromOwn = 0;
    for (let j = 0; j < px; j += 3) {
      const changed = [0, 1, 2].some((k) => Math.abs(at(ds.targets[t]!, j + k) - at(ds.references[t]!, j + k)) > 8);
      const want = changed ? [0, 1, 2].map((k) => at(ds.targets[t]!, j + k)) : [0, 1, 2].map((k) => r.pixels[4 * px + j + k]!);
      if (changed) fromNext++;
      else fromOwn++;
      for (let k = 0; k < 3; k++) expect(c.target[px + j + k]).toBeCloseTo(want[k]! / 127.5 - 1, 5);
    }
    expect(fromNext).toBeGreaterThan(0); // the new object
    expect(fromOwn).toBeGreaterThan(fromNext); // most of the canvas is kept as drawn
    expect(maxAbsDiff(c.target.subarray(0, px), plain.target.subarray(0, px))).toBe(0);
    const tensors = batchTensors(b);
    expect(tensors.referenceLatent!.shape).toEqual([3, ...r.latentShape]);
    tf.dispose([tensors.reference, tensors.target, tensors.referenceLatent!, tensors.referenceLatentMask!]);
  });

  it('the stage-2 loss reads the given latent exactly where the mask is 1', () => {
    const ds = buildTurnDataset('iclevr', episodes, SIZE);
    const b = batchTensors(hostBatch(ds, [1, 2, 3, 4]));
    const rng = () => {
      let s = 3;
      return () => ((s = (s * 16807) % 2147483647) / 2147483647);
    };
    // A fresh U-Net's zero-initialised output layer ignores every input: give its zero weights random values.
    const m = tinyIclevrModel(episodes);
    for (const v of m.parameterGroups().unet.vars) {
      if (tf.tidy(() => tf.max(tf.abs(v)).dataSync()[0]!) === 0) v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', 2));
    }
    const loss = (extra: object): number => tf.tidy(() => m.losses({ ...b, ...extra }, { stage: 2, rng: rng() }).cdd!.dataSync()[0]!);
    const base = loss({});
    const encoded = m.encodeImage(b.reference);
    const noise = tf.randomNormal(encoded.shape, 0, 1, 'float32', 1) as tf.Tensor4D;
    const ones = tf.ones([4]) as tf.Tensor1D;
    const zeros = tf.zeros([4]) as tf.Tensor1D;
    // The encoded reference given as the latent changes nothing; a different latent where the mask is 0 neither.
    expect(loss({ referenceLatent: encoded, referenceLatentMask: ones })).toBeCloseTo(base, 6);
    expect(loss({ referenceLatent: noise, referenceLatentMask: zeros })).toBeCloseTo(base, 6);
    // A different latent where the mask is 1 changes the denoising loss.
    expect(Math.abs(loss({ referenceLatent: noise, referenceLatentMask: ones }) - base)).toBeGreaterThan(1e-5);
    tf.dispose([encoded, noise, ones, zeros, b.reference, b.target]);
    m.dispose();
  });

  it('a training run mixes the own canvases in, and refuses a file of other episodes before any step', async () => {
    // The rollout file must describe the run's own training episodes: same generator seed and count.
    const seed = 11;
    const trainEps = generateIclevrEpisodes({ count: 6, seed, split: 'train' });
    const file = join(root, 'run.safetensors');
    const m = tinyIclevrModel(trainEps);
    const init = join(root, 'init');
    const { saveCheckpoint } = await import('../../src/model/index.js');
    await saveCheckpoint(m, init);
    await rolloutSelfReferences(m, trainEps, { file, batch: 3, count: 6, steps: 2, guidanceScale: 1, icmGuidanceScale: 0, seed: 3, trainEpisodes: 6 });
    m.dispose();
    const base = { ...DEFAULT_OPTIONS, dataset: 'iclevr' as const, config: 'tiny', stage: 2 as const, steps: 3, batch: 4, lr: 3e-3, valEvery: 100, valBatches: 1, trainEpisodes: 6, valEpisodes: 2, imageSize: SIZE, checkpointMinutes: 1000, progress: false, seed, init, selfReferences: file, selfReferenceRate: 0.5 };
    const ok = await trainModel({ ...base, out: join(root, 'ss') });
    expect(ok.steps).toEqual([3]);
    expect(existsSync(join(root, 'ss', 'model', 'config.json'))).toBe(true);
    // Same run without own canvases: same turns, timesteps and noise, so only the swapped slots can change the losses.
    await trainModel({ ...base, selfReferenceRate: 0, out: join(root, 'plain') });
    const losses = (dir: string): number[] =>
      readFileSync(join(root, dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; loss?: number }).filter((m) => m.kind === 'train').map((m) => m.loss!);
    expect(losses('ss')).toHaveLength(3);
    expect(losses('ss')).not.toEqual(losses('plain'));
    await expect(trainModel({ ...base, seed: seed + 1, out: join(root, 'ss-other') })).rejects.toThrow(/does not match the training episodes/);
    expect(existsSync(join(root, 'ss-other', 'last'))).toBe(false);
  }, 180_000);
});
