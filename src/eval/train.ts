/**
 * Detector training: Adam on class-weighted BCE + coordinate L1 (see ObjectDetector.losses), over batches of
 * rendered scenes from a sample source. Resumable: the optimizer state and step counter are saved next to the
 * weights, so a later run continues where an earlier one stopped.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { RgbImage } from '../data/index.js';
import { partLogger } from '../log/index.js';
import { ObjectDetector, restore, saveDetector, snapshot, type DetectorConfig } from './detector.js';
import { readSafetensors, writeSafetensors } from '../model/index.js';
import type { LocatedObject } from './metrics.js';

const log = partLogger('eval.train');

/** One rendered training scene with its annotations (labels, x / y in [0, 1], depth level z for CoDraw). */
export interface TrainSample {
  image: RgbImage;
  objects: LocatedObject[];
}

/** Produces the next n training samples (rendered at the detector's input size or any size). */
export type SampleSource = (n: number) => TrainSample[];

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));

/** Presence and coordinate targets for a batch (coordinates normalised to [0, 1], depth by its level count). */
export function makeTargets(config: DetectorConfig, samples: TrainSample[]): { presence: Float32Array; coords: Float32Array } {
  const k = config.classes.length;
  const c = config.coords;
  const index = new Map(config.classes.map((name, i) => [name, i]));
  const presence = new Float32Array(samples.length * k);
  const coords = new Float32Array(samples.length * k * c);
  const levels = config.depthLevels ?? 3;
  samples.forEach((s, b) => {
    for (const o of s.objects) {
      const i = index.get(o.label);
      if (i === undefined) throw new Error(`unknown class "${o.label}" for the ${config.dataset} detector`);
      if (presence[b * k + i] === 1) continue; // a class repeated in a scene: the first instance is the target
      presence[b * k + i] = 1;
      const base = (b * k + i) * c;
      // CoDraw drawers sometimes dragged clip-art partly off the canvas; the sigmoid head reaches only [0, 1].
      coords[base] = clamp01(o.x);
      coords[base + 1] = clamp01(o.y);
      if (c === 3) coords[base + 2] = clamp01((o.z ?? 0) / (levels - 1));
    }
  });
  return { presence, coords };
}

