/** What every training run does around its stages: args.json, the datasets, Ctrl-C, a one-stage budget. */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { partLogger } from '../log/index.js';
import { buildTurnDataset, loadEpisodeSource, type TurnDataset } from './data.js';
import type { Budget } from './loop.js';
import type { TrainControl, TrainOptions } from './options.js';

const log = partLogger('train');

/**
 * Ctrl-C: the first press asks the loop to checkpoint and stop; a second one exits at once. `shouldStop` also
 * answers the run's programmatic control.
 */
export function installStop(control: TrainControl): { shouldStop: () => boolean; remove: () => void } {
  let stop = false;
  const onSig = (): void => {
    if (stop) process.exit(130);
    stop = true;
    process.stderr.write('\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return {
    shouldStop: () => stop || (control.shouldStop?.() ?? false),
    remove: () => {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    },
  };
}

/** The training and validation sets, rendered (with a progress line on stderr). */
export async function loadData(o: TrainOptions): Promise<{ train: TurnDataset; val: TurnDataset }> {
  const render = async (split: 'train' | 'val', count: number | undefined, file: string | undefined): Promise<TurnDataset> => {
    const t0 = Date.now();
    const eps = await loadEpisodeSource({ dataset: o.dataset, split, seed: o.seed, ...(count !== undefined ? { count } : {}), ...(file ? { file } : {}), ...(o.codrawDir ? { codrawDir: o.codrawDir } : {}) });
    const ds = buildTurnDataset(o.dataset, eps, o.imageSize, (d, n) => {
      if (o.progress) process.stderr.write(`\rrendering ${split}: ${d}/${n} episodes`);
    });
    if (o.progress) process.stderr.write('\n');
    log.info({ split, episodes: ds.episodes, turns: ds.texts.length, images: ds.numImages, ms: Date.now() - t0 }, 'dataset rendered');
    return ds;
  };
  const train = await render('train', o.trainEpisodes, o.trainFile);
  const val = await render('val', o.valEpisodes ?? Math.max(32, Math.ceil((o.valBatches * o.batch) / 5)), o.valFile);
  return { train, val };
}

/** args.json: the options of the run's first start (a resume leaves it). */
export async function writeArgs(o: TrainOptions): Promise<void> {
  await fs.mkdir(o.out, { recursive: true });
  const file = join(o.out, 'args.json');
  if (!existsSync(file)) await fs.writeFile(file, JSON.stringify(o, null, 2) + '\n');
}

/** The whole --steps / --minutes budget, for a run of one stage. */
export function wholeBudget(o: Pick<TrainOptions, 'steps' | 'minutes'>): Budget {
  return { ...(o.steps !== undefined ? { steps: o.steps } : {}), ...(o.minutes !== undefined ? { minutes: o.minutes } : {}) };
}
