/**
 * Prometheus metrics (prom-client) of a process that runs or feeds an engine: the engine's queue depth and running
 * turns, denoising step time and batch size, turns ended by outcome, turn latency and first-preview latency (from
 * the turn entering this engine), and the process's own metrics, event-loop lag among them. API servers
 * (ServerMetrics adds theirs) and generation workers (src/server/worker.ts) both expose them at GET /metrics.
 *
 * The engine is observed at its two seams: its hooks (what it reports) and its enqueue (when a turn entered it).
 */
import client from 'prom-client';
import type { BatchInfo, EngineHooks, GenerationEngine } from '../engine/index.js';

export const MS_BUCKETS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];

export class EngineMetrics {
  readonly registry = new client.Registry();
  private readonly stepMs = new client.Histogram({
    name: 'codraw_engine_step_ms', help: 'Time of one denoising step of a batch (ms).', labelNames: ['model'], buckets: MS_BUCKETS, registers: [this.registry],
  });
  private readonly batchSize = new client.Histogram({
    name: 'codraw_engine_batch_samples', help: 'Samples denoised in one step (a best-of-n turn counts n).', labelNames: ['model'],
    buckets: [1, 2, 4, 8, 16, 32, 64], registers: [this.registry],
  });
  private readonly turnLatency = new client.Histogram({
    name: 'codraw_turn_latency_ms', help: 'From a turn entering the engine to its final image (ms).', buckets: MS_BUCKETS, registers: [this.registry],
  });
  private readonly firstPreview = new client.Histogram({
    name: 'codraw_turn_first_preview_ms', help: 'From a turn entering the engine to its first preview frame (ms).', buckets: MS_BUCKETS, registers: [this.registry],
  });
  private readonly ended = new client.Counter({
    name: 'codraw_engine_turns_ended_total', help: 'Turns this process\'s engine ended, by outcome.', labelNames: ['outcome'], registers: [this.registry],
  });
  /** Enqueue time of each turn the engine holds (by id). */
  private readonly enqueuedAt = new Map<string, number>();

  constructor(o: { engine: () => GenerationEngine | null }) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'codraw_' });
    new client.Gauge({
      name: 'codraw_engine_queue_depth', help: 'Turns waiting to start in the engine.', registers: [this.registry],
      collect() {
        this.set(o.engine()?.status().queueLength ?? 0);
      },
    });
    new client.Gauge({
      name: 'codraw_engine_running', help: 'Turns in the engine\'s current batches.', registers: [this.registry],
      collect() {
        this.set(o.engine()?.status().running ?? 0);
      },
    });
  }

  /** The engine, seen through its enqueue. */
  observeEngine<E extends GenerationEngine>(engine: E): E {
    const enqueue = engine.enqueue.bind(engine);
    engine.enqueue = (sessionId, turnId, model) => {
      if (!this.enqueuedAt.has(turnId)) this.enqueuedAt.set(turnId, performance.now());
      enqueue(sessionId, turnId, model);
    };
    return engine;
  }

  /** The engine's hooks, observed on their way to the sessions service. */
  observeHooks(hooks: EngineHooks): EngineHooks {
    const previewed = new Set<string>();
    const since = (turnId: string): number | null => {
      const t = this.enqueuedAt.get(turnId);
      return t === undefined ? null : performance.now() - t;
    };
    const end = (turnId: string, outcome: string): void => {
      this.ended.inc({ outcome });
      this.enqueuedAt.delete(turnId);
      previewed.delete(turnId);
    };
    return {
      start: (turnId) => hooks.start(turnId),
      progress: (p) => {
        if (p.previewPng && !previewed.has(p.turnId)) {
          previewed.add(p.turnId);
          const ms = since(p.turnId);
          if (ms !== null) this.firstPreview.observe(ms);
        }
        hooks.progress(p);
      },
      finished: async (turnId, png, timings, latent) => {
        await hooks.finished(turnId, png, timings, latent);
        const ms = since(turnId);
        if (ms !== null) this.turnLatency.observe(ms);
        end(turnId, 'succeeded');
      },
      failed: async (turnId, error) => {
        await hooks.failed(turnId, error);
        end(turnId, 'failed');
      },
      cancelled: async (turnId) => {
        await hooks.cancelled(turnId);
        end(turnId, 'cancelled');
      },
    };
  }

  /** One denoising step of a batch (the engine's onBatch). */
  batch(info: BatchInfo): void {
    const model = info.model ?? 'default';
    this.stepMs.observe({ model }, info.stepMs);
    this.batchSize.observe({ model }, info.samples);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
