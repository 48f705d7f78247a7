/** Stage 'ae': the autoencoder that gives latent models their latent space, trained and calibrated. */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { partLogger } from '../log/index.js';
import {
  CHECKPOINT_FORMAT,
  autoencoderWeights,
  createAutoencoder,
  loadAutoencoder,
  loadCheckpointAutoencoder,
  saveAutoencoder,
  type Autoencoder,
} from '../model/index.js';
import { AdamW } from './adamw.js';
import { writeFolderAtomically } from './checkpointIo.js';
import { ImageSampler, mixSeed, type TurnDataset } from './data.js';
import { initialLoopState, type Budget, type LoopState, type StageTask } from './loop.js';
import type { TrainControl, TrainOptions, TrainResult } from './options.js';
import { keptBest, oneStageResult, resumeFromLast, runResumableStage, trainedSnapshots } from './resumableStage.js';
import { installStop, loadData, wholeBudget, writeArgs } from './runSupport.js';

const log = partLogger('train');

/** trainer.json of an autoencoder run. */
interface AeTrainerState {
  kind: 'autoencoder';
  version: 1;
  loop: LoopState;
  budget: Budget;
}

/** The autoencoder as a loop task: reconstruct distinct canvases of the training set. */
export function autoencoderTask(ae: Autoencoder, optimizer: AdamW, train: TurnDataset, val: TurnDataset, o: Pick<TrainOptions, 'batch' | 'seed' | 'valBatches'>): StageTask {
  const sampler = new ImageSampler(train, mixSeed(o.seed, 23));
  const valSampler = new ImageSampler(val, mixSeed(o.seed, 29));
  const s = train.size;
  const valImages = Array.from({ length: o.valBatches }, (_, i) => valSampler.batch(i * o.batch, o.batch));
  return {
    name: 'autoencoder',
    optimizer,
    batchSize: o.batch,
    loss(cursor, step) {
      const x = tf.tensor4d(sampler.batch(cursor, o.batch), [o.batch, s, s, 3]);
      const l = ae.losses(x, mixSeed(o.seed, 31, step));
      x.dispose();
      return { total: l.total, parts: { l1: l.l1, mse: l.mse, kl: l.kl } };
    },
    validate() {
      let sum = 0;
      valImages.forEach((img, i) => {
        sum += tf.tidy(() => ae.losses(tf.tensor4d(img, [o.batch, s, s, 3]), mixSeed(o.seed, 37, i)).total.dataSync()[0]!);
      });
      return sum / valImages.length;
    },
    ...trainedSnapshots(optimizer),
  };
}

/** An autoencoder folder's autoencoder, or a latent model checkpoint's embedded one. */
async function loadAutoencoderFrom(dir: string): Promise<Autoencoder> {
  const format = (JSON.parse(await fs.readFile(join(dir, 'config.json'), 'utf8')) as { format?: string }).format;
  return format === CHECKPOINT_FORMAT ? loadCheckpointAutoencoder(dir) : loadAutoencoder(dir);
}

/** Train the autoencoder (stage 'ae'), then measure its latent scale and save it to out/autoencoder. */
export async function trainAutoencoder(o: TrainOptions, control: TrainControl = {}): Promise<TrainResult> {
  await writeArgs(o);
  const { train, val } = await loadData(o);
  const resumed = await resumeFromLast<Autoencoder, AeTrainerState>(o, 'autoencoder', 'an autoencoder', loadAutoencoder);
  const ae = resumed?.model ?? (o.init ? await loadAutoencoderFrom(o.init) : createAutoencoder(o.config));
  const st: AeTrainerState = resumed?.state ?? { kind: 'autoencoder', version: 1, loop: initialLoopState(o.lr, 0), budget: {} };
  // A budget on the command line replaces a resumed run's.
  if (o.steps !== undefined || o.minutes !== undefined) st.budget = wholeBudget(o);
  const nameOf = o.decoderOnly ? ae.decoderParameters() : ae.namedParameters();
  const optimizer = new AdamW([{ name: 'autoencoder', params: nameOf, lrScale: 1 }], { lr: o.lr, weightDecay: o.weightDecay, clipNorm: o.clipNorm });
  if (resumed) optimizer.loadStateArrays(resumed.moments, st.loop.adamStep);
  const task = autoencoderTask(ae, optimizer, train, val, o);
  const best = await keptBest<AeTrainerState>(o, st.loop, async (dir) => {
    const bae = await loadAutoencoder(dir);
    const w = autoencoderWeights(bae);
    const weights = new Map<string, tf.Tensor>();
    for (const [n, v] of nameOf) weights.set(v.name, tf.tensor(w.get(n)!.data, v.shape));
    bae.dispose();
    return { weights };
  });
  const stop = installStop(control);
  try {
    const r = await runResumableStage(task, st, best, st.budget, o, { saveModel: (tmp) => saveAutoencoder(ae, tmp), shouldStop: stop.shouldStop });
    if (!r.interrupted) {
      // Unit-variance latents for the diffusion: measured on training canvases (LDM's scale factor). A decoder
      // fine-tune keeps the latent space it was given, scale and range included.
      if (!o.decoderOnly) {
        const n = Math.min(64, train.numImages);
        const x = tf.tensor4d(new ImageSampler(train, mixSeed(o.seed, 41)).batch(0, n), [n, train.size, train.size, 3]);
        ae.calibrateScale(x);
        x.dispose();
      }
      await writeFolderAtomically(join(o.out, 'autoencoder'), (tmp) => saveAutoencoder(ae, tmp));
      log.info({ latentScale: ae.config.latentScale, latentRange: ae.config.latentRange, best: r.state.validation.best }, 'autoencoder saved');
    }
    return oneStageResult(o.out, r);
  } finally {
    stop.remove();
    optimizer.dispose();
    ae.dispose();
  }
}
