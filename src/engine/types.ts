/**
 * The engine's contract with the sessions service (docs/ARCHITECTURE.md "Engine"), plus its options.
 */
import type { CddIcm, SampleRequest } from '../model/index.js';

/** Everything the engine needs to run one turn (the model's sample request plus whose turn it is); returned by
 * `hooks.start` once the turn may run. `reference` is the previous turn's result or the session's background. */
export interface TurnInputs extends SampleRequest {
  turnId: string;
  sessionId: string;
}

/** One progress report of a running turn. Step numbers of one turn only increase. */
export interface TurnProgress {
  turnId: string;
  sessionId: string;
  /** Denoising steps done so far (1..totalSteps). */
  step: number;
  totalSteps: number;
  /** Estimated time to the result, from measured step times. */
  etaMs: number;
  /** PNG of the predicted x0 at `step` (every `previewEvery` steps), else null. */
  previewPng: Buffer | null;
}

export interface TurnTimings {
  /** From enqueue to the moment the turn started (hooks.start resolved). */
  queuedMs: number;
  /** From start to the final image. */
  runMs: number;
  /** Optional extras: the number of steps and the mean batch size the turn ran in. */
  steps?: number;
  meanBatchSize?: number;
}

/** Implemented by the sessions service: the engine's only way to read and write turns. */
export interface EngineHooks {
  /** Marks the turn RUNNING and returns its inputs; null if the turn is gone (deleted, cancelled meanwhile). */
  start(turnId: string): Promise<TurnInputs | null>;
  progress(p: TurnProgress): void;
  finished(turnId: string, png: Buffer, timings: TurnTimings): Promise<void>;
  failed(turnId: string, error: Error): Promise<void>;
  cancelled(turnId: string): Promise<void>;
}

/** One model the engine serves (multi-model serving: a session's dataset picks its model). */
export interface ModelStatus {
  /** The key turns name at enqueue (the served checkpoint folder). */
  key: string;
  /** Model preset name from the checkpoint's config; 'loading' / 'unavailable' before / if it fails to load. */
  name: string;
  /** Loaded into memory (models load on their first turn). */
  loaded: boolean;
  /** Turns of this model waiting to start. */
  queueLength: number;
  /** Turns of this model in its current batch. */
  running: number;
  /** Mean step time of this model's batches (ms); null before its first step. */
  stepMs: number | null;
}

export interface EngineStatus {
  backend: string;
  device: string;
  threads: number;
  /** Model preset name (from the checkpoint's config); with several models, their names joined by ", ". */
  model: string;
  /** Every model served (one entry for a single-model engine). */
  models?: ModelStatus[];
  /** Turns waiting to start (not counting running ones). */
  queueLength: number;
  /** True while any turn is starting or being denoised. */
  busy: boolean;
  /** Extras: turns in the current batch, whether batching is on, the batch size limit, mean step time (ms). */
  running?: number;
  batching?: boolean;
  maxBatchSize?: number;
  stepMs?: number | null;
  /** Turns whose reference latent came from the engine's cache, and turns that had to encode their reference. */
  referenceLatentHits?: number;
  referenceLatentMisses?: number;
}

export interface GenerationEngine {
  /**
   * Queue a turn. A session's turns run in enqueue order, one at a time; repeated ids are ignored. `model` is the
   * key of the model that renders it (an engine serving several models; a single-model engine ignores it).
   */
  enqueue(sessionId: string, turnId: string, model?: string): void;
  /** Queued: removed (hooks.cancelled). Running: removed from the batch before the next step. False if unknown. */
  cancel(turnId: string): boolean;
  status(): EngineStatus;
  /** Stop after the current step; unfinished turns get no finished/failed call (they stay QUEUED/RUNNING). */
  drain(): Promise<void>;
  /** Optional extra: resolves when the model is loaded (rejects if loading failed). */
  ready?(): Promise<void>;
}

/** Observed after every denoising step (for tests, benchmarks, metrics and logs). */
export interface BatchInfo {
  /** Key of the model that ran the step (set by an engine serving several models). */
  model?: string;
  /** Turns denoised in this U-Net call. */
  size: number;
  /** Samples in it (a best-of-n turn counts n). */
  samples: number;
  turnIds: string[];
  /** Each item's step position after the step (items may be at different positions). */
  steps: number[];
  stepMs: number;
}

export interface EngineOptions {
  /** A loaded model, or `checkpoint`: a checkpoint folder loaded at start (exactly one of the two). */
  model?: CddIcm;
  checkpoint?: string;
  hooks: EngineHooks;
  /** A preview of the predicted x0 every N steps; 0 turns previews off. Default 5. */
  previewEvery?: number;
  /**
   * Most samples denoised in one U-Net call: turns, a best-of-n turn counting n (one that asks for more runs
   * alone). Default 8.
   */
  maxBatchSize?: number;
  /** False: one turn at a time (round-robin over sessions), for the benchmark. Default true. */
  batching?: boolean;
  /** How long (ms) a running batch waits for a newcomer's hooks.start to resolve so it joins the next step. Default 25. */
  joinWaitMs?: number;
  /**
   * After a step that produced previews, the loop lets their PNG encoding (on the thread pool) finish for up to
   * this many ms before the next step, so they reach subscribers now rather than one step later. 0: just yield.
   * Default 2.
   */
  previewGraceMs?: number;
  /** Backend reported by status(); default: src/backend's backendInfo() at the time of the call. */
  backend?: { name: string; device: string; threads: number };
  /**
   * Latents of this many recent results are kept so that a next turn whose reference is one of them skips the
   * lossy re-encoding (src/engine/latentCache.ts); 0 turns it off. Default 4096 (a few MB for a latent model).
   */
  latentCacheSize?: number;
  /** Called after every step with the batch it ran. */
  onBatch?(info: BatchInfo): void;
}
