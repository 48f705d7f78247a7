/**
 * The turn queue of scale-out mode, shared by API servers (which add jobs) and generation workers (which take
 * them): BullMQ on Redis, one job per turn with the turn's id as the job id (adding a turn twice is a no-op),
 * plus two plain Redis conventions: a cancel channel and each worker's status under a key that expires.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { EngineStatus } from '../types.js';

export const TURN_QUEUE = 'codraw-turns';
/** Pub/sub channel: a turn id to stop wherever it runs. */
export const CANCEL_CHANNEL = 'codraw:cancel';
/** `codraw:worker:<id>` -> JSON WorkerHeartbeat, expiring unless renewed. */
export const WORKER_KEY_PREFIX = 'codraw:worker:';

/** What a job carries: enough to enqueue the turn in a worker's engine; the rest is read from the database. */
export interface TurnJob {
  sessionId: string;
  turnId: string;
  /** Key of the model that renders it (a worker serves the same MODELS as the API servers). */
  model: string | undefined;
}

export interface WorkerHeartbeat {
  id: string;
  host: string;
  pid: number;
  at: number;
  status: EngineStatus;
}

/** A connection as BullMQ needs it: blocking commands may wait forever, and requests wait out a reconnect. */
export function queueConnection(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, ...extra });
}