/** Adam with bias correction; state keyed by parameter name so a resumed run matches variables by name. */
class Adam {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  constructor(private readonly params: Map<string, tf.Variable>, public step = 0, readonly b1 = 0.9, readonly b2 = 0.999, readonly eps = 1e-8) {
    for (const [n, p] of params) {
      this.m.set(n, tf.variable(tf.zerosLike(p), false));
      this.v.set(n, tf.variable(tf.zerosLike(p), false));
    }
  }
  apply(grads: Record<string, tf.Tensor>, names: Map<tf.Variable, string>, lr: number): void {
    this.step++;
    const c1 = 1 - this.b1 ** this.step;
    const c2 = 1 - this.b2 ** this.step;
    tf.tidy(() => {
      for (const [varName, g] of Object.entries(grads)) {
        const p = tf.engine().registeredVariables[varName] as tf.Variable;
        const n = names.get(p)!;
        const m = this.m.get(n)!;
        const v = this.v.get(n)!;
        const m2 = tf.add(tf.mul(m, this.b1), tf.mul(g, 1 - this.b1));
        const v2 = tf.add(tf.mul(v, this.b2), tf.mul(tf.square(g), 1 - this.b2));
        m.assign(m2);
        v.assign(v2);
        p.assign(tf.sub(p, tf.mul(tf.div(tf.div(m2, c1), tf.add(tf.sqrt(tf.div(v2, c2)), this.eps)), lr)));
      }
    });
  }
  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

export interface TrainOptions {
  /** Stop after this many steps of this run (default: unlimited if minutes is set, else 1000). */
  steps?: number;
  /** Stop after this many minutes of wall time. */
  minutes?: number;
  batchSize?: number;
  lr?: number;
  /** Warm-up steps (linear) at the start of a fresh training; later runs start at full lr. */
  warmup?: number;
  /** Standard deviation bound of the Gaussian pixel noise added to inputs (robustness to generated images). */
  noise?: number;
  /** Folder to save (and resume from); saved every checkpointEvery steps and at the end. */
  dir?: string;
  checkpointEvery?: number;
  /** Progress callback after every step. */
  onStep?(p: StepProgress): void;
  signal?: AbortSignal;
}

export interface StepProgress {
  step: number;
  runStep: number;
  runSteps: number | null;
  loss: number;
  bce: number;
  coord: number;
  lr: number;
  elapsedMs: number;
  etaMs: number | null;
}

interface TrainerState {
  step: number;
  trainedMs: number;
  samplesSeen: number;
  history: { step: number; loss: number; bce: number; coord: number }[];
}

const TRAINER_FILE = 'trainer.json';
const OPTIMIZER_FILE = 'optimizer.safetensors';

async function loadTrainerState(dir: string, adam: Adam): Promise<TrainerState | null> {
  const tp = join(dir, TRAINER_FILE);
  if (!existsSync(tp) || !existsSync(join(dir, OPTIMIZER_FILE))) return null;
  const state = JSON.parse(await readFile(tp, 'utf8')) as TrainerState;
  const arrays = await readSafetensors(join(dir, OPTIMIZER_FILE));
  const m = new Map<string, tf.Variable>();
  for (const [n, v] of adam.m) m.set(`m.${n}`, v);
  for (const [n, v] of adam.v) m.set(`v.${n}`, v);
  restore(m, arrays, join(dir, OPTIMIZER_FILE));
  adam.step = state.step;
  return state;
}

async function saveTraining(dir: string, det: ObjectDetector, adam: Adam, state: TrainerState): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveDetector(det, dir, 'F16');
  // A float32 copy of the weights lets a resumed run continue without float16 rounding.
  await writeSafetensors(join(dir, 'model.f32.safetensors'), snapshot(det.namedParameters()), { dtype: 'F32' });
  const opt = new Map<string, tf.Variable>();
  for (const [n, v] of adam.m) opt.set(`m.${n}`, v);
  for (const [n, v] of adam.v) opt.set(`v.${n}`, v);
  await writeSafetensors(join(dir, OPTIMIZER_FILE), snapshot(opt), { dtype: 'F32' });
  await writeFile(join(dir, TRAINER_FILE), JSON.stringify(state, null, 2) + '\n');
}

/** Restore full-precision weights saved by a previous run, if any (the committed weights are float16). */
export async function restoreTrainingWeights(det: ObjectDetector, dir: string): Promise<boolean> {
  const p = join(dir, 'model.f32.safetensors');
  if (!existsSync(p)) return false;
  restore(det.namedParameters(), await readSafetensors(p), p);
  return true;
}

export interface TrainResult {
  step: number;
  runSteps: number;
  firstLoss: number;
  lastLoss: number;
  /** Mean loss of the first and last 10% of this run's steps (at least one step each). */
  earlyMeanLoss: number;
  lateMeanLoss: number;
  elapsedMs: number;
}

/**
 * Train (or continue training) a detector. The learning rate is constant after warm-up and decays with a cosine
 * over the last 40% of the run (by steps or by time, whichever runs out first), so every run ends on a low rate.
 */
