/**
 * The training data pipeline. Episodes are disassembled into single turns (teacher forcing, section 2.6) and
 * every distinct canvas is rendered once, up front, into one packed uint8 cache (a 64x64 i-CLEVR turn renders in
 * under a millisecond; 6000 episodes take ~25 s and ~450 MB), so batch assembly during training is a memory copy
 * and rendering never competes with the compute. The sampler is a pure function of (seed, cursor): the data
 * position is one integer saved in trainer.json, and a resumed run sees exactly the batches it would have seen.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  backgroundFor,
  generateIclevrEpisodes,
  loadCodraw,
  mulberry32,
  readEpisodes,
  renderScene,
  type Episode,
  type SceneObject,
} from '../data/index.js';
import type { TurnBatch } from '../model/index.js';
import type { SelfReferences } from './selfReferences.js';

export type DatasetName = 'iclevr' | 'codraw';

/** Rendered turns: images[k] is a size x size x 3 canvas; turn i maps references[i] + texts[i] -> targets[i]. */
export interface TurnDataset {
  dataset: DatasetName;
  size: number;
  /** Packed images, numImages * size * size * 3 bytes. */
  images: Uint8Array;
  numImages: number;
  references: Int32Array;
  targets: Int32Array;
  texts: string[];
  episodes: number;
}

export interface EpisodeSource {
  dataset: DatasetName;
  split: 'train' | 'val' | 'test';
  /** Episodes to use (i-CLEVR: how many to generate; CoDraw / file: a cap). */
  count?: number;
  /** i-CLEVR generator seed. */
  seed?: number;
  /** Read episodes from this JSON Lines file instead of generating / loading the dataset. */
  file?: string;
  /** CoDraw dataset folder (default: the data part's default). */
  codrawDir?: string;
}

/** The episodes of a split: generated (i-CLEVR), read from the CoDraw folder, or read from an episodes file. */
export async function loadEpisodeSource(src: EpisodeSource): Promise<Episode[]> {
  let eps: Episode[];
  if (src.file) eps = (await readEpisodes(src.file)).filter((e) => e.dataset === src.dataset);
  else if (src.dataset === 'iclevr') eps = generateIclevrEpisodes({ count: src.count ?? 6000, seed: src.seed ?? 0, split: src.split });
  else eps = loadCodraw({ split: src.split, ...(src.codrawDir ? { dir: src.codrawDir } : {}) });
  return src.count !== undefined ? eps.slice(0, src.count) : eps;
}

/**
 * Render every canvas of the episodes once. The background (every first turn's reference) is stored once;
 * each later turn's reference is the previous turn's target, so an episode of n turns costs n renders.
 */
export function buildTurnDataset(
  dataset: DatasetName,
  episodes: readonly Episode[],
  size: number,
  onProgress?: (done: number, total: number) => void,
): TurnDataset {
  const pixels = size * size * 3;
  const totalTurns = episodes.reduce((s, e) => s + e.turns.length, 0);
  const images = new Uint8Array((totalTurns + 1) * pixels);
  images.set(backgroundFor(dataset, size).data, 0);
  const references = new Int32Array(totalTurns);
  const targets = new Int32Array(totalTurns);
  const texts: string[] = [];
  let k = 1;
  let i = 0;
  episodes.forEach((ep, e) => {
    let ref = 0;
    const turns: readonly { text: string; objects: readonly SceneObject[] }[] = ep.turns;
    for (const t of turns) {
      const img = renderScene(dataset, t.objects, size);
      images.set(img.data, k * pixels);
      references[i] = ref;
      targets[i] = k;
      texts.push(t.text);
      ref = k;
      k++;
      i++;
    }
    if (onProgress && (e % 100 === 99 || e === episodes.length - 1)) onProgress(e + 1, episodes.length);
  });
  return { dataset, size, images, numImages: k, references, targets, texts, episodes: episodes.length };
}

/** A seed mixed from several integers (for per-step, per-purpose seeds that survive a resume). */
export function mixSeed(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ Math.floor(x / 4294967296), 0x01000193) >>> 0;
    h ^= h >>> 13;
  }
  return h >>> 0;
}

/**
 * Epoch-wise shuffled sampling without replacement. The sample at global position `cursor` is
 * permutation(seed, floor(cursor / n))[cursor mod n]; a batch is `batch` consecutive positions.
 */
