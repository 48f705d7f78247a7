/**
 * Several models served side by side: one Engine (fair queue, batch, step loop) per model, created and loaded on
 * the first turn that names it. Batches never mix models because each model has its own engine; their step loops
 * share the thread and take turns between steps. A session always renders with one model (its dataset's), so
 * per-session order holds inside that model's engine.
 */
import { backendInfo } from '../backend/index.js';
import { loadCheckpoint, type CddIcm } from '../model/index.js';
import { partLogger } from '../log/index.js';
import { Engine, type EngineCoreOptions } from './engine.js';
import type { BatchInfo, EngineHooks, EngineStatus, GenerationEngine, ModelStatus } from './types.js';

const log = partLogger('engine');

/** The per-engine settings every served model gets. */
export type SharedEngineSettings = Pick<
  EngineCoreOptions,
  'previewEvery' | 'maxBatchSize' | 'latentCacheSize' | 'batching' | 'joinWaitMs' | 'previewGraceMs'
>;

export interface ModelRouterOptions {
  /** Model key -> checkpoint folder. The first key is the default for turns that name none. */
  models: Record<string, string>;
  hooks: EngineHooks;
  settings: SharedEngineSettings;
  onBatch?(info: BatchInfo): void;
  /** Called whenever a model's state changes (loaded, failed), so a status reader can refresh. */
  onChange?(): void;
  /** How a checkpoint folder becomes a model (default: loadCheckpoint). */
  load?(dir: string): Promise<CddIcm>;
}

interface ServedModel {
  key: string;
  dir: string;
  engine: Engine | null;
  name: string;
  loading: Promise<void> | null;
  /** Turns that arrived while the model was loading, in order. */
  pending: Array<{ sessionId: string; turnId: string }>;
}

export class ModelRouter implements GenerationEngine {
  private readonly served = new Map<string, ServedModel>();
  private readonly defaultKey: string;
  private draining = false;
  private drainPromise: Promise<void> | null = null;

  constructor(private readonly o: ModelRouterOptions) {
    const keys = Object.keys(o.models);
    if (keys.length === 0) throw new Error('ModelRouter: no models to serve');
    this.defaultKey = keys[0]!;
    for (const [key, dir] of Object.entries(o.models)) {
      this.served.set(key, { key, dir, engine: null, name: 'not loaded', loading: null, pending: [] });
    }
  }

  enqueue(sessionId: string, turnId: string, model: string = this.defaultKey): void {
    if (this.draining) return;
    const m = this.served.get(model);
    if (!m) {
      const err = new Error(`No model "${model}" is served here (served: ${[...this.served.keys()].join(', ')}).`);
      this.o.hooks.failed(turnId, err).catch((e: unknown) => log.error({ err: e, turnId }, 'hooks.failed failed'));
      return;
    }
    if (m.engine) {
      m.engine.enqueue(sessionId, turnId);
      return;
    }
    if (!m.pending.some((p) => p.turnId === turnId)) m.pending.push({ sessionId, turnId });
    this.open(m);
  }

  cancel(turnId: string): boolean {
    for (const m of this.served.values()) {
      const i = m.pending.findIndex((p) => p.turnId === turnId);
      if (i >= 0) {
        m.pending.splice(i, 1);
        this.o.hooks.cancelled(turnId).catch((err: unknown) => log.error({ err, turnId }, 'hooks.cancelled failed'));
        return true;
      }
      if (m.engine?.cancel(turnId)) return true;
    }
    return false;
  }

  status(): EngineStatus {
    let b: { name: string; device: string; threads: number };
    try {
      b = backendInfo();
    } catch {
      b = { name: 'uninitialised', device: 'none', threads: 0 };
    }
    const models: ModelStatus[] = [];
    let queueLength = 0;
    let running = 0;
    let busy = false;
    let hits = 0;
    let misses = 0;
    let stepMs: number | null = null;
    for (const m of this.served.values()) {
      const s = m.engine?.status();
      const q = (s?.queueLength ?? 0) + m.pending.length;
      models.push({
        key: m.key,
        name: s?.model ?? m.name,
        loaded: !!s && s.model !== 'loading' && s.model !== 'unavailable',
        queueLength: q,
        running: s?.running ?? 0,
        stepMs: s?.stepMs ?? null,
      });
      queueLength += q;
      running += s?.running ?? 0;
      busy ||= !!s?.busy || m.loading !== null;
      hits += s?.referenceLatentHits ?? 0;
      misses += s?.referenceLatentMisses ?? 0;
      if (s?.stepMs != null) stepMs = Math.max(stepMs ?? 0, s.stepMs);
    }
    return {
      backend: b.name,
      device: b.device,
      threads: b.threads,
      model: [...new Set(models.map((m) => m.name))].join(', '),
      models,
      queueLength,
      busy,
      running,
      batching: this.o.settings.batching,
      maxBatchSize: this.o.settings.maxBatchSize,
      stepMs,
      referenceLatentHits: hits,
      referenceLatentMisses: misses,
    };
  }

  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      this.draining = true;
      // A model still loading: its pending turns were never started, so they stay QUEUED in the store.
      await Promise.allSettled([...this.served.values()].map((m) => m.loading));
      await Promise.all([...this.served.values()].map((m) => m.engine?.drain()));
    })();
    return this.drainPromise;
  }

  /** Load a model on its first turn; its waiting turns go to its engine in arrival order. */
  private open(m: ServedModel): void {
    if (m.loading || m.engine) return;
    m.name = 'loading';
    const started = performance.now();
    const load = this.o.load ?? loadCheckpoint;
    m.loading = load(m.dir).then(
      (model) => {
        m.loading = null;
        if (this.draining) {
          model.dispose();
          return;
        }
        m.name = model.config.name;
        m.engine = new Engine({
          model: Promise.resolve(model),
          ownsModel: true,
          hooks: this.o.hooks,
          ...this.o.settings,
          onBatch: (info) => this.o.onBatch?.({ ...info, model: m.key }),
        });
        log.info({ model: m.key, dir: m.dir, ms: Math.round(performance.now() - started) }, 'model loaded');
        for (const p of m.pending.splice(0)) m.engine.enqueue(p.sessionId, p.turnId);
        this.o.onChange?.();
      },
      (err: unknown) => {
        m.loading = null;
        m.name = 'unavailable';
        const message = err instanceof Error ? err.message : String(err);
        log.error({ err, model: m.key, dir: m.dir }, 'model failed to load');
        // Its turns fail with the reason rather than wait forever; the next turn tries loading again.
        const failure = new Error(`The model "${m.key}" could not be loaded: ${message}`);
        for (const p of m.pending.splice(0)) {
          this.o.hooks.failed(p.turnId, failure).catch((e: unknown) => log.error({ err: e, turnId: p.turnId }, 'hooks.failed failed'));
        }
        this.o.onChange?.();
      },
    );
  }
}
