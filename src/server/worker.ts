/**
 * A generation worker process of scale-out mode (`npm run worker`): no API, only the engine (in a worker
 * thread), fed by the BullMQ turn queue; it writes results to PostgreSQL and publishes events and frames through
 * Redis with the same sessions service the API servers use. Run as many as you like, on any machine that reaches
 * the database, Redis and the model folders. With WORKER_METRICS_PORT it serves /metrics and /healthz.
 */
import { ConfigError, isScaleOut, type Config } from '../config/index.js';
import { encodePng } from '../data/index.js';
import { GenerationWorker, createThreadedEngine, type ThreadedEngine } from '../engine/index.js';
import { partLogger } from '../log/index.js';
import { RedisLatentStore, RedisPubSub, SessionsService, openDatabase } from '../sessions/index.js';
import { datasetBackground, engineSettings, sessionModels } from './app.js';
import { EngineMetrics } from './engineMetrics.js';
import { serveWorkerHttp, type WorkerHttp } from './workerHttp.js';

const log = partLogger('server');

export interface RunningWorker {
  id: string;
  /** `http://host:port` of its /metrics and /healthz (null: WORKER_METRICS_PORT unset). */
  metricsOrigin: string | null;
  /** Stop taking turns, stop after the current step, hand unfinished turns back to the queue (rows QUEUED). */
  drain(): Promise<void>;
}

export async function startWorker(config: Config): Promise<RunningWorker> {
  if (!isScaleOut(config)) throw new ConfigError('npm run worker needs REDIS_URL and a postgres:// DATABASE_URL (scale-out mode)');
  const { models, folders } = await sessionModels(config);
  const db = await openDatabase(config);
  const pubsub = new RedisPubSub(config.redisUrl);
  await pubsub.ready();
  const latents = new RedisLatentStore(config.redisUrl);
  const service = new SessionsService({ db, pubsub, config, models, background: datasetBackground, encodePng, latents });
  const worker = new GenerationWorker({
    redisUrl: config.redisUrl,
    concurrency: config.workerConcurrency ?? config.maxBatchSize,
    mayStart: (turnId, sessionId) => service.mayStart(turnId, sessionId),
    lockDurationMs: config.queueLockMs,
    stalledIntervalMs: config.queueStalledCheckMs,
  });
  let engineRef: ThreadedEngine | null = null;
  const metrics = new EngineMetrics({ engine: () => engineRef });
  const engine = metrics.observeEngine(createThreadedEngine({
    models: folders,
    hooks: worker.observe(metrics.observeHooks(service)),
    settings: engineSettings(config),
    backend: config.backend,
    onBatch: (info) => metrics.batch(info),
  }));
  try {
    await engine.ready();
  } catch (err) {
    await engine.drain();
    throw err;
  }
  engineRef = engine;
  service.attachEngine(engine);
  await worker.start(engine);
  let draining: Promise<void> | null = null;
  let listener: WorkerHttp | null = null;
  if (config.workerMetricsPort !== undefined) {
    listener = await serveWorkerHttp({
      host: config.host,
      port: config.workerMetricsPort,
      metrics,
      health: () => ({ worker: worker.id, draining: draining !== null, engine: engine.status() }),
      limits: config.limits,
    });
  }
  log.info({ worker: worker.id, engine: engine.status(), metrics: listener?.origin ?? null }, 'generation worker ready');
  return {
    id: worker.id,
    metricsOrigin: listener?.origin ?? null,
    drain: () =>
      (draining ??= (async () => {
        service.stopAccepting();
        let suspended = 0;
        await worker.drain(async () => (suspended = await service.suspendRunning()));
        pubsub.close();
        latents.close();
        await db.$disconnect();
        // Last, so that /healthz says "draining" (503) until the worker is gone.
        await listener?.close();
        log.info({ suspended }, 'worker drained');
      })()),
  };
}
