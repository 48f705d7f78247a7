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
import { Conv2d, Module, nextSeed, resetSeed } from '../model/nn.js';
import { imagesToTensor, resizeImage, type RgbImage } from '../data/index.js';
import { readSafetensorsFile, writeSafetensorsFile, type NamedArray, type StDtype } from './safetensors.js';
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
  /** Channels of each stride-2 stage (the last stage's map is flattened). */
  channels: number[];
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

/*
 * Dense and GroupNorm written with functional tfjs ops only: tfjs-core's Node entry does not register the chained
 * tensor methods (x.reshape) that nn.ts's Linear and GroupNorm call.
 */
class Dense extends Module {
  private readonly w: tf.Variable;
  private readonly b: tf.Variable;
  constructor(inF: number, outF: number) {
    super();
    const limit = Math.sqrt(1 / inF);
    this.w = this.param('weight', tf.randomUniform([inF, outF], -limit, limit, 'float32', nextSeed()));
    this.b = this.param('bias', tf.zeros([outF]));
  }
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.matMul(x, this.w as tf.Tensor2D), this.b));
  }
}

class GroupNorm2d extends Module {
  private readonly gamma: tf.Variable;
  private readonly beta: tf.Variable;
  constructor(private readonly groups: number, channels: number, private readonly eps = 1e-5) {
    super();
    if (channels % groups !== 0) throw new Error(`GroupNorm: ${channels} channels not divisible by ${groups} groups`);
    this.gamma = this.param('weight', tf.ones([channels]));
    this.beta = this.param('bias', tf.zeros([channels]));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const g = tf.reshape(x, [n, h * w, this.groups, c / this.groups]);
      const { mean, variance } = tf.moments(g, [1, 3], true);
      const xn = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, this.eps))), [n, h, w, c]);
      return tf.add(tf.mul(xn, this.gamma), this.beta) as tf.Tensor4D;
    });
  }
}

class Stage extends Module {
  private readonly down: Conv2d;
  private readonly n1: GroupNorm2d;
  private readonly conv: Conv2d;
  private readonly n2: GroupNorm2d;
  constructor(inC: number, outC: number, groups: number) {
    super();
    this.down = this.child('down', new Conv2d(inC, outC, 3, { stride: 2 }));
    this.n1 = this.child('norm1', new GroupNorm2d(Math.min(groups, outC), outC));
    this.conv = this.child('conv', new Conv2d(outC, outC, 3));
    this.n2 = this.child('norm2', new GroupNorm2d(Math.min(groups, outC), outC));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const h = tf.relu(this.n1.apply(this.down.apply(x)));
      return tf.relu(this.n2.apply(this.conv.apply(h)));
    });
  }
}

export class ObjectDetector extends Module {
  private readonly stages: Stage[] = [];
  private readonly fc: Dense;
  private readonly presenceHead: Dense;
  private readonly coordHead: Dense;
  private readonly weights: tf.Tensor1D;
  readonly featureSize: number;

  constructor(readonly config: DetectorConfig) {
    super();
    resetSeed(config.seed);
    let c = 3;
    config.channels.forEach((ch, i) => {
      this.stages.push(this.child(`stage${i}`, new Stage(c, ch, config.groups)));
      c = ch;
    });
    const spatial = config.inputSize / 2 ** config.channels.length;
    if (!Number.isInteger(spatial) || spatial < 1) throw new Error(`detector: input ${config.inputSize} not divisible by 2^${config.channels.length}`);
    this.featureSize = spatial * spatial * c;
    const k = config.classes.length;
    this.fc = this.child('fc', new Dense(this.featureSize, config.hidden));
    this.presenceHead = this.child('presence', new Dense(config.hidden, k));
    this.coordHead = this.child('coords', new Dense(config.hidden, k * config.coords));
    if (config.classWeights.length !== k) throw new Error('detector: classWeights length differs from classes');
    this.weights = tf.tensor1d(config.classWeights);
  }

  /** images: [B, S, S, 3] in [-1, 1] at the input size. Returns presence logits [B, K], coordinates [B, K, C] in [0, 1]. */
  forward(images: tf.Tensor4D): { logits: tf.Tensor2D; coords: tf.Tensor3D } {
    return tf.tidy(() => {
      let h = images;
      for (const s of this.stages) h = s.apply(h);
      const f = tf.relu(this.fc.apply(tf.reshape(h, [h.shape[0], this.featureSize]) as tf.Tensor2D));
      const logits = this.presenceHead.apply(f);
      const coords = tf.reshape(tf.sigmoid(this.coordHead.apply(f)), [h.shape[0], this.config.classes.length, this.config.coords]) as tf.Tensor3D;
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
    this.weights.dispose();
  }
}

/** Read every parameter as named float32 arrays (for checkpoints and optimizer state). */
export function snapshot(vars: Map<string, tf.Variable>): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [name, v] of vars) out.set(name, { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) });
  return out;
}

/** Assign named arrays to variables; every variable must be present with its shape. */
export function restore(vars: Map<string, tf.Variable>, arrays: Map<string, NamedArray>, what: string): void {
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
export async function saveDetector(det: ObjectDetector, dir: string, dtype: StDtype = 'F16'): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensorsFile(join(dir, DETECTOR_WEIGHTS_FILE), snapshot(det.namedParameters()), dtype);
  await writeFile(join(dir, DETECTOR_CONFIG_FILE), JSON.stringify(det.config, null, 2) + '\n');
}

/** Load a detector checkpoint folder written by saveDetector. */
export async function loadDetector(dir: string): Promise<ObjectDetector> {
  const cfgPath = join(dir, DETECTOR_CONFIG_FILE);
  if (!existsSync(cfgPath)) throw new Error(`no detector checkpoint in ${dir} (missing ${DETECTOR_CONFIG_FILE})`);
  const config = JSON.parse(await readFile(cfgPath, 'utf8')) as DetectorConfig;
  if (config.kind !== 'object-detector' || config.format !== 1) throw new Error(`${cfgPath}: not an object-detector checkpoint (format 1)`);
  const det = new ObjectDetector(config);
  restore(det.namedParameters(), await readSafetensorsFile(join(dir, DETECTOR_WEIGHTS_FILE)), join(dir, DETECTOR_WEIGHTS_FILE));
  return det;
}
