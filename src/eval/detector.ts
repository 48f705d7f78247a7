/**
 * The object detector / localiser used by the evaluation: a small CNN that says which classes are present
 * (multi-label presence logits) and where each class is (x, y, and depth for CoDraw), trained as GeNeVA trained its
 * Inception-v3 localiser: class-weighted binary cross-entropy on presence plus a coordinate loss on present objects.
 * A class occurs at most once per scene in both datasets, so one location per class suffices.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { imagesToTensor, resizeImage, type RgbImage } from '../data/index.js';
import { Conv2d, GroupNorm, Module, readSafetensors, writeSafetensors } from '../model/index.js';
import type { LocatedObject } from './metrics.js';

export type DetectorDataset = 'iclevr' | 'codraw';

export interface DetectorConfig {
  /** Checkpoint format version. */
  format: 1;
  kind: 'object-detector';
  dataset: DetectorDataset;
  /** Images are resized to inputSize x inputSize before the network. */
  inputSize: number;
  /** Class names; index = output unit. */
  classes: string[];
  /** Regressed coordinates per class: 2 (x, y) or 3 (x, y, depth). */
  coords: 2 | 3;
  /** Number of depth levels when coords = 3 (CoDraw: 3); the regressed depth in [0, 1] maps to 0..levels-1. */
  depthLevels?: number;
  /** Channels of each stride-2 stage; the head works on the last stage's map (input / 2^stages per side). */
  channels: number[];
  /** Stride-1 3x3 convolutions after each stage's stride-2 one (default 1 each; 0 makes a cheap stem). */
  stageConvs?: number[];
  /**
   * GroupNorm only on maps whose side is at most this (default: every map). GroupNorm on large maps costs more
   * than the convolutions on a CPU, and the first layers train well without it.
   */
  normMaxSide?: number;
  /** Channels of the head's 3x3 convolution. */
  hidden: number;
  groups: number;
  /** Per-class weights of the BCE term (rarer classes weigh more), fixed at creation. */
  classWeights: number[];
  /** Coordinate loss weight. */
  coordWeight: number;
  /** Presence threshold on the sigmoid score (GeNeVA: 0.5). */
  threshold: number;
  seed: number;
}

/** One detection: class label, normalised x / y in [0, 1], depth level for CoDraw, presence score. */
export interface Detection extends LocatedObject {
  classIndex: number;
  score: number;
}

export interface DetectorLosses {
  total: tf.Scalar;
  bce: tf.Scalar;
  coord: tf.Scalar;
}

/** Float32 arrays by name, as snapshot() reads them and restore() assigns them. */
export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

/**
 * The detector's own initialiser seeds: the config's seed fixes its weights without touching the model part's
 * global seed stream (same LCG as nn.ts's nextSeed).
 */
type SeedStream = () => number;
function seedStream(seed: number): SeedStream {
  let state = seed % 2147483647 || 1;
  return () => (state = (state * 1103515245 + 12345) % 2147483647);
}

/** He-uniform (limit sqrt(6 / fan-in)), which the committed detectors were trained from, on the detector's seeds. */
function conv(inC: number, outC: number, kernel: number, seeds: SeedStream, stride = 1): Conv2d {
  return new Conv2d(inC, outC, kernel, {
    stride,
    init: (shape, fanIn) => {
      const limit = Math.sqrt(6 / fanIn);
      return tf.randomUniform(shape, -limit, limit, 'float32', seeds());
    },
  });
}

class Stage extends Module {
  private readonly down: Conv2d;
  private readonly n1: GroupNorm | null;
  private readonly convs: { conv: Conv2d; norm: GroupNorm | null }[] = [];
  constructor(inC: number, outC: number, groups: number, seeds: SeedStream, extraConvs: number, norm: boolean) {
    super();
    const g = Math.min(groups, outC);
    this.down = this.child('down', conv(inC, outC, 3, seeds, 2));
    this.n1 = norm ? this.child('norm1', new GroupNorm(g, outC)) : null;
    // Names of the first extra conv match the original two-conv stage ("conv", "norm2").
    for (let i = 0; i < extraConvs; i++) {
      const sfx = i === 0 ? '' : String(i + 1);
      const c = this.child(`conv${sfx}`, conv(outC, outC, 3, seeds));
      this.convs.push({ conv: c, norm: norm ? this.child(`norm2${sfx}`, new GroupNorm(g, outC)) : null });
    }
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const down = this.down.apply(x);
      let h = tf.relu(this.n1 ? this.n1.apply(down) : down);
      for (const { conv, norm } of this.convs) {
        const y = conv.apply(h);
        h = tf.relu(norm ? norm.apply(y) : y);
      }
      return h;
    });
  }
}

/**
 * Backbone of stride-2 stages, then a per-class heatmap head (CenterNet-like, which learns far faster than a
 * flattened fully-connected head on a CPU budget): for class k a logit map L_k over the final grid,
 * presence logit = logsumexp of L_k over the grid, location = softmax(L_k)-weighted mean of cell centres plus
 * per-cell offsets (and, for CoDraw, of a per-cell depth estimate).
 */