export class TurnSampler {
  private cachedEpoch = -1;
  private perm = new Int32Array(0);
  constructor(
    readonly n: number,
    readonly seed: number,
  ) {
    if (n <= 0) throw new Error('TurnSampler: empty dataset');
  }
  private permutation(epoch: number): Int32Array {
    if (epoch !== this.cachedEpoch) {
      const rng = mulberry32(mixSeed(this.seed, epoch));
      const p = new Int32Array(this.n);
      for (let i = 0; i < this.n; i++) p[i] = i;
      for (let i = this.n - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        const t = p[i]!;
        p[i] = p[j]!;
        p[j] = t;
      }
      this.perm = p;
      this.cachedEpoch = epoch;
    }
    return this.perm;
  }
  /** Turn indices for positions cursor .. cursor + batch - 1. */
  indices(cursor: number, batch: number): number[] {
    const out: number[] = [];
    for (let c = cursor; c < cursor + batch; c++) out.push(this.permutation(Math.floor(c / this.n))[c % this.n]!);
    return out;
  }
}

/** A host-side batch (no tensors yet): cheap to build ahead and to hand across threads. */
export interface HostBatch {
  size: number;
  reference: Float32Array;
  target: Float32Array;
  texts: string[];
  /** Slots whose reference is the model's own canvas (scheduled sampling): its latent, used where `use` is 1. */
  ownLatents?: { data: Float32Array; shape: [number, number, number]; use: Float32Array };
}

/**
 * What an own-canvas turn is trained to produce. 'ground-truth': the rendered next canvas (classic scheduled
 * sampling; measured harmful here: the model learns to redraw the objects already there, see docs/TRAINING.md).
 * 'composite': the own canvas with only the pixels this turn changes in the rendering (the new object and its
 * shadow) taken from the next canvas, so the lesson is "keep what is there, add what was asked".
 */
export type OwnTarget = 'ground-truth' | 'composite';

/** Own canvases to mix into batches: slot b of a batch takes entry `entries[b]` (-1: the sampled turn). */
export interface OwnReferencePick {
  refs: SelfReferences;
  entries: readonly number[];
  target: OwnTarget;
}

/** A rendered pixel counts as changed by the turn when a channel moves by more than this (of 255). */
const CHANGED = 8;

/** Canvas `imageIdx` of the packed cache (a view, no copy). */
function canvas(ds: TurnDataset, imageIdx: number): Uint8Array {
  const pixels = ds.size * ds.size * 3;
  return ds.images.subarray(imageIdx * pixels, (imageIdx + 1) * pixels);
}

/** uint8 RGB -> [-1, 1] floats at `offset`. */
function bytesToFloat(src: Uint8Array, out: Float32Array, offset: number): void {
  for (let j = 0; j < src.length; j++) out[offset + j] = src[j]! / 127.5 - 1;
}

function toFloat(ds: TurnDataset, imageIdx: number, out: Float32Array, offset: number): void {
  bytesToFloat(canvas(ds, imageIdx), out, offset);
}

export function hostBatch(ds: TurnDataset, turns: readonly number[], own?: OwnReferencePick): HostBatch {
  const pixels = ds.size * ds.size * 3;
  const reference = new Float32Array(turns.length * pixels);
  const target = new Float32Array(turns.length * pixels);
  const texts: string[] = [];
  const used = own && own.entries.some((e) => e >= 0) ? own : undefined;
  const latentSize = used ? used.refs.latentShape.reduce((a, d) => a * d, 1) : 0;
  const ownLatents = used ? { data: new Float32Array(turns.length * latentSize), shape: used.refs.latentShape, use: new Float32Array(turns.length) } : undefined;
  turns.forEach((sampled, b) => {
    const entry = used ? used.entries[b]! : -1;
    // An own canvas replaces the slot's turn by the one it is the reference of (its instruction and target).
    const t = entry >= 0 ? used!.refs.turns[entry]! : sampled;
    if (entry >= 0) {
      const src = used!.refs.pixels.subarray(entry * pixels, (entry + 1) * pixels);
      bytesToFloat(src, reference, b * pixels);
      ownLatents!.data.set(used!.refs.latents.subarray(entry * latentSize, (entry + 1) * latentSize), b * latentSize);
      ownLatents!.use[b] = 1;
      if (used!.target === 'composite') compositeTarget(ds, t, src, target, b * pixels);
      else toFloat(ds, ds.targets[t]!, target, b * pixels);
    } else {
      toFloat(ds, ds.references[t]!, reference, b * pixels);
      toFloat(ds, ds.targets[t]!, target, b * pixels);
    }
    texts.push(ds.texts[t]!);
  });
  return { size: ds.size, reference, target, texts, ...(ownLatents ? { ownLatents } : {}) };
}

