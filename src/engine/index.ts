/**
 * Public surface of the engine part: `createEngine` and the contract types (docs/ARCHITECTURE.md "Engine").
 */
import { loadCheckpoint } from '../model/index.js';
import { Engine } from './engine.js';
import type { EngineOptions, GenerationEngine } from './types.js';

export type {
  BatchInfo, EngineHooks, EngineOptions, EngineStatus, GenerationEngine, TurnInputs, TurnProgress, TurnTimings,
} from './types.js';
export { encodePngAsync } from '../data/index.js';

/**
 * Create the engine and start its step loop. With `checkpoint`, the model loads in the background: turns queue
 * meanwhile, and `ready()` resolves (or rejects) when loading ends. The backend must be initialised
 * (`initBackend`) before.
 */
export function createEngine(options: EngineOptions): GenerationEngine & { ready(): Promise<void> } {
  if (!!options.model === !!options.checkpoint) throw new Error('createEngine: give exactly one of model or checkpoint');
  const model = options.model ? Promise.resolve(options.model) : loadCheckpoint(options.checkpoint!);
  return new Engine({
    model,
    ownsModel: !options.model,
    hooks: options.hooks,
    previewEvery: options.previewEvery ?? 5,
    maxBatchSize: options.maxBatchSize ?? 8,
    latentCacheSize: options.latentCacheSize ?? 4096,
    batching: options.batching ?? true,
    joinWaitMs: options.joinWaitMs ?? 25,
    previewGraceMs: options.previewGraceMs ?? 2,
    ...(options.onBatch ? { onBatch: options.onBatch } : {}),
    ...(options.backend ? { backend: options.backend } : {}),
  });
}
