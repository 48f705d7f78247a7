/**
 * An API server's Prometheus metrics at GET /metrics: the engine's (EngineMetrics), plus turns by status
 * (counted in the database, so every server of a deployment reports the same) and preview delivery latency
 * (frame published -> sent on a subscriber's socket).
 */
import client from 'prom-client';
import type { GenerationEngine } from '../engine/index.js';
import type { Db } from '../sessions/index.js';
import { EngineMetrics } from './engineMetrics.js';

export class ServerMetrics extends EngineMetrics {
  private readonly previewDelivery = new client.Histogram({
    name: 'codraw_preview_delivery_ms', help: 'From a preview frame being published to it being sent to a subscriber (ms).',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000], registers: [this.registry],
  });

  constructor(o: { engine: () => GenerationEngine | null; db: Db }) {
    super(o);
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

  /** A preview frame (published at `at`) is being sent to a subscriber now. */
  frameDelivered(at: Date | string): void {
    const t = typeof at === 'string' ? Date.parse(at) : at.getTime();
    if (Number.isFinite(t)) this.previewDelivery.observe(Math.max(0, Date.now() - t));
  }
}
