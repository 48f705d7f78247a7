/**
 * The generation engine as an API server sees it in scale-out mode: turns become BullMQ jobs that any generation
 * worker (`npm run worker`, src/worker/) takes; cancellation goes out on a Redis channel to whichever worker runs
 * the turn. status() is a snapshot refreshed every second from the queue's counts and the workers' heartbeats.
 * PostgreSQL stays the source of truth: after Redis comes back (it may have lost the queue), `onReconnect` lets
 * the sessions service add every unfinished turn again (a job id is its turn id, so this never duplicates one).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { partLogger } from '../../log/index.js';
import type { EngineStatus, GenerationEngine, ModelStatus } from '../types.js';
import { CANCEL_CHANNEL, TURN_QUEUE, WORKER_KEY_PREFIX, queueConnection, type TurnJob, type WorkerHeartbeat } from './turnQueue.js';

const log = partLogger('engine');

export interface QueueEngineOptions {
  redisUrl: string;
  /** How often status() is refreshed (ms). Default 1000. */
  statusEveryMs?: number;
  /** Called when the Redis connection is ready again after it was lost. */
  onReconnect?(): void;
  batching: boolean;
  maxBatchSize: number;
}

export class QueueEngine implements GenerationEngine {
  private readonly connection: Redis;
  private readonly queue: Queue<TurnJob>;
  private snapshot: EngineStatus;
  private readonly timer: NodeJS.Timeout;
  private wasReady = false;
  private closed = false;

  constructor(private readonly o: QueueEngineOptions) {
    this.connection = queueConnection(o.redisUrl);
    this.connection.on('error', (err: Error) => log.warn({ err: err.message }, 'turn queue connection error'));
    this.connection.on('ready', () => {
      if (this.wasReady) {
        log.info('turn queue reconnected; unfinished turns are queued again from the database');
        o.onReconnect?.();
      }
      this.wasReady = true;
    });
    this.queue = new Queue<TurnJob>(TURN_QUEUE, { connection: this.connection });
    this.queue.on('error', (err) => log.warn({ err: err.message }, 'turn queue error'));
    this.snapshot = {
      backend: 'queue', device: 'no workers', threads: 0, model: 'none', models: [], queueLength: 0, busy: false, running: 0,
      batching: o.batching, maxBatchSize: o.maxBatchSize, stepMs: null,
    };
    this.timer = setInterval(() => void this.refresh(), o.statusEveryMs ?? 1000);
    this.timer.unref();
    void this.refresh();
  }

  enqueue(sessionId: string, turnId: string, model?: string): void {
    if (this.closed) return;
    this.queue
      .add('turn', { sessionId, turnId, model }, { jobId: turnId, removeOnComplete: true, removeOnFail: true })
      .catch((err: unknown) => log.error({ err, turnId }, 'could not queue the turn; it is queued again when Redis is back'));
  }

  cancel(turnId: string): boolean {
    if (this.closed) return false;
    // A waiting job is removed; an active one is stopped by its worker (the row is already CANCELLED, so a worker
    // that picks the job up later finds nothing to run).
    this.queue.remove(turnId).catch(() => undefined);
    this.connection.publish(CANCEL_CHANNEL, turnId).catch((err: unknown) => log.warn({ err, turnId }, 'cancel not sent'));
    return true;
  }

  status(): EngineStatus {
    return this.snapshot;
  }

  async drain(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.queue.close().catch(() => undefined);
    await this.connection.quit().catch(() => this.connection.disconnect());
  }

  /** Queue counts and the live workers' heartbeats -> the status snapshot. */
  private async refresh(): Promise<void> {
    if (this.closed || this.connection.status !== 'ready') return;
    try {
      const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      const keys = await this.connection.keys(`${WORKER_KEY_PREFIX}*`);
      const beats = (keys.length ? await this.connection.mget(keys) : [])
        .filter((v): v is string => typeof v === 'string')
        .map((v) => JSON.parse(v) as WorkerHeartbeat);
      const models = new Map<string, ModelStatus>();
      let stepMs: number | null = null;
      for (const b of beats) {
        for (const m of b.status.models ?? []) {
          const known = models.get(m.key);
          if (!known) models.set(m.key, { ...m });
          else {
            known.loaded ||= m.loaded;
            known.running += m.running;
            known.queueLength += m.queueLength;
            if (m.stepMs !== null) known.stepMs = Math.max(known.stepMs ?? 0, m.stepMs);
          }
        }
        if (b.status.stepMs != null) stepMs = Math.max(stepMs ?? 0, b.status.stepMs);
      }
      const first = beats[0]?.status;
      this.snapshot = {
        backend: first ? `${first.backend} (queue)` : 'queue',
        device: beats.length ? `${beats.length} worker${beats.length === 1 ? '' : 's'}: ${beats.map((b) => `${b.host}:${b.pid}`).join(', ')}` : 'no workers',
        threads: beats.reduce((n, b) => n + b.status.threads, 0),
        model: [...new Set([...models.values()].map((m) => m.name))].join(', ') || 'none',
        models: [...models.values()],
        queueLength: (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0),
        busy: (counts.active ?? 0) + (counts.waiting ?? 0) > 0,
        running: counts.active ?? 0,
        batching: this.o.batching,
        maxBatchSize: this.o.maxBatchSize,
        stepMs,
      };
    } catch (err) {
      log.warn({ err }, 'turn queue status failed');
    }
  }
}