/** Turn t's target drawn over an own canvas: pixels the rendering changes from t's reference to t's target. */
function compositeTarget(ds: TurnDataset, t: number, own: Uint8Array, out: Float32Array, offset: number): void {
  const prev = canvas(ds, ds.references[t]!);
  const next = canvas(ds, ds.targets[t]!);
  for (let j = 0; j < prev.length; j += 3) {
    const changed =
      Math.abs(next[j]! - prev[j]!) > CHANGED || Math.abs(next[j + 1]! - prev[j + 1]!) > CHANGED || Math.abs(next[j + 2]! - prev[j + 2]!) > CHANGED;
    const src = changed ? next : own;
    for (let c = 0; c < 3; c++) out[offset + j + c] = src[j + c]! / 127.5 - 1;
  }
}

/** Pixel batch tensors in [-1, 1], NHWC (the model's TurnBatch); dispose them with `disposeBatch`. */
export function batchTensors(b: HostBatch): TurnBatch {
  const n = b.texts.length;
  return {
    reference: tf.tensor4d(b.reference, [n, b.size, b.size, 3]),
    target: tf.tensor4d(b.target, [n, b.size, b.size, 3]),
    texts: b.texts,
    ...(b.ownLatents
      ? { referenceLatent: tf.tensor4d(b.ownLatents.data, [n, ...b.ownLatents.shape]), referenceLatentMask: tf.tensor1d(b.ownLatents.use) }
      : {}),
  };
}

export function disposeBatch(b: TurnBatch): void {
  tf.dispose([b.reference, b.target, ...(b.referenceLatent ? [b.referenceLatent] : []), ...(b.referenceLatentMask ? [b.referenceLatentMask] : [])]);
}

/**
 * The batch slots at sampler position `cursor` that train on an own canvas: slot b takes entry result[b], or -1
 * for the sampled ground-truth turn. A pure function of (seed, cursor), so a resumed run sees the same batches.
 */
export function ownReferenceSlots(entries: number, rate: number, seed: number, cursor: number, batch: number): number[] {
  const rng = mulberry32(mixSeed(seed, 71, cursor));
  return Array.from({ length: batch }, () => (rng() < rate ? Math.min(entries - 1, Math.floor(rng() * entries)) : -1));
}

/**
 * Batches for consecutive steps, one built ahead: while step k computes, batch k + 1 is already assembled
 * (host memory only), so the loop never waits on data. Position = the sampler cursor of the next batch.
 */
export class BatchStream {
  private ahead: { cursor: number; batch: HostBatch } | null = null;
  constructor(
    readonly ds: TurnDataset,
    readonly sampler: TurnSampler,
    readonly batchSize: number,
    public cursor: number,
    /** Scheduled sampling: each slot is, with probability `rate`, a turn that starts from an own canvas. */
    readonly own?: { refs: SelfReferences; rate: number; seed: number; target: OwnTarget },
  ) {}
  private build(cursor: number): HostBatch {
    const turns = this.sampler.indices(cursor, this.batchSize);
    if (!this.own) return hostBatch(this.ds, turns);
    const { refs, rate, seed, target } = this.own;
    return hostBatch(this.ds, turns, { refs, target, entries: ownReferenceSlots(refs.turns.length, rate, seed, cursor, this.batchSize) });
  }
  next(): HostBatch {
    const b = this.ahead && this.ahead.cursor === this.cursor ? this.ahead.batch : this.build(this.cursor);
    this.cursor += this.batchSize;
    this.ahead = null;
    // Build the following batch after the current call stack (i.e. overlapping the caller's async work).
    const c = this.cursor;
    setImmediate(() => {
      if (this.cursor === c && !this.ahead) this.ahead = { cursor: c, batch: this.build(c) };
    });
    return b;
  }
}

/** Fixed validation batches (the same turns every time, so validation losses are comparable). */
export function validationBatches(ds: TurnDataset, batchSize: number, count: number, seed: number): HostBatch[] {
  const sampler = new TurnSampler(ds.texts.length, seed);
  const out: HostBatch[] = [];
  const n = Math.min(count, Math.ceil(ds.texts.length / batchSize));
  for (let i = 0; i < n; i++) out.push(hostBatch(ds, sampler.indices(i * batchSize, Math.min(batchSize, ds.texts.length))));
  return out;
}

/** Distinct canvases as a batch (for the autoencoder, which needs images rather than turns). */
export class ImageSampler {
  private readonly inner: TurnSampler;
  constructor(
    readonly ds: TurnDataset,
    seed: number,
  ) {
    this.inner = new TurnSampler(ds.numImages, seed);
  }
  batch(cursor: number, size: number): Float32Array {
    const pixels = this.ds.size * this.ds.size * 3;
    const idx = this.inner.indices(cursor, size);
    const out = new Float32Array(size * pixels);
    idx.forEach((k, b) => toFloat(this.ds, k, out, b * pixels));
    return out;
  }
}
