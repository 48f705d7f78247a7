/**
 * Public surface of the engine part: `createEngine` (in-process, one model), `createThreadedEngine` (the server's:
 * every served model in a worker thread) and the contract types (docs/ARCHITECTURE.md "Engine").
 */
import { loadCheckpoint } from '../model/index.js';
import { Engine } from './engine.js';
import { ThreadedEngine, type ThreadedEngineOptions } from './thread/threadedEngine.js';
import type { EngineOptions, GenerationEngine } from './types.js';

export type {
  BatchInfo, EngineHooks, EngineOptions, EngineStatus, GenerationEngine, ModelStatus, TurnInputs, TurnProgress, TurnTimings,
} from './types.js';
export { ModelRouter, type ModelRouterOptions, type SharedEngineSettings } from './modelRouter.js';
export { ThreadedEngine, type ThreadedEngineOptions } from './thread/threadedEngine.js';
export { encodePngAsync } from '../data/index.js';
/** The solvers a turn may name (TurnInputs.solver). */
export { SOLVERS, type SolverName } from '../model/index.js';

/** Defaults of the per-model engine settings (EngineOptions documents each). */
export const ENGINE_DEFAULTS = {
  previewEvery: 5,
  maxBatchSize: 8,
  latentCacheSize: 4096,
  batching: true,
  joinWaitMs: 25,
  previewGraceMs: 2,
} as const;

/**
 * Create the engine and start its step loop on this thread. With `checkpoint`, the model loads in the
 * background: turns queue meanwhile, and `ready()` resolves (or rejects) when loading ends. The backend must be
 * initialised (`initBackend`) before.
 */
export function createEngine(options: EngineOptions): GenerationEngine & { ready(): Promise<void> } {
  if (!!options.model === !!options.checkpoint) throw new Error('createEngine: give exactly one of model or checkpoint');
  const model = options.model ? Promise.resolve(options.model) : loadCheckpoint(options.checkpoint!);
  return new Engine({
    model,
    ownsModel: !options.model,
    hooks: options.hooks,
    previewEvery: options.previewEvery ?? ENGINE_DEFAULTS.previewEvery,
    maxBatchSize: options.maxBatchSize ?? ENGINE_DEFAULTS.maxBatchSize,
    latentCacheSize: options.latentCacheSize ?? ENGINE_DEFAULTS.latentCacheSize,
    batching: options.batching ?? ENGINE_DEFAULTS.batching,
    joinWaitMs: options.joinWaitMs ?? ENGINE_DEFAULTS.joinWaitMs,
    previewGraceMs: options.previewGraceMs ?? ENGINE_DEFAULTS.previewGraceMs,
    ...(options.onBatch ? { onBatch: options.onBatch } : {}),
    ...(options.backend ? { backend: options.backend } : {}),
  });
}

/**
 * The server's engine: a worker thread runs every tensor operation (each served model in its own Engine, loaded
 * on its first turn); this thread keeps HTTP, WebSocket, GraphQL and the database. Resolve `ready()` before
 * serving: it rejects if the thread cannot start its tensor backend.
 */
export function createThreadedEngine(options: ThreadedEngineOptions): ThreadedEngine {
  return new ThreadedEngine(options);
}
export { QueueEngine, type QueueEngineOptions } from './queue/queueEngine.js';
export { GenerationWorker, type GenerationWorkerOptions, type StartDecision } from './queue/generationWorker.js';