export class ObjectDetector extends Module {
  private readonly stages: Stage[] = [];
  private readonly headConv: Conv2d;
  private readonly headNorm: GroupNorm;
  private readonly presenceConv: Conv2d;
  private readonly geometryConv: Conv2d;
  private readonly weights: tf.Tensor1D;
  private readonly gridX: tf.Tensor2D;
  private readonly gridY: tf.Tensor2D;
  /** Side of the final grid. */
  readonly grid: number;

  constructor(readonly config: DetectorConfig) {
    super();
    const seeds = seedStream(config.seed);
    let c = 3;
    config.channels.forEach((ch, i) => {
      const side = config.inputSize / 2 ** (i + 1);
      const norm = side <= (config.normMaxSide ?? Infinity);
      this.stages.push(this.child(`stage${i}`, new Stage(c, ch, config.groups, seeds, config.stageConvs?.[i] ?? 1, norm)));
      c = ch;
    });
    const grid = config.inputSize / 2 ** config.channels.length;
    if (!Number.isInteger(grid) || grid < 1) throw new Error(`detector: input ${config.inputSize} not divisible by 2^${config.channels.length}`);
    this.grid = grid;
    const k = config.classes.length;
    this.headConv = this.child('head', conv(c, config.hidden, 3, seeds));
    this.headNorm = this.child('headNorm', new GroupNorm(Math.min(config.groups, config.hidden), config.hidden));
    this.presenceConv = this.child('presence', conv(config.hidden, k, 1, seeds));
    // Offsets x, y per class (and depth), one 1x1 convolution: [x offsets K | y offsets K | depth K].
    this.geometryConv = this.child('geometry', conv(config.hidden, k * config.coords, 1, seeds));
    // Start every class near "absent" (sum of exp over the grid = e^-3: sigmoid ~ 0.05).
    this.presenceConv.bias.assign(tf.fill([k], -Math.log(grid * grid) - 3));
    if (config.classWeights.length !== k) throw new Error('detector: classWeights length differs from classes');
    this.weights = tf.tensor1d(config.classWeights);
    const centres = Array.from({ length: grid * grid }, (_, i) => [((i % grid) + 0.5) / grid, (Math.floor(i / grid) + 0.5) / grid] as const);
    this.gridX = tf.tensor2d(centres.map((p) => p[0]), [grid * grid, 1]);
    this.gridY = tf.tensor2d(centres.map((p) => p[1]), [grid * grid, 1]);
  }

  /** images: [B, S, S, 3] in [-1, 1] at the input size. Returns presence logits [B, K], coordinates [B, K, C] in [0, 1]. */
  forward(images: tf.Tensor4D): { logits: tf.Tensor2D; coords: tf.Tensor3D } {
    return tf.tidy(() => {
      const b = images.shape[0];
      const k = this.config.classes.length;
      const cells = this.grid * this.grid;
      let h = images;
      for (const s of this.stages) h = s.apply(h);
      h = tf.relu(this.headNorm.apply(this.headConv.apply(h)));
      const maps = tf.reshape(this.presenceConv.apply(h), [b, cells, k]);
      const logits = tf.logSumExp(maps, 1) as tf.Tensor2D; // [B, K]
      const attn = tf.exp(tf.sub(maps, tf.expandDims(logits, 1))); // softmax over the grid, [B, cells, K]
      // Channels [x offsets K | y offsets K | depth K]; slices, not tf.unstack (which is slow on CPU backends).
      const geo = tf.reshape(this.geometryConv.apply(h), [b, cells, this.config.coords * k]);
      const part = (j: number) => tf.slice(geo, [0, 0, j * k], [b, cells, k]);
      const ox = part(0);
      const oy = part(1);
      const oz = this.config.coords === 3 ? part(2) : null;
      // Cell centre plus an offset of at most half a cell.
      const half = 0.5 / this.grid;
      const px = tf.add(this.gridX, tf.mul(tf.tanh(ox), half));
      const py = tf.add(this.gridY, tf.mul(tf.tanh(oy), half));
      const parts = [tf.sum(tf.mul(attn, px), 1), tf.sum(tf.mul(attn, py), 1)];
      if (oz) parts.push(tf.sum(tf.mul(attn, tf.sigmoid(oz)), 1));
      const coords = tf.clipByValue(tf.stack(parts, 2), 0, 1) as tf.Tensor3D;
      return { logits, coords };
    });
  }

