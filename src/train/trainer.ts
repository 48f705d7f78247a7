/**
 * A training run: the three-stage training of CDD-ICM (Sec. 2.6), and the dispatch to the autoencoder stage
 * (autoencoderStage.ts) and guidance and progressive distillation (distillationStage.ts).
 * Output folder layout:
 *   args.json       the options of the first run (a resume keeps them, except budgets)
 *   metrics.jsonl   one JSON object per training step ({kind: 'train'}) and per validation ({kind: 'val'})
 *   last/           resumable checkpoint: model files + optimizer.safetensors + trainer.json
 *   best/           the kept (best-validation) model of the current stage, with its optimizer state
 *                   (with --ema-decay the model files of last/ and best/ hold the weight average, the model that
 *                   is validated and shipped, and raw.safetensors the optimised weights a resume continues from)
 *   stage-<k>/      the model at the end of stage k;  model/  the final model (the last stage's result)
 *   autoencoder/    (stage 'ae') the trained autoencoder: config.json + model.safetensors
 *   (stage 'guidance': last/, best/ and model/ hold the student; the teacher is the run's --init)
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { partLogger } from '../log/index.js';
import { AutoencoderCodec, CddIcm, loadCheckpoint, saveCheckpoint } from '../model/index.js';
import type { NamedArray } from './adamw.js';
import { trainAutoencoder } from './autoencoderStage.js';
import { WeightAverage } from './average.js';
import { assignNamed, readRawWeights, writeFolderAtomically, writeRawWeights, writeTrainerState } from './checkpointIo.js';
import { ImageSampler, mixSeed, validationBatches } from './data.js';
import { trainDistillation } from './distillationStage.js';
import { initialLoopState, type Budget, type LoopState } from './loop.js';
import { buildModel, modelStageTask, stageOptimizer } from './modelStages.js';
import type { TrainControl, TrainOptions, TrainResult } from './options.js';
import { keptBest, resumeFromLast, runResumableStage, stageNames } from './resumableStage.js';
import { installStop, loadData, writeArgs } from './runSupport.js';
import { checkSelfReferences, readSelfReferences, type SelfReferences } from './selfReferences.js';

const log = partLogger('train');

/** trainer.json of a CDD-ICM run. */
interface ModelTrainerState {
  kind: 'cdd-icm';
  version: 1;
  plan: (1 | 2 | 3)[];
  stageIndex: number;
  loop: LoopState;
  budgets: Budget[];
}

function stageBudgets(o: TrainOptions, plan: (1 | 2 | 3)[]): Budget[] {
  return plan.map((s) => {
    const total = plan.reduce((a, p) => a + o.split[p - 1]!, 0);
    const f = plan.length === 1 || total === 0 ? 1 / plan.length : o.split[s - 1]! / total;
    const b: Budget = {};
    if (o.steps !== undefined) b.steps = Math.max(1, Math.round(o.steps * f));
    if (o.minutes !== undefined) b.minutes = o.minutes * f;
    return b;
  });
}

/** Current values of named variables as float32 arrays (for raw.safetensors). */
function namedArrays(vars: Map<string, tf.Variable>): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [k, v] of vars) out.set(k, { shape: v.shape, data: v.dataSync() as Float32Array });
  return out;
}

