/**
 * The optimisation loop shared by every training stage (and the autoencoder): steps within a step / time
 * budget, validation every K steps with the paper's keep-best / restore-and-halve / stop-after-5 rule, periodic
 * crash-safe checkpoints, Ctrl-C handling, a progress bar and JSON Lines metrics.
 */
import { appendFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { SingleBar } from 'cli-progress';
import { partLogger } from '../log/index.js';
import type { AdamW, NamedArray } from './adamw.js';
import { disposeAverageSnapshot, type AverageSnapshot, type WeightAverage } from './average.js';
import { ValidationSchedule, type ValidationAction, type ValidationState } from './schedule.js';

const log = partLogger('train');

/** What one stage trains: the loop is agnostic of the model behind it. */
export interface StageTask {
  /** For logs and the progress bar, e.g. "stage 2" or "autoencoder". */
  name: string;
  optimizer: AdamW;
  batchSize: number;
  /** Loss at data position `cursor` and step `step` (the caller owns the returned tensors). */
  loss(cursor: number, step: number): { total: tf.Scalar; parts: Record<string, tf.Scalar> };
  /** Mean validation loss over fixed batches with fixed noise (comparable across calls). */
  validate(): number;
  /** Copies of the weights this stage can change, by name. */
  snapshot(): Map<string, tf.Tensor>;
  /** Assign a snapshot back (the caller keeps ownership of the snapshot). */
  restore(weights: Map<string, tf.Tensor>): void;
}

/** Everything about a stage's progress that a resume needs (saved in trainer.json). */
export interface LoopState {
  step: number;
  /** Data position: samples consumed so far (global across stages). */
  cursor: number;
  /** Training time spent in this stage, ms (the time budget counts this, so it survives resumes). */
  elapsedMs: number;
  validation: ValidationState;
  /** Optimizer step count (Adam's t). */
  adamStep: number;
  /** Set when the stage finished: 'budget', 'steps', 'restores'. */
  finished: string | null;
  /** Updates folded into the weight average so far (runs with --ema-decay; continues its warm-up on resume). */
  averageUpdates?: number;
}

export interface Budget {
  /** Stop after this many steps of the stage. */
  steps?: number;
  /** Stop after this much training time in the stage. */
  minutes?: number;
}

export interface BestSnapshot {
  weights: Map<string, tf.Tensor>;
  moments: Map<string, NamedArray>;
  adamStep: number;
  /** The weight average at that step (runs with a weight average). */
  average?: AverageSnapshot;
}

export interface LoopHooks {
  /** Persist the resumable state (model, optimizer, trainer.json) as `last`. */
  saveLast(state: LoopState): Promise<void>;
  /** Persist the new best model (validation improved). */
  saveBest(state: LoopState): Promise<void>;
}

export interface LoopOptions {
  budget: Budget;
  /** Validate every this many steps. */
  valEvery: number;
  /** Validations in a row that may fail to improve before a restore (1: the paper's rule). */
  valPatience?: number;
  /** Save `last` at least this often (minutes of wall time). */
  checkpointMinutes: number;
  /** metrics.jsonl path. */
  metricsFile: string;
  /** Show a progress bar on stderr. */
  progress: boolean;
  /** Set when Ctrl-C asks the loop to stop (checked between steps). */
  shouldStop: () => boolean;
  /**
   * A moving average of the weights: updated after every step; validation (and so keep-best) judges the average,
   * a restore puts it back with the weights, and the stage ends on the kept average.
   */
  average?: WeightAverage;
}

export function initialLoopState(lr: number, cursor: number): LoopState {
  return { step: 0, cursor, elapsedMs: 0, validation: new ValidationSchedule(lr).state(), adamStep: 0, finished: null };
}

/** Copy a snapshot (the best model kept in memory). */
export function takeSnapshot(task: StageTask, average?: WeightAverage): BestSnapshot {
  return { weights: task.snapshot(), moments: task.optimizer.stateArrays(), adamStep: task.optimizer.stepCount, ...(average ? { average: average.snapshot() } : {}) };
}

export function disposeSnapshot(s: BestSnapshot | null): void {
  if (!s) return;
  for (const t of s.weights.values()) t.dispose();
  disposeAverageSnapshot(s.average);
}

function appendMetric(file: string, rec: Record<string, unknown>): void {
  appendFileSync(file, JSON.stringify({ time: new Date().toISOString(), ...rec }) + '\n');
}

function fmt(x: number): string {
  return Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4)) : String(x);
}

/**
 * Run (or continue) one stage until its budget is spent, the 5th restoration, or a stop request.
 * `best` is the kept model (null if none yet: a baseline validation is taken first). Returns the final state
 * and best snapshot; on 'restores' or a finished budget the best weights are restored into the model.
 */
