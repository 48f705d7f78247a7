/**
 * The whole application wired together: the served models (one per dataset, read from their checkpoint folders'
 * config.json here and loaded in the engine thread on first use), the threaded generation engine around the
 * sessions service's hooks, and the server. main.ts, the tests and the benchmark all start it so.
 */
import path from 'node:path';
import { isScaleOut, resolveTurnDefaults, servedModels, type Config } from '../config/index.js';
import { codrawBackground, encodePng, iclevrBackground, type RgbImage } from '../data/index.js';
import {
  ENGINE_DEFAULTS, QueueEngine, createThreadedEngine, type BatchInfo, type SharedEngineSettings, type ThreadedEngine,
} from '../engine/index.js';
import { readCheckpointConfig } from '../model/index.js';
import { partLogger } from '../log/index.js';
import { RedisPubSub, type SessionModel } from '../sessions/index.js';
import { startServer, type RunningServer } from './index.js';

const log = partLogger('server');

export interface AppOptions {
  config: Config;
  /** Observe every engine step (benchmark, tests). */
  onBatch?(info: BatchInfo): void;
}

export function datasetBackground(dataset: string, size: number): RgbImage {
  return dataset === 'codraw' ? codrawBackground(size) : iclevrBackground(size);
}

/**
 * The model of every served dataset, from its checkpoint's config.json (weights are not read here). Datasets
 * given the same folder share one model, and so one engine and its batches.
 */
export async function sessionModels(config: Config): Promise<{ models: Record<string, SessionModel>; folders: Record<string, string> }> {
  const models: Record<string, SessionModel> = {};
  const keyOfFolder = new Map<string, string>();
  const folders: Record<string, string> = {};
  for (const [dataset, dir] of Object.entries(servedModels(config))) {
    const abs = path.resolve(dir!);
    let modelConfig;
    try {
      modelConfig = await readCheckpointConfig(abs);
    } catch (err) {
      throw new Error(`cannot load the model checkpoint ${abs} for ${dataset} sessions (set MODELS, MODEL_PATH or --model): ${(err as Error).message}`);
    }
    let key = keyOfFolder.get(abs);
    if (!key) {
      key = dir!;
      keyOfFolder.set(abs, key);
      folders[key] = abs;
    }
    // The checkpoint's measured sampling settings apply unless the configuration sets its own.
    const turnDefaults = resolveTurnDefaults(config, modelConfig.sampling);
    models[dataset] = { key, name: `${modelConfig.name} (${path.basename(abs)})`, canvasSize: modelConfig.imageSize, turnDefaults };
    log.info({ dataset, checkpoint: abs, turnDefaults, recommended: modelConfig.sampling ?? null }, 'serving model');
  }
  return { models, folders };
}

/** The engine settings every served model gets, from the configuration. */
export function engineSettings(config: Config): SharedEngineSettings {
  return { ...ENGINE_DEFAULTS, previewEvery: config.previewEvery, maxBatchSize: config.maxBatchSize, batching: config.batching };
}

export async function startApp(o: AppOptions): Promise<RunningServer> {
  if (isScaleOut(o.config)) return startApiServer(o.config);
  const { config } = o;
  const { models, folders } = await sessionModels(config);
  const settings = engineSettings(config);
  return startServer({
    config,
    models,
    background: datasetBackground,
    encodePng,
    createEngine: async (hooks, onBatch): Promise<ThreadedEngine> => {
      const engine = createThreadedEngine({
        models: folders,
        hooks,
        settings,
        backend: config.backend,
        onBatch: (info) => {
          onBatch(info);
          o.onBatch?.(info);
        },
      });
      try {
        await engine.ready();
      } catch (err) {
        await engine.drain();
        throw err;
      }
      return engine;
    },
  });
}

/**
 * Scale-out mode's API server: no engine of its own; turns go to the BullMQ queue for the generation workers, and
 * events and frames come through Redis pub/sub. When Redis comes back after an outage, every unfinished turn in
 * PostgreSQL is handed to the queue again (the queue ignores the turns it still has).
 */
async function startApiServer(config: Config): Promise<RunningServer> {
  const { models } = await sessionModels(config);
  const pubsub = new RedisPubSub(config.redisUrl);
  try {
    await pubsub.ready();
  } catch (err) {
    pubsub.close();
    throw new Error(`cannot reach Redis at ${config.redisUrl}: ${(err as Error).message}`);
  }
  let resumeAgain: (() => void) | null = null;
  const server = await startServer({
    config,
    models,
    background: datasetBackground,
    encodePng,
    pubsub,
    shared: true,
    createEngine: () =>
      new QueueEngine({
        redisUrl: config.redisUrl,
        batching: config.batching,
        maxBatchSize: config.maxBatchSize,
        onReconnect: () => resumeAgain?.(),
      }),
  });
  resumeAgain = () => {
    server.service.resume({ shared: true }).catch((err: unknown) => log.error({ err }, 'could not queue the unfinished turns again'));
  };
  return server;
}