/** Train CDD-ICM: stage 1, 2, 3 or all three in order, resumable from `out/last`. */
export async function trainModel(o: TrainOptions, control: TrainControl = {}): Promise<TrainResult> {
  await writeArgs(o);
  const { train, val } = await loadData(o);
  const valBatches = validationBatches(val, o.batch, o.valBatches, mixSeed(o.seed, 5));
  const plan: (1 | 2 | 3)[] = o.stage === 'all' ? [1, 2, 3] : Array.isArray(o.stage) ? o.stage : [o.stage as 1 | 2 | 3];

  let model: CddIcm;
  let st: ModelTrainerState;
  let resumeMoments: Map<string, NamedArray> | null = null;
  let resumeRaw: Map<string, NamedArray> | null = null;
  const resumed = await resumeFromLast<CddIcm, ModelTrainerState>(o, 'cdd-icm', 'a CDD-ICM', (dir) => loadCheckpoint(dir));
  if (resumed) {
    model = resumed.model;
    st = resumed.state;
    // New budgets given on the command line replace the stored ones for the stages still to run.
    if (o.steps !== undefined || o.minutes !== undefined) {
      const nb = stageBudgets(o, st.plan);
      st.budgets = st.budgets.map((b, i) => (i >= st.stageIndex ? nb[i]! : b));
    }
    resumeMoments = resumed.moments;
    resumeRaw = await readRawWeights(resumed.dir);
    log.info({ from: resumed.dir, stage: st.plan[st.stageIndex], step: st.loop.step, cursor: st.loop.cursor }, 'resuming');
  } else {
    if (o.resume) log.warn({ out: o.out }, 'nothing to resume: starting fresh');
    model = await buildModel(o, train);
    st = { kind: 'cdd-icm', version: 1, plan, stageIndex: 0, loop: initialLoopState(o.lr, 0), budgets: stageBudgets(o, plan) };
  }
  let own: SelfReferences | undefined;
  if (o.selfReferences) {
    own = await readSelfReferences(o.selfReferences);
    checkSelfReferences(own, train, [model.latentSize, model.latentSize, model.latentChannels]);
    log.info({ file: o.selfReferences, canvases: own.turns.length, episodes: own.episodesDone, rate: o.selfReferenceRate, target: o.selfReferenceTarget }, 'own canvases mixed into the batches');
  }
  const eta = o.eta ?? 1;
  // The autoencoder is frozen: remember each canvas's latent instead of re-encoding it every epoch.
  if (model.codec instanceof AutoencoderCodec) {
    model.codec.enableCache(Math.max(train.numImages, val.numImages) * 2);
    // An autoencoder calibrated before latent ranges existed: measure its range (the scale stays) so that the
    // saved model samples with it.
    const ae = model.codec.autoencoder;
    if (ae.config.latentRange === undefined) {
      const n = Math.min(64, train.numImages);
      const x = tf.tensor4d(new ImageSampler(train, mixSeed(o.seed, 41)).batch(0, n), [n, train.size, train.size, 3]);
      log.info({ latentRange: ae.measureRange(x) }, 'codec latent range measured');
      x.dispose();
    }
  }
  const stop = installStop(control);
  const result: TrainResult = { out: o.out, interrupted: false, finished: [], steps: [], bestVal: [] };
  try {
    while (st.stageIndex < st.plan.length) {
      const stage = st.plan[st.stageIndex]!;
      const optimizer = stageOptimizer(model, stage, o, eta);
      log.info({ stage, groups: optimizer.describe(), budget: st.budgets[st.stageIndex], eta }, 'stage start');
      const task = modelStageTask(model, stage, optimizer, train, valBatches, o, own);
      if (resumeMoments) {
        optimizer.loadStateArrays(resumeMoments, st.loop.adamStep);
        resumeMoments = null;
      }
      // Checkpoint names of the variables this stage trains (raw.safetensors is keyed by them).
      const trained = new Set(optimizer.trainableVariables());
      const stageParams = new Map([...model.namedParameters()].filter(([, v]) => trained.has(v)));
      let average: WeightAverage | undefined;
      if (o.emaDecay > 0) {
        // A resumed checkpoint's model files are the average; its raw.safetensors the weights to optimise on.
        average = new WeightAverage(stageNames(optimizer), o.emaDecay, st.loop.averageUpdates ?? 0);
        if (resumeRaw) assignNamed(stageParams, resumeRaw);
      }
      if (resumeRaw && !average) log.warn({ from: resumed?.dir }, 'the checkpoint was saved with --ema-decay: without it the run continues from the average, not the optimised weights');
      resumeRaw = null;
      // The kept model of a resumed stage is read back from best/ (same stage only).
      const best = await keptBest<ModelTrainerState>(o, st.loop, async (dir, b) => {
        if (b.plan[b.stageIndex] !== stage || b.stageIndex !== st.stageIndex) return null;
        const bm = await loadCheckpoint(dir, { codec: model.codec });
        const byName = bm.namedParameters();
        const raw = average ? await readRawWeights(dir) : null;
        const weights = new Map<string, tf.Tensor>();
        const averaged = new Map<string, tf.Tensor>();
        for (const [n, v] of stageParams) {
          const r = raw?.get(n);
          weights.set(v.name, r ? tf.tensor(r.data, r.shape) : tf.clone(byName.get(n)!));
          if (average) averaged.set(v.name, tf.clone(byName.get(n)!));
        }
        bm.dispose();
        return { weights, ...(average ? { average: { weights: averaged, updates: b.loop.averageUpdates ?? 0 } } : {}) };
      });
      const saveModel = async (tmp: string): Promise<void> => {
        if (average) {
          await writeRawWeights(tmp, namedArrays(stageParams));
          await average.withAverage(() => saveCheckpoint(model, tmp));
        } else {
          await saveCheckpoint(model, tmp);
        }
      };
      const r = await runResumableStage(task, st, best, st.budgets[st.stageIndex]!, o, { saveModel, shouldStop: stop.shouldStop, ...(average ? { average } : {}) });
      average?.dispose();
      st.loop = r.state;
      if (r.interrupted) {
        result.interrupted = true;
        optimizer.dispose();
        break;
      }
      result.finished.push(r.state.finished);
      result.steps.push(r.state.step);
      result.bestVal.push(r.state.validation.best);
      log.info({ stage, steps: r.state.step, finished: r.state.finished, best: r.state.validation.best }, 'stage done');
      await writeFolderAtomically(join(o.out, `stage-${stage}`), (tmp) => saveCheckpoint(model, tmp));
      // Next stage: a fresh optimizer and validation record; the data position carries on.
      st = { ...st, stageIndex: st.stageIndex + 1, loop: initialLoopState(o.lr, r.state.cursor) };
      await writeFolderAtomically(join(o.out, 'last'), async (tmp) => {
        await saveCheckpoint(model, tmp);
        await writeTrainerState(tmp, new Map(), st);
      });
      optimizer.dispose();
    }
    if (!result.interrupted) await writeFolderAtomically(join(o.out, 'model'), (tmp) => saveCheckpoint(model, tmp));
  } finally {
    stop.remove();
    model.dispose();
  }
  return result;
}

/** Entry point used by the CLI. */
export function train(o: TrainOptions, control: TrainControl = {}): Promise<TrainResult> {
  if (o.stage === 'ae') return trainAutoencoder(o, control);
  if (o.stage === 'guidance' || o.stage === 'progressive') return trainDistillation(o, control);
  return trainModel(o, control);
}
