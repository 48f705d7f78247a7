/**
 * A generation worker of scale-out mode: takes turn jobs from the BullMQ queue and runs them in its own engine
 * (a ThreadedEngine: tensor work in a worker thread). It takes up to `concurrency` jobs at once, so ready turns of
 * several sessions denoise in one batch, as in single-process mode.
 *
 * - Per-session order: a job whose session still has an earlier unfinished turn is put back (delayed a little)
 *   rather than run, so a session never has two turns in flight, whichever workers hold its jobs.
 * - A dead worker's jobs: BullMQ's stalled-job check (on the other workers) puts them back in the queue when their
 *   lock expires; the turn is then started again elsewhere (a RUNNING turn may be started again).
 * - Drain (SIGTERM): stop taking jobs, let the engine stop after its current step, and put the unfinished jobs back
 *   in the queue; the caller then marks their rows QUEUED again.
 */
import os from 'node:os';
import crypto from 'node:crypto';
import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { partLogger } from '../../log/index.js';
import type { EngineHooks, GenerationEngine } from '../types.js';
import { CANCEL_CHANNEL, TURN_QUEUE, WORKER_KEY_PREFIX, queueConnection, type TurnJob, type WorkerHeartbeat } from './turnQueue.js';

const log = partLogger('engine');

/** Whether a turn may start now: 'later' while its session has an earlier unfinished turn, 'gone' once it ended. */
export type StartDecision = 'now' | 'later' | 'gone';

type Outcome = 'ended' | 'gone' | 'suspended';

export interface GenerationWorkerOptions {
  redisUrl: string;
  /** Jobs taken at once (the engine batches them): the engine's max batch size. */
  concurrency: number;
  mayStart(turnId: string, sessionId: string): Promise<StartDecision>;
  /** A job whose worker stopped renewing its lock for this long is taken back (ms). Default 10 000. */
  lockDurationMs?: number;
  /** How often this worker checks for such jobs (ms). Default 5 000. */
  stalledIntervalMs?: number;
  /** How long a job waits before its session is asked again (ms). Default 150. */
  orderRetryMs?: number;
  /** Heartbeat period (ms); the key expires after three missed beats. Default 1 000. */
  heartbeatMs?: number;
}

export class GenerationWorker {
  readonly id = `${os.hostname()}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  private engine: GenerationEngine | null = null;
  private worker: Worker<TurnJob> | null = null;
  private connection: Redis | null = null;
  private cancels: Redis | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  /** Jobs waiting for their turn's end, by turn (a job BullMQ hands this worker again waits beside the first). */
  private readonly waiting = new Map<string, Array<(o: Outcome) => void>>();
  private draining = false;

  constructor(private readonly o: GenerationWorkerOptions) {}

  /** The engine's hooks, seen by this worker: a terminal hook (or a start that finds nothing) completes the job. */
  observe(hooks: EngineHooks): EngineHooks {
    const settle = (turnId: string, o: Outcome): void => {
      const ws = this.waiting.get(turnId) ?? [];
      this.waiting.delete(turnId);
      for (const w of ws) w(o);
    };
    return {
      start: async (turnId) => {
        const inputs = await hooks.start(turnId);
        if (!inputs) settle(turnId, 'gone');
        return inputs;
      },
      progress: (p) => hooks.progress(p),
      finished: async (turnId, png, timings, latent) => {
        try {
          await hooks.finished(turnId, png, timings, latent);
        } finally {
          settle(turnId, 'ended');
        }
      },
      failed: async (turnId, error) => {
        try {
          await hooks.failed(turnId, error);
        } finally {
          settle(turnId, 'ended');
        }
      },
      cancelled: async (turnId) => {
        try {
          await hooks.cancelled(turnId);
        } finally {
          settle(turnId, 'ended');
        }
      },
    };
  }

  /** Start taking jobs into `engine` (built with `observe(hooks)`). */
  async start(engine: GenerationEngine): Promise<void> {
    this.engine = engine;
    this.connection = queueConnection(this.o.redisUrl);
    this.connection.on('error', (err: Error) => log.warn({ err: err.message }, 'worker queue connection error'));
    this.cancels = queueConnection(this.o.redisUrl);
    this.cancels.on('error', (err: Error) => log.warn({ err: err.message }, 'worker cancel channel error'));
    this.cancels.on('message', (_channel: string, turnId: string) => this.engine?.cancel(turnId));
    await this.cancels.subscribe(CANCEL_CHANNEL);
    this.worker = new Worker<TurnJob>(TURN_QUEUE, (job, token) => this.process(job, token), {
      connection: this.connection,
      concurrency: this.o.concurrency,
      lockDuration: this.o.lockDurationMs ?? 10_000,
      stalledInterval: this.o.stalledIntervalMs ?? 5_000,
      // A job of a killed worker goes back to the queue this many times before BullMQ gives up on it.
      maxStalledCount: 5,
    });
    this.worker.on('error', (err) => log.warn({ err: err.message }, 'worker error'));
    const beat = (): void => {
      if (!this.engine || !this.connection || this.connection.status !== 'ready') return;
      const hb: WorkerHeartbeat = { id: this.id, host: os.hostname(), pid: process.pid, at: Date.now(), status: this.engine.status() };
      const ms = this.o.heartbeatMs ?? 1000;
      this.connection.set(WORKER_KEY_PREFIX + this.id, JSON.stringify(hb), 'PX', ms * 3).catch(() => undefined);
    };
    this.heartbeat = setInterval(beat, this.o.heartbeatMs ?? 1000);
    this.heartbeat.unref();
    beat();
    await this.worker.waitUntilReady();
    log.info({ worker: this.id, concurrency: this.o.concurrency }, 'generation worker taking turns');
  }

  private async process(job: Job<TurnJob>, token: string | undefined): Promise<void> {
    const { sessionId, turnId, model } = job.data;
    const decision = this.draining ? 'later' : await this.o.mayStart(turnId, sessionId);
    if (decision === 'gone') return;
    if (decision === 'later') {
      await job.moveToDelayed(Date.now() + (this.o.orderRetryMs ?? 150), token);
      throw new DelayedError();
    }
    const outcome = new Promise<Outcome>((resolve) => this.waiting.set(turnId, [...(this.waiting.get(turnId) ?? []), resolve]));
    this.engine!.enqueue(sessionId, turnId, model);
    if ((await outcome) === 'suspended') {
      // Drained mid-turn: back to the queue for another worker (or this one after a restart).
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError();
    }
  }

  /**
   * Stop taking jobs, drain the engine (after its current step), and hand the unfinished jobs back.
   * `beforeHandBack` runs between the two (mark the rows QUEUED), so another worker that takes a job back at once
   * finds its row QUEUED and marks it RUNNING itself, not the other way round.
   */
  async drain(beforeHandBack?: () => Promise<unknown>): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.worker?.pause(true);
    await this.engine?.drain();
    await beforeHandBack?.();
    for (const [turnId, ws] of [...this.waiting]) {
      this.waiting.delete(turnId);
      for (const w of ws) w('suspended');
    }
    await this.worker?.close();
    if (this.connection) await this.connection.del(WORKER_KEY_PREFIX + this.id).catch(() => undefined);
    await this.cancels?.quit().catch(() => undefined);
    await this.connection?.quit().catch(() => undefined);
    log.info({ worker: this.id }, 'generation worker drained');
  }
}
