/**
 * The whole application wired together: the model (loaded from a checkpoint folder, or given), the generation
 * engine around the sessions service's hooks, and the server. main.ts, the tests and the benchmark all start it so.
 */
import path from 'node:path';
import { resolveTurnDefaults, type Config } from '../config/index.js';
import { codrawBackground, encodePng, iclevrBackground, type RgbImage } from '../data/index.js';
import { createEngine, type BatchInfo } from '../engine/index.js';
import { loadCheckpoint, type CddIcm } from '../model/index.js';
import { partLogger } from '../log/index.js';
import { startServer, type RunningServer } from './index.js';

const log = partLogger('server');

export interface AppOptions {
  config: Config;
  /** An already loaded model (tests); otherwise `config.modelPath` is loaded. */
  model?: CddIcm;
  /** Observe every engine step (benchmark). */
  onBatch?(info: BatchInfo): void;
}

export function datasetBackground(dataset: string, size: number): RgbImage {
  return dataset === 'codraw' ? codrawBackground(size) : iclevrBackground(size);
}

export async function startApp(o: AppOptions): Promise<RunningServer & { model: CddIcm }> {
  const { config } = o;
  let model = o.model;
  if (!model) {
    const dir = path.resolve(config.modelPath);
    log.info({ checkpoint: dir }, 'loading model');
    try {
      model = await loadCheckpoint(dir);
    } catch (err) {
      throw new Error(`cannot load the model checkpoint ${dir} (set MODEL_PATH or --model): ${(err as Error).message}`);
    }
  }
  const loaded = model;
  // The checkpoint's measured sampling settings apply unless the configuration sets its own.
  const turnDefaults = resolveTurnDefaults(config, loaded.config.sampling);
  log.info({ turnDefaults, recommended: loaded.config.sampling ?? null }, 'turn defaults');
  const server = await startServer({
    config,
    modelName: `${loaded.config.name} (${path.basename(config.modelPath)})`,
    canvasSize: loaded.config.imageSize,
    turnDefaults,
    background: datasetBackground,
    encodePng,
    createEngine: (hooks) =>
      createEngine({
        model: loaded,
        hooks,
        previewEvery: config.previewEvery,
        maxBatchSize: config.maxBatchSize,
        batching: config.batching,
        ...(o.onBatch ? { onBatch: o.onBatch } : {}),
      }),
  });
  return { ...server, model: loaded };
}
