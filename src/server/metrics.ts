/**
 * Prometheus metrics (prom-client) at GET /metrics: the engine's queue depth, turns by status (counted in the
 * database, so every server of a deployment reports the same), denoising step time and batch size, turn latency
 * and first-preview latency (from enqueue), preview delivery latency (frame published -> sent on a subscriber's
 * socket), and the process's own metrics, event-loop lag among them.
 *
 * The engine is observed at its two seams: its hooks (what it reports) and its enqueue (when a turn entered it).
 */
import client from 'prom-client';
import type { BatchInfo, EngineHooks, GenerationEngine } from '../engine/index.js';
import type { Db } from '../sessions/index.js';

const MS_BUCKETS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];

export class ServerMetrics {
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
  private readonly previewDelivery = new client.Histogram({
    name: 'codraw_preview_delivery_ms', help: 'From a preview frame being published to it being sent to a subscriber (ms).',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000], registers: [this.registry],
  });
  private readonly ended = new client.Counter({
    name: 'codraw_engine_turns_ended_total', help: 'Turns this server\'s engine ended, by outcome.', labelNames: ['outcome'], registers: [this.registry],
  });
  /** Enqueue time of each turn the engine holds (by id). */
  private readonly enqueuedAt = new Map<string, number>();

  constructor(o: { engine: () => GenerationEngine | null; db: Db }) {
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
    new client.Gauge({
      name: 'codraw_turns', help: 'Stored turns by status.', labelNames: ['status'], registers: [this.registry],
      async collect() {
        const rows = await o.db.turn.groupBy({ by: ['status'], _count: { _all: true } });
        this.reset();
        for (const status of ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']) this.set({ status }, 0);
        for (const r of rows) this.set({ status: r.status }, r._count._all);
      },
    });
  }

  /** The engine, seen through its enqueue. */
  observeEngine(engine: GenerationEngine): GenerationEngine {
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
      finished: async (turnId, png, timings) => {
        await hooks.finished(turnId, png, timings);
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

  batch(info: BatchInfo): void {
    const model = info.model ?? 'default';
    this.stepMs.observe({ model }, info.stepMs);
    this.batchSize.observe({ model }, info.samples);
  }

  /** A preview frame (published at `at`) is being sent to a subscriber now. */
  frameDelivered(at: Date | string): void {
    const t = typeof at === 'string' ? Date.parse(at) : at.getTime();
    if (Number.isFinite(t)) this.previewDelivery.observe(Math.max(0, Date.now() - t));
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