export async function runStage(
  task: StageTask,
  state: LoopState,
  best: BestSnapshot | null,
  hooks: LoopHooks,
  opts: LoopOptions,
): Promise<{ state: LoopState; best: BestSnapshot | null; interrupted: boolean }> {
  // A resumed stage with a larger budget carries on; it is finished again only when the new budget is spent.
  state = { ...state, finished: null };
  const sched = new ValidationSchedule(state.validation.lr, { patience: opts.valPatience });
  sched.load(state.validation);
  task.optimizer.lr = sched.lr;
  const average = opts.average;
  const saveState = (): LoopState => ({ ...state, validation: sched.state(), adamStep: task.optimizer.stepCount, ...(average ? { averageUpdates: average.updates } : {}) });
  const restoreBest = (b: BestSnapshot): void => {
    task.restore(b.weights);
    task.optimizer.loadStateArrays(b.moments, b.adamStep);
    if (average && b.average) average.load(b.average);
  };

  const validateNow = async (): Promise<ValidationAction> => {
    const t0 = Date.now();
    const v = average ? await average.withAverage(() => task.validate()) : task.validate();
    const action = sched.observe(v, state.step);
    appendMetric(opts.metricsFile, { kind: 'val', stage: task.name, step: state.step, val: v, best: sched.best, action, lr: sched.lr, ms: Date.now() - t0 });
    log.info({ stage: task.name, step: state.step, val: v, best: sched.best, action, lr: sched.lr }, 'validation');
    if (action === 'improved') {
      disposeSnapshot(best);
      best = takeSnapshot(task, average);
      await hooks.saveBest(saveState());
    } else if (action !== 'wait' && best) {
      restoreBest(best);
    }
    task.optimizer.lr = sched.lr;
    return action;
  };

  if (!best) {
    // Baseline: the model as it enters the stage is the first kept model, so a restore never goes below it.
    await validateNow();
    await hooks.saveLast(saveState());
  }

  const budgetMs = opts.budget.minutes !== undefined ? opts.budget.minutes * 60_000 : Infinity;
  const maxSteps = opts.budget.steps ?? Infinity;
  const bar = opts.progress
    ? new SingleBar({
        format: `${task.name} |{bar}| {value}/{total} steps | loss {loss} | {rate} s/step | lr {lr} | ETA {eta_formatted}`,
        stream: process.stderr,
        noTTYOutput: true,
        notTTYSchedule: 30_000,
        etaBuffer: 50,
        hideCursor: true,
      })
    : null;
  const estimateTotal = (msPerStep: number): number => {
    const byTime = Number.isFinite(budgetMs) && msPerStep > 0 ? state.step + Math.max(0, Math.round((budgetMs - state.elapsedMs) / msPerStep)) : Infinity;
    const t = Math.min(maxSteps, byTime);
    return Number.isFinite(t) ? t : state.step + 1000;
  };
  bar?.start(estimateTotal(0), state.step, { loss: '-', rate: '-', lr: sched.lr.toExponential(2) });

  let lastSave = Date.now();
  let emaMs = 0;
  let emaLoss = Number.NaN;
  let interrupted = false;
  try {
    while (true) {
      if (state.step >= maxSteps) {
        state.finished = 'steps';
        break;
      }
      if (state.elapsedMs >= budgetMs) {
        state.finished = 'budget';
        break;
      }
      // Yield to the event loop once per step: signal handlers (Ctrl-C) and the batch built ahead run here.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (opts.shouldStop()) {
        interrupted = true;
        break;
      }
      const t0 = Date.now();
      const vars = task.optimizer.trainableVariables();
      let parts: Record<string, number> = {};
      const { value, grads } = tf.variableGrads(() => {
        const l = task.loss(state.cursor, state.step);
        // Keep the component losses for the metrics log; they are read after the gradient pass.
        parts = Object.fromEntries(Object.entries(l.parts).map(([k, t]) => [k, t.dataSync()[0]!]));
        return l.total;
      }, vars);
      const loss = value.dataSync()[0]!;
      let gradNorm = Number.NaN;
      if (Number.isFinite(loss)) {
        gradNorm = task.optimizer.step(grads);
        average?.update();
      }
      tf.dispose([value, ...Object.values(grads)]);
      state.cursor += task.batchSize;
      state.step++;
      const ms = Date.now() - t0;
      state.elapsedMs += ms;
      emaMs = emaMs === 0 ? ms : 0.9 * emaMs + 0.1 * ms;
      emaLoss = Number.isNaN(emaLoss) ? loss : 0.95 * emaLoss + 0.05 * loss;
      appendMetric(opts.metricsFile, { kind: 'train', stage: task.name, step: state.step, cursor: state.cursor, loss, ...parts, lr: task.optimizer.lr, gradNorm, ms });
      bar?.setTotal(estimateTotal(emaMs));
      bar?.update(state.step, { loss: fmt(emaLoss), rate: (emaMs / 1000).toFixed(2), lr: task.optimizer.lr.toExponential(2) });

      let action: ValidationAction | null = null;
      if (!Number.isFinite(loss)) {
        // A diverged step is handled like a worse validation: back to the kept model at half the rate.
        log.warn({ stage: task.name, step: state.step, loss }, 'non-finite training loss: restoring the best model');
        action = sched.observe(Number.NaN, state.step);
        appendMetric(opts.metricsFile, { kind: 'val', stage: task.name, step: state.step, val: null, action, lr: sched.lr, reason: 'non-finite training loss' });
        if (best) restoreBest(best);
        task.optimizer.lr = sched.lr;
      } else if (state.step % opts.valEvery === 0) {
        action = await validateNow();
      }
      if (action === 'stop') {
        state.finished = 'restores';
        break;
      }
      if (Date.now() - lastSave >= opts.checkpointMinutes * 60_000) {
        await hooks.saveLast(saveState());
        lastSave = Date.now();
      }
    }
  } finally {
    bar?.stop();
  }
  if ((state.finished === 'budget' || state.finished === 'steps') && state.step !== sched.bestStep && state.step % opts.valEvery !== 0) {
    // Steps since the last validation are judged before the stage ends, so they are not thrown away unseen.
    await validateNow();
  }
  if (state.finished && best) {
    // The stage ends on its kept model (the paper saves only improvements): with a weight average, on the kept
    // average, which is what validation judged.
    restoreBest(best);
    average?.applyToVariables();
  }
  const final = saveState();
  await hooks.saveLast(final);
  return { state: final, best, interrupted };
}