export async function trainDetector(det: ObjectDetector, source: SampleSource, opts: TrainOptions = {}): Promise<TrainResult> {
  const batchSize = opts.batchSize ?? 32;
  const baseLr = opts.lr ?? 1e-3;
  const warmup = opts.warmup ?? 100;
  const noise = opts.noise ?? 0;
  const runSteps = opts.steps ?? (opts.minutes === undefined ? 1000 : null);
  const budgetMs = opts.minutes === undefined ? null : opts.minutes * 60_000;
  const params = det.namedParameters();
  const names = new Map([...params].map(([n, v]) => [v, n] as const));
  const varList = [...params.values()];
  const adam = new Adam(params);
  let state: TrainerState = { step: 0, trainedMs: 0, samplesSeen: 0, history: [] };
  if (opts.dir) {
    const prev = await loadTrainerState(opts.dir, adam);
    if (prev) {
      state = prev;
      await restoreTrainingWeights(det, opts.dir);
      log.info({ step: state.step, dir: opts.dir }, 'resuming detector training');
    }
  }
  const fresh = state.step === 0;
  const trainedBefore = state.trainedMs;
  const t0 = Date.now();
  const losses: number[] = [];
  let runStep = 0;
  let lastSave = state.step;
  const k = det.config.classes.length;
  const c = det.config.coords;
  try {
    for (;;) {
      const elapsed = Date.now() - t0;
      if (runSteps !== null && runStep >= runSteps) break;
      if (budgetMs !== null && elapsed >= budgetMs) break;
      if (opts.signal?.aborted) break;
      const progress = Math.max(runSteps === null ? 0 : runStep / runSteps, budgetMs === null ? 0 : elapsed / budgetMs);
      let lr = baseLr;
      if (fresh && runStep < warmup) lr = (baseLr * (runStep + 1)) / warmup;
      if (progress > 0.6) lr = baseLr * (0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * (progress - 0.6)) / 0.4)));
      const samples = source(batchSize);
      const { presence, coords } = makeTargets(det.config, samples);
      const x = det.prepare(samples.map((s) => s.image));
      const xin = noise > 0 ? tf.tidy(() => tf.add(x, tf.mul(tf.randomNormal(x.shape), Math.random() * noise))) as tf.Tensor4D : x;
      const pt = tf.tensor2d(presence, [samples.length, k]);
      const ct = tf.tensor3d(coords, [samples.length, k, c]);
      let bce = 0;
      let coord = 0;
      const { value, grads } = tf.variableGrads(() => {
        const l = det.losses(xin, pt, ct);
        // Read the parts inside the closure: they are disposed with the gradient tape.
        bce = l.bce.dataSync()[0]!;
        coord = l.coord.dataSync()[0]!;
        return l.total;
      }, varList);
      adam.apply(grads, names, lr);
      const loss = value.dataSync()[0]!;
      tf.dispose([x, xin, pt, ct, value, ...Object.values(grads)]);
      if (!Number.isFinite(loss)) throw new Error(`detector training diverged at step ${state.step} (loss ${loss})`);
      losses.push(loss);
      runStep++;
      state.step++;
      state.samplesSeen += samples.length;
      if (state.step % 50 === 0 || runStep === 1) state.history.push({ step: state.step, loss, bce, coord });
      const el = Date.now() - t0;
      const perStep = el / runStep;
      const etaSteps = runSteps === null ? null : (runSteps - runStep) * perStep;
      const etaTime = budgetMs === null ? null : Math.max(0, budgetMs - el);
      const etaMs = etaSteps === null ? etaTime : etaTime === null ? etaSteps : Math.min(etaSteps, etaTime);
      opts.onStep?.({ step: state.step, runStep, runSteps, loss, bce, coord, lr, elapsedMs: el, etaMs });
      if (opts.dir && opts.checkpointEvery && state.step - lastSave >= opts.checkpointEvery) {
        state.trainedMs = trainedBefore + Date.now() - t0;
        await saveTraining(opts.dir, det, adam, state);
        lastSave = state.step;
      }
      // Yield to the event loop so signals (Ctrl-C) and timers run between steps.
      await new Promise((r) => setImmediate(r));
    }
    if (opts.dir && runStep > 0) {
      state.trainedMs = trainedBefore + Date.now() - t0;
      await saveTraining(opts.dir, det, adam, state);
    }
  } finally {
    adam.dispose();
  }
  const tenth = Math.max(1, Math.floor(losses.length / 10));
  const mean = (a: number[]): number => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : NaN);
  return {
    step: state.step,
    runSteps: runStep,
    firstLoss: losses[0] ?? NaN,
    lastLoss: losses[losses.length - 1] ?? NaN,
    earlyMeanLoss: mean(losses.slice(0, tenth)),
    lateMeanLoss: mean(losses.slice(-tenth)),
    elapsedMs: Date.now() - t0,
  };
}
