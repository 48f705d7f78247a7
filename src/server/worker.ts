/**
 * A generation worker process of scale-out mode (`npm run worker`): no HTTP, only the engine (in a worker
 * thread), fed by the BullMQ turn queue; it writes results to PostgreSQL and publishes events and frames through
 * Redis with the same sessions service the API servers use. Run as many as you like, on any machine that reaches
 * the database, Redis and the model folders.
 */
import { ConfigError, isScaleOut, type Config } from '../config/index.js';
import { encodePng } from '../data/index.js';
import { GenerationWorker, createThreadedEngine } from '../engine/index.js';
import { partLogger } from '../log/index.js';
import { RedisLatentStore, RedisPubSub, SessionsService, openDatabase } from '../sessions/index.js';
import { datasetBackground, engineSettings, sessionModels } from './app.js';

const log = partLogger('server');

export interface RunningWorker {
  id: string;
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
  const engine = createThreadedEngine({ models: folders, hooks: worker.observe(service), settings: engineSettings(config), backend: config.backend });
  try {
    await engine.ready();
  } catch (err) {
    await engine.drain();
    throw err;
  }
  service.attachEngine(engine);
  await worker.start(engine);
  log.info({ worker: worker.id, engine: engine.status() }, 'generation worker ready');
  let draining: Promise<void> | null = null;
  return {
    id: worker.id,
    drain: () =>
      (draining ??= (async () => {
        service.stopAccepting();
        let suspended = 0;
        await worker.drain(async () => (suspended = await service.suspendRunning()));
        pubsub.close();
        latents.close();
        await db.$disconnect();
        log.info({ suspended }, 'worker drained');
      })()),
  };
}