  /**
   * Class-weighted BCE on presence (mean over images, weighted mean over classes) plus the L1 error of the
   * coordinates of the objects that are present (mean over present objects and coordinates).
   * presence: [B, K] in {0, 1}; coords: [B, K, C] targets in [0, 1] (ignored where absent).
   */
  losses(images: tf.Tensor4D, presence: tf.Tensor2D, coords: tf.Tensor3D): DetectorLosses {
    return tf.tidy(() => {
      const out = this.forward(images);
      const x = out.logits;
      // Numerically stable BCE with logits: max(x, 0) - x*y + log(1 + exp(-|x|)).
      const bceEl = tf.add(tf.sub(tf.relu(x), tf.mul(x, presence)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
      const bce = tf.div(tf.sum(tf.mul(bceEl, this.weights)), tf.mul(x.shape[0], tf.sum(this.weights))) as tf.Scalar;
      const mask = tf.expandDims(presence, 2);
      const l1 = tf.sum(tf.mul(tf.abs(tf.sub(out.coords, coords)), mask));
      const present = tf.maximum(tf.mul(tf.sum(presence), this.config.coords), 1);
      const coord = tf.div(l1, present) as tf.Scalar;
      const total = tf.add(bce, tf.mul(coord, this.config.coordWeight)) as tf.Scalar;
      return { total, bce, coord };
    });
  }

  /** Resize to the input size and stack in [-1, 1]. */
  prepare(images: RgbImage[]): tf.Tensor4D {
    return imagesToTensor(images.map((im) => resizeImage(im, this.config.inputSize)));
  }

  /** Detections per image (scores >= threshold), in class order. Any image size; batched internally. */
  detect(images: RgbImage[], batchSize = 32): Detection[][] {
    const out: Detection[][] = [];
    const { classes, coords: nc, threshold } = this.config;
    const levels = this.config.depthLevels ?? 3;
    for (let i = 0; i < images.length; i += batchSize) {
      const x = this.prepare(images.slice(i, i + batchSize));
      const { logits, coords } = this.forward(x);
      const probs = tf.sigmoid(logits);
      const p = probs.dataSync();
      const c = coords.dataSync();
      const b = x.shape[0];
      tf.dispose([x, logits, coords, probs]);
      for (let n = 0; n < b; n++) {
        const dets: Detection[] = [];
        for (let k = 0; k < classes.length; k++) {
          const score = p[n * classes.length + k]!;
          if (score < threshold) continue;
          const base = (n * classes.length + k) * nc;
          const det: Detection = { label: classes[k]!, classIndex: k, x: c[base]!, y: c[base + 1]!, score };
          // Depth is categorical in CoDraw: report the nearest level so equal depths compare as equal.
          if (nc === 3) det.z = Math.min(levels - 1, Math.max(0, Math.round(c[base + 2]! * (levels - 1))));
          dets.push(det);
        }
        out.push(dets);
      }
    }
    return out;
  }

  override dispose(): void {
    super.dispose();
    tf.dispose([this.weights, this.gridX, this.gridY]);
  }
}

/** Read every parameter as named float32 arrays (for checkpoints and optimizer state). */
export function snapshot(vars: Map<string, tf.Variable>): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [name, v] of vars) out.set(name, { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) });
  return out;
}

/** Assign named arrays to variables; every variable must be present with its shape. */
export function restore(vars: Map<string, tf.Variable>, arrays: ReadonlyMap<string, NamedArray>, what: string): void {
  for (const [name, v] of vars) {
    const a = arrays.get(name);
    if (!a) throw new Error(`${what}: missing tensor ${name}`);
    if (a.shape.join(',') !== v.shape.join(',')) throw new Error(`${what}: ${name} has shape [${a.shape}], expected [${v.shape}]`);
    v.assign(tf.tensor(a.data, v.shape));
  }
}

export const DETECTOR_CONFIG_FILE = 'config.json';
export const DETECTOR_WEIGHTS_FILE = 'model.safetensors';

/** Save the detector's config and weights (float16 by default: the checkpoint is small and precise enough). */
export async function saveDetector(det: ObjectDetector, dir: string, dtype: 'F32' | 'F16' = 'F16'): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, DETECTOR_WEIGHTS_FILE), snapshot(det.namedParameters()), { dtype });
  await writeFile(join(dir, DETECTOR_CONFIG_FILE), JSON.stringify(det.config, null, 2) + '\n');
}

/** Load a detector checkpoint folder written by saveDetector. */
export async function loadDetector(dir: string): Promise<ObjectDetector> {
  const cfgPath = join(dir, DETECTOR_CONFIG_FILE);
  if (!existsSync(cfgPath)) throw new Error(`no detector checkpoint in ${dir} (missing ${DETECTOR_CONFIG_FILE})`);
  const config = JSON.parse(await readFile(cfgPath, 'utf8')) as DetectorConfig;
  if (config.kind !== 'object-detector' || config.format !== 1) throw new Error(`${cfgPath}: not an object-detector checkpoint (format 1)`);
  const det = new ObjectDetector(config);
  restore(det.namedParameters(), await readSafetensors(join(dir, DETECTOR_WEIGHTS_FILE)), join(dir, DETECTOR_WEIGHTS_FILE));
  return det;
}
