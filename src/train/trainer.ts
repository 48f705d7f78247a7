/**
 * The three-stage training of CDD-ICM (Sec. 2.6), the autoencoder that gives it a latent space, and guidance
 * distillation of a trained model into a one-pass student (stage 'guidance').
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
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32, recoloredTurnText, relationHardNegatives } from '../data/index.js';
import { partLogger } from '../log/index.js';
import {
  AutoencoderCodec,
  CddIcm,
  PAPER_DEFAULTS,
  WordTokenizer,
  createAutoencoder,
  createModel,
  loadAutoencoder,
  loadCheckpoint,
  loadCheckpointAutoencoder,
  CHECKPOINT_FORMAT,
  modelConfig,
  saveAutoencoder,
  saveCheckpoint,
  autoencoderWeights,
  createGuidanceStudent,
  guidanceDistillationLoss,
  type Autoencoder,
  type ImageCodec,
  type ModelConfig,
  type ParameterGroupName,
  type TurnBatch,
} from '../model/index.js';
import { AdamW, type NamedArray, type ParamGroup } from './adamw.js';
import { WeightAverage } from './average.js';
import { assignNamed, readRawWeights, readTrainerState, resolveFolder, writeFolderAtomically, writeRawWeights, writeTrainerState } from './checkpointIo.js';
import {
  ImageSampler,
  TurnSampler,
  BatchStream,
  batchTensors,
  buildTurnDataset,
  disposeBatch,
  loadEpisodeSource,
  mixSeed,
  validationBatches,
  type DatasetName,
  type HostBatch,
  type OwnTarget,
  type TurnDataset,
} from './data.js';
import { learnTrainingTokenizer, rewordBatch, toBpeModel } from './language.js';
import { checkSelfReferences, readSelfReferences, type SelfReferences } from './selfReferences.js';
import { disposeSnapshot, initialLoopState, runStage, type BestSnapshot, type Budget, type LoopState, type StageTask } from './loop.js';

const log = partLogger('train');

/**
 * One stage, a list run in order (e.g. [2, 3] after a separate stage-1 run), 'all' = [1, 2, 3], the autoencoder,
 * or guidance distillation of a trained model (--init) into a one-pass student.
 */
export type StageArg = 1 | 2 | 3 | (1 | 2 | 3)[] | 'all' | 'ae' | 'guidance';

export interface TrainOptions {
  dataset: DatasetName;
  /** Model preset (CDD-ICM) or autoencoder preset (stage 'ae'). */
  config: string;
  stage: StageArg;
  out: string;
  /** Budget: total steps / minutes; with stage 'all' split over the stages by `split`. */
  steps?: number;
  minutes?: number;
  /** Fractions of the budget for stages 1, 2, 3 when stage is 'all'. */
  split: [number, number, number];
  batch: number;
  lr: number;
  weightDecay: number;
  /** Backbone activity ratio; undefined: 1 for encoders trained from scratch. */
  eta?: number;
  gamma: number;
  delta: number;
  /** P2 weighting of L_mse (0: the paper's uniform weighting). */
  p2Gamma: number;
  /** i-CLEVR: each relation turn's mirrored instruction is an extra negative of L_icm / L_n-icm (not the paper's). */
  icmHardNegatives: boolean;
  /** With icmHardNegatives: a diagonal relation's one-axis mirrors are negatives too (relationHardNegatives). */
  icmHardNegativeAxes: boolean;
  /** i-CLEVR: every turn's instruction with its new object in another colour is an extra negative (recoloredTurnText). */
  icmHardNegativeColors: boolean;
  conditionDropout: number;
  /** i-CLEVR: share of training (and validation) instructions reworded by the training grammar (iclevrPhrasing.ts). */
  rewordRate: number;
  /** 'bpe': a byte-level BPE learnt from the training texts (with --init: the word-level model converted to it). */
  tokenizer?: 'word' | 'bpe';
  clipNorm: number;
  valEvery: number;
  /** Validations in a row that may fail to improve before restore-and-halve (1: the paper's rule). */
  valPatience: number;
  /** Decay of the moving average of the weights that is validated and saved (0: none, the raw weights). */
  emaDecay: number;
  valBatches: number;
  checkpointMinutes: number;
  trainEpisodes?: number;
  valEpisodes?: number;
  /** Episodes files instead of generating / loading the dataset. */
  trainFile?: string;
  valFile?: string;
  codrawDir?: string;
  /** Autoencoder folder (latent model presets). */
  autoencoder?: string;
  /**
   * Start stage 'all' / 2 / 3 from this model checkpoint instead of a fresh model; stage 'ae': from this
   * autoencoder folder, or a latent model checkpoint's embedded autoencoder.
   */
  init?: string;
  /**
   * Stage 'ae' from --init: train the decoder only. The encoder, latent scale and range stay, so every model
   * trained in this latent space keeps working with the result (swap it in with --export ... --autoencoder).
   */
  decoderOnly?: boolean;
  /** Stage 'guidance': phi of each training item is drawn from [min, max] (the student is exact only there). */
  guidanceRange: [number, number];
  /** Scheduled sampling: a rollout file of the model's own canvases on these training episodes (--rollouts). */
  selfReferences?: string;
  /** Share of batch slots that start from an own canvas instead of the rendered reference. */
  selfReferenceRate: number;
  /** What those slots are trained to produce (see OwnTarget). */
  selfReferenceTarget: OwnTarget;
  imageSize: number;
  /** Text context length of a fresh model (default: the preset's). */
  contextLength?: number;
  seed: number;
  resume: boolean;
  progress: boolean;
}

export const DEFAULT_OPTIONS: Omit<TrainOptions, 'dataset' | 'config' | 'stage' | 'out'> = {
  split: [0.1, 0.8, 0.1],
  batch: 16,
  lr: 1e-4,
  weightDecay: 0.01,
  gamma: PAPER_DEFAULTS.gamma,
  delta: PAPER_DEFAULTS.delta,
  p2Gamma: 0,
  icmHardNegatives: false,
  icmHardNegativeAxes: false,
  icmHardNegativeColors: false,
  conditionDropout: PAPER_DEFAULTS.conditionDropout,
  rewordRate: 0,
  clipNorm: 1,
  valEvery: 500,
  valPatience: 1,
  emaDecay: 0,
  selfReferenceRate: 0.25,
  guidanceRange: [1, 8],
  selfReferenceTarget: 'composite',
  valBatches: 8,
  checkpointMinutes: 5,
  imageSize: 64,
  seed: 0,
  resume: false,
  progress: true,
};

/** trainer.json of a CDD-ICM run. */
interface ModelTrainerState {
  kind: 'cdd-icm';
  version: 1;
  plan: (1 | 2 | 3)[];
  stageIndex: number;
  loop: LoopState;
  budgets: Budget[];
}

/** trainer.json of a guidance-distillation run (the teacher is the run's --init). */
interface GuidanceTrainerState {
  kind: 'guidance-distillation';
  version: 1;
  loop: LoopState;
  budget: Budget;
}

/** trainer.json of an autoencoder run. */
interface AeTrainerState {
  kind: 'autoencoder';
  version: 1;
  loop: LoopState;
  budget: Budget;
}

export interface TrainResult {
  out: string;
  interrupted: boolean;
  finished: (string | null)[];
  steps: number[];
  bestVal: (number | null)[];
}

/** Ctrl-C: the first press asks the loop to checkpoint and stop; a second one exits at once. */
function installStop(): { shouldStop: () => boolean; remove: () => void } {
  let stop = false;
  const onSig = (): void => {
    if (stop) process.exit(130);
    stop = true;
    process.stderr.write('\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return {
    shouldStop: () => stop,
    remove: () => {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    },
  };
}

async function loadData(o: TrainOptions): Promise<{ train: TurnDataset; val: TurnDataset }> {
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

/** AdamW over the groups a stage trains: heads at lr, pretrained backbones at lr * eta. */
export function stageOptimizer(model: CddIcm, stage: 1 | 2 | 3, o: Pick<TrainOptions, 'lr' | 'weightDecay' | 'clipNorm'>, eta: number): AdamW {
  const nameOf = new Map<tf.Variable, string>();
  for (const [n, v] of model.namedParameters()) nameOf.set(v, n);
  const groups = model.parameterGroups();
  const pg: ParamGroup[] = [];
  for (const g of model.stageGroups(stage) as ParameterGroupName[]) {
    const backbone = new Set(groups[g].backbone);
    const named = (vs: tf.Variable[]): Map<string, tf.Variable> => new Map(vs.map((v) => [nameOf.get(v) ?? v.name, v]));
    const heads = groups[g].vars.filter((v) => !backbone.has(v));
    if (heads.length) pg.push({ name: g, params: named(heads), lrScale: 1 });
    if (backbone.size) pg.push({ name: `${g}.backbone`, params: named([...backbone]), lrScale: eta });
  }
  return new AdamW(pg, { lr: o.lr, weightDecay: o.weightDecay, clipNorm: o.clipNorm });
}

/** Names of the variables a stage may change (for snapshots). */
function stageNames(opt: AdamW): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const v of opt.trainableVariables()) out.set(v.name, v);
  return out;
}

/** Current values of named variables as float32 arrays (for raw.safetensors). */
function namedArrays(vars: Map<string, tf.Variable>): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [k, v] of vars) out.set(k, { shape: v.shape, data: v.dataSync() as Float32Array });
  return out;
}

function snapshotOf(vars: Map<string, tf.Variable>): Map<string, tf.Tensor> {
  const m = new Map<string, tf.Tensor>();
  for (const [k, v] of vars) m.set(k, tf.clone(v));
  return m;
}

function restoreInto(vars: Map<string, tf.Variable>, s: Map<string, tf.Tensor>): void {
  for (const [k, v] of vars) {
    const t = s.get(k);
    if (t) v.assign(t);
  }
}

/** One CDD-ICM stage as a loop task. */
export function modelStageTask(
  model: CddIcm,
  stage: 1 | 2 | 3,
  optimizer: AdamW,
  train: TurnDataset,
  valBatches: HostBatch[],
  o: Pick<TrainOptions, 'batch' | 'seed' | 'gamma' | 'delta' | 'p2Gamma' | 'conditionDropout' | 'icmHardNegatives' | 'icmHardNegativeAxes' | 'icmHardNegativeColors' | 'selfReferenceRate' | 'selfReferenceTarget'> &
    Partial<Pick<TrainOptions, 'rewordRate'>>,
  own?: SelfReferences,
): StageTask & { stream: BatchStream } {
  const sampler = new TurnSampler(train.texts.length, mixSeed(o.seed, 17));
  // Validation stays on rendered references, so its losses compare across runs with and without own canvases.
  const stream = new BatchStream(train, sampler, o.batch, 0, own ? { refs: own, rate: o.selfReferenceRate, seed: o.seed, target: o.selfReferenceTarget } : undefined);
  const vars = stageNames(optimizer);
  const hardNegatives = (t: string): string[] => {
    const recolored = o.icmHardNegativeColors ? recoloredTurnText(t) : null;
    return [...(o.icmHardNegatives ? relationHardNegatives(t, o.icmHardNegativeAxes) : []), ...(recolored ? [recolored] : [])];
  };
  // Hard negatives come from the canonical texts, then positives and negatives are reworded alike.
  const withLanguage = <B extends TurnBatch>(b: B, ...key: number[]): B => {
    const negatives = o.icmHardNegatives || o.icmHardNegativeColors ? b.texts.map(hardNegatives) : undefined;
    const r = rewordBatch(b.texts, negatives, o.rewordRate ?? 0, o.seed, ...key);
    return { ...b, texts: r.texts, ...(r.negatives ? { hardNegativeTexts: r.negatives } : {}) };
  };
  const lossOpts = { stage, gamma: o.gamma, delta: o.delta, p2Gamma: o.p2Gamma, conditionDropout: o.conditionDropout };
  return {
    name: `stage ${stage}`,
    optimizer,
    batchSize: o.batch,
    stream,
    loss(cursor, step) {
      stream.cursor = cursor;
      const b = withLanguage(batchTensors(stream.next()), stage, step);
      // Timesteps, noise and condition dropout come from a per-step seed: a resumed run draws the same ones.
      const l = model.losses(b, { ...lossOpts, rng: mulberry32(mixSeed(o.seed, stage, step)) });
      disposeBatch(b);
      const parts: Record<string, tf.Scalar> = {};
      for (const k of ['mse', 'vlb', 'cdd', 'icm', 'nicm'] as const) if (l[k]) parts[k] = l[k]!;
      return { total: l.total, parts };
    },
    validate() {
      let sum = 0;
      valBatches.forEach((hb, i) => {
        sum += tf.tidy(() => {
          const b = withLanguage(batchTensors(hb), 999, stage, i);
          return model.losses(b, { ...lossOpts, rng: mulberry32(mixSeed(o.seed, 999, stage, i)) }).total.dataSync()[0]!;
        });
      });
      return sum / valBatches.length;
    },
    snapshot: () => snapshotOf(vars),
    restore: (s) => restoreInto(vars, s),
  };
}

async function writeArgs(o: TrainOptions): Promise<void> {
  await fs.mkdir(o.out, { recursive: true });
  const file = join(o.out, 'args.json');
  if (!existsSync(file)) await fs.writeFile(file, JSON.stringify(o, null, 2) + '\n');
}

async function buildModel(o: TrainOptions, train: TurnDataset): Promise<CddIcm> {
  // --autoencoder with --init swaps the codec (e.g. stage 1 ran while the autoencoder was still training).
  if (o.init) {
    const loaded = await loadCheckpoint(o.init, o.autoencoder ? { codec: new AutoencoderCodec(await loadAutoencoder(o.autoencoder)) } : {});
    if (o.tokenizer !== 'bpe' || loaded.tokenizer.kind === 'clip-bpe') return loaded;
    const { model, report } = toBpeModel(loaded, o.dataset, train.texts, o.seed);
    log.info({ vocab: report.vocabSize, copied: report.copied, fromSynonyms: report.fromSynonyms, split: report.split }, 'word-level model converted to a byte-level BPE');
    return model;
  }
  const cfg: ModelConfig = modelConfig(o.config, { imageSize: o.imageSize });
  // CoDraw's dialogue turns are much longer than i-CLEVR's instructions.
  if (o.contextLength !== undefined) cfg.text = { ...cfg.text, contextLength: o.contextLength };
  if (cfg.tokenizer !== 'word' && o.tokenizer !== 'bpe') throw new Error(`preset ${o.config} wants a ${cfg.tokenizer} tokenizer: initialise it with --init from a converted CLIP checkpoint`);
  // A tokenizer built from the training corpus (models trained from scratch): word-level, or a byte-level BPE.
  if (o.tokenizer === 'bpe') cfg.tokenizer = 'clip-bpe';
  const tokenizer =
    o.tokenizer === 'bpe'
      ? learnTrainingTokenizer(o.dataset, train.texts, cfg.text.contextLength, o.seed)
      : WordTokenizer.fromCorpus(train.texts, { contextLength: cfg.text.contextLength });
  let codec: ImageCodec | undefined;
  if (cfg.latent) {
    if (!o.autoencoder) throw new Error(`preset ${o.config} is a latent model: pass --autoencoder <folder> (train one with --stage ae)`);
    codec = new AutoencoderCodec(await loadAutoencoder(o.autoencoder));
  }
  const model = createModel(cfg, { tokenizer, ...(codec ? { codec } : {}) });
  log.info({ preset: o.config, params: model.parameterCount(), vocab: tokenizer.vocabSize, latent: cfg.latent }, 'model created');
  return model;
}

/** Programmatic control of a run (the CLI uses Ctrl-C / SIGTERM instead). */
export interface TrainControl {
  /** Polled between steps: true checkpoints and stops the run, as Ctrl-C does. */
  shouldStop?: () => boolean;
}

/** Train CDD-ICM: stage 1, 2, 3 or all three in order, resumable from `out/last`. */
export async function trainModel(o: TrainOptions, control: TrainControl = {}): Promise<TrainResult> {
  await writeArgs(o);
  const metricsFile = join(o.out, 'metrics.jsonl');
  const { train, val } = await loadData(o);
  const valBatches = validationBatches(val, o.batch, o.valBatches, mixSeed(o.seed, 5));
  const plan: (1 | 2 | 3)[] = o.stage === 'all' ? [1, 2, 3] : Array.isArray(o.stage) ? o.stage : [o.stage as 1 | 2 | 3];

  let model: CddIcm;
  let st: ModelTrainerState;
  let resumeMoments: Map<string, NamedArray> | null = null;
  let resumeRaw: Map<string, NamedArray> | null = null;
  const lastDir = resolveFolder(join(o.out, 'last'));
  if (o.resume && lastDir) {
    model = await loadCheckpoint(lastDir);
    const r = await readTrainerState<ModelTrainerState>(lastDir);
    if (r.state.kind !== 'cdd-icm') throw new Error(`${lastDir}: not a CDD-ICM training state`);
    st = r.state;
    // New budgets given on the command line replace the stored ones for the stages still to run.
    if (o.steps !== undefined || o.minutes !== undefined) {
      const nb = stageBudgets(o, st.plan);
      st.budgets = st.budgets.map((b, i) => (i >= st.stageIndex ? nb[i]! : b));
    }
    resumeMoments = r.optimizer;
    resumeRaw = await readRawWeights(lastDir);
    log.info({ from: lastDir, stage: st.plan[st.stageIndex], step: st.loop.step, cursor: st.loop.cursor }, 'resuming');
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
  const stop = installStop();
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
      if (resumeRaw && !average) log.warn({ from: lastDir }, 'the checkpoint was saved with --ema-decay: without it the run continues from the average, not the optimised weights');
      resumeRaw = null;
      // The kept model of a resumed stage is read back from best/ (same stage only).
      let best: BestSnapshot | null = null;
      const bestDir = resolveFolder(join(o.out, 'best'));
      if (o.resume && bestDir && st.loop.validation.best !== null) {
        const b = await readTrainerState<ModelTrainerState>(bestDir);
        if (b.state.plan[b.state.stageIndex] === stage && b.state.stageIndex === st.stageIndex) {
          const bm = await loadCheckpoint(bestDir, { codec: model.codec });
          const byName = bm.namedParameters();
          const raw = average ? await readRawWeights(bestDir) : null;
          const weights = new Map<string, tf.Tensor>();
          const averaged = new Map<string, tf.Tensor>();
          for (const [n, v] of stageParams) {
            const r = raw?.get(n);
            weights.set(v.name, r ? tf.tensor(r.data, r.shape) : tf.clone(byName.get(n)!));
            if (average) averaged.set(v.name, tf.clone(byName.get(n)!));
          }
          bm.dispose();
          best = {
            weights,
            moments: b.optimizer,
            adamStep: b.state.loop.adamStep,
            ...(average ? { average: { weights: averaged, updates: b.state.loop.averageUpdates ?? 0 } } : {}),
          };
        }
      }
      const saveModelFolder = (dir: string, s: LoopState): Promise<void> =>
        writeFolderAtomically(dir, async (tmp) => {
          if (average) {
            await writeRawWeights(tmp, namedArrays(stageParams));
            await average.withAverage(() => saveCheckpoint(model, tmp));
          } else {
            await saveCheckpoint(model, tmp);
          }
          await writeTrainerState(tmp, optimizer.stateArrays(), { ...st, loop: s });
        });
      const r = await runStage(task, st.loop, best, {
        saveLast: (s) => saveModelFolder(join(o.out, 'last'), s),
        saveBest: (s) => saveModelFolder(join(o.out, 'best'), s),
      }, {
        budget: st.budgets[st.stageIndex]!,
        valEvery: o.valEvery,
        valPatience: o.valPatience,
        checkpointMinutes: o.checkpointMinutes,
        metricsFile,
        progress: o.progress,
        shouldStop: () => stop.shouldStop() || (control.shouldStop?.() ?? false),
        ...(average ? { average } : {}),
      });
      disposeSnapshot(r.best);
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

/** The autoencoder as a loop task: reconstruct distinct canvases of the training set. */
export function autoencoderTask(ae: Autoencoder, optimizer: AdamW, train: TurnDataset, val: TurnDataset, o: Pick<TrainOptions, 'batch' | 'seed' | 'valBatches'>): StageTask {
  const sampler = new ImageSampler(train, mixSeed(o.seed, 23));
  const valSampler = new ImageSampler(val, mixSeed(o.seed, 29));
  const s = train.size;
  const valImages = Array.from({ length: o.valBatches }, (_, i) => valSampler.batch(i * o.batch, o.batch));
  const vars = stageNames(optimizer);
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
    snapshot: () => snapshotOf(vars),
    restore: (snap) => restoreInto(vars, snap),
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
  const metricsFile = join(o.out, 'metrics.jsonl');
  const { train, val } = await loadData(o);
  let ae: Autoencoder;
  let st: AeTrainerState;
  let moments: Map<string, NamedArray> | null = null;
  const lastDir = resolveFolder(join(o.out, 'last'));
  const budget: Budget = { ...(o.steps !== undefined ? { steps: o.steps } : {}), ...(o.minutes !== undefined ? { minutes: o.minutes } : {}) };
  if (o.resume && lastDir) {
    ae = await loadAutoencoder(lastDir);
    const r = await readTrainerState<AeTrainerState>(lastDir);
    if (r.state.kind !== 'autoencoder') throw new Error(`${lastDir}: not an autoencoder training state`);
    st = r.state;
    if (o.steps !== undefined || o.minutes !== undefined) st.budget = budget;
    moments = r.optimizer;
  } else {
    ae = o.init ? await loadAutoencoderFrom(o.init) : createAutoencoder(o.config);
    st = { kind: 'autoencoder', version: 1, loop: initialLoopState(o.lr, 0), budget };
  }
  const nameOf = o.decoderOnly ? ae.decoderParameters() : ae.namedParameters();
  const optimizer = new AdamW([{ name: 'autoencoder', params: nameOf, lrScale: 1 }], { lr: o.lr, weightDecay: o.weightDecay, clipNorm: o.clipNorm });
  if (moments) optimizer.loadStateArrays(moments, st.loop.adamStep);
  const task = autoencoderTask(ae, optimizer, train, val, o);
  let best: BestSnapshot | null = null;
  const bestDir = resolveFolder(join(o.out, 'best'));
  if (o.resume && bestDir && st.loop.validation.best !== null) {
    const b = await readTrainerState<AeTrainerState>(bestDir);
    const bae = await loadAutoencoder(bestDir);
    const w = autoencoderWeights(bae);
    const weights = new Map<string, tf.Tensor>();
    for (const [n, v] of nameOf) weights.set(v.name, tf.tensor(w.get(n)!.data, v.shape));
    bae.dispose();
    best = { weights, moments: b.optimizer, adamStep: b.state.loop.adamStep };
  }
  const saveFolder = (dir: string, s: LoopState): Promise<void> =>
    writeFolderAtomically(dir, async (tmp) => {
      await saveAutoencoder(ae, tmp);
      await writeTrainerState(tmp, optimizer.stateArrays(), { ...st, loop: s });
    });
  const stop = installStop();
  try {
    const r = await runStage(task, st.loop, best, { saveLast: (s) => saveFolder(join(o.out, 'last'), s), saveBest: (s) => saveFolder(join(o.out, 'best'), s) }, {
      budget: st.budget,
      valEvery: o.valEvery,
      valPatience: o.valPatience,
      checkpointMinutes: o.checkpointMinutes,
      metricsFile,
      progress: o.progress,
      shouldStop: () => stop.shouldStop() || (control.shouldStop?.() ?? false),
    });
    disposeSnapshot(r.best);
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
    return { out: o.out, interrupted: r.interrupted, finished: [r.state.finished], steps: [r.state.step], bestVal: [r.state.validation.best] };
  } finally {
    stop.remove();
    optimizer.dispose();
    ae.dispose();
  }
}

/** Guidance distillation as a loop task: the student's U-Net learns the teacher's guided epsilon in one pass. */
export function guidanceDistillationTask(
  student: CddIcm,
  teacher: CddIcm,
  optimizer: AdamW,
  train: TurnDataset,
  valBatches: HostBatch[],
  o: Pick<TrainOptions, 'batch' | 'seed' | 'guidanceRange'>,
): StageTask {
  const stream = new BatchStream(train, new TurnSampler(train.texts.length, mixSeed(o.seed, 19)), o.batch, 0);
  const vars = stageNames(optimizer);
  const range = { minGuidance: o.guidanceRange[0], maxGuidance: o.guidanceRange[1] };
  return {
    name: 'guidance distillation',
    optimizer,
    batchSize: o.batch,
    loss(cursor, step) {
      stream.cursor = cursor;
      const b = batchTensors(stream.next());
      // Timesteps, phi and noise from a per-step seed: a resumed run draws the same ones.
      const l = guidanceDistillationLoss(student, teacher, b, { ...range, rng: mulberry32(mixSeed(o.seed, 71, step)) });
      disposeBatch(b);
      return { total: l.total, parts: { eps: l.eps, v: l.v } };
    },
    validate() {
      let sum = 0;
      valBatches.forEach((hb, i) => {
        sum += tf.tidy(() => guidanceDistillationLoss(student, teacher, batchTensors(hb), { ...range, rng: mulberry32(mixSeed(o.seed, 997, i)) }).total.dataSync()[0]!);
      });
      return sum / valBatches.length;
    },
    snapshot: () => snapshotOf(vars),
    restore: (snap) => restoreInto(vars, snap),
  };
}

/**
 * Stage 'guidance' (Meng et al. 2023, stage 1): distil --init (the teacher, frozen) into a student that takes phi
 * as an input, training the student's U-Net only; resumable from out/last; the student is saved to out/model.
 */
export async function trainGuidanceDistillation(o: TrainOptions, control: TrainControl = {}): Promise<TrainResult> {
  if (!o.init) throw new Error('--stage guidance distils a trained model: pass it as --init <model folder>');
  const [lo, hi] = o.guidanceRange;
  if (!(lo >= 0 && hi >= lo)) throw new Error(`--guidance-range ${lo},${hi}: want 0 <= min <= max`);
  await writeArgs(o);
  const metricsFile = join(o.out, 'metrics.jsonl');
  const { train, val } = await loadData(o);
  const valBatches = validationBatches(val, o.batch, o.valBatches, mixSeed(o.seed, 5));
  const teacher = await loadCheckpoint(o.init);
  if (teacher.guidanceDistilled) throw new Error(`${o.init} is already a guidance-distilled student`);
  let student: CddIcm;
  let st: GuidanceTrainerState;
  let moments: Map<string, NamedArray> | null = null;
  const lastDir = resolveFolder(join(o.out, 'last'));
  const budget: Budget = { ...(o.steps !== undefined ? { steps: o.steps } : {}), ...(o.minutes !== undefined ? { minutes: o.minutes } : {}) };
  if (o.resume && lastDir) {
    student = await loadCheckpoint(lastDir, { codec: teacher.codec });
    const r = await readTrainerState<GuidanceTrainerState>(lastDir);
    if (r.state.kind !== 'guidance-distillation') throw new Error(`${lastDir}: not a guidance-distillation training state`);
    st = r.state;
    if (o.steps !== undefined || o.minutes !== undefined) st.budget = budget;
    moments = r.optimizer;
    log.info({ from: lastDir, step: st.loop.step }, 'resuming');
  } else {
    if (o.resume) log.warn({ out: o.out }, 'nothing to resume: starting fresh');
    student = createGuidanceStudent(teacher);
    st = { kind: 'guidance-distillation', version: 1, loop: initialLoopState(o.lr, 0), budget };
  }
  if (teacher.codec instanceof AutoencoderCodec) teacher.codec.enableCache(Math.max(train.numImages, val.numImages) * 2);
  // The U-Net group (context projection, U-Net, its guidance embedding) at lr; everything else stays the teacher's.
  const nameOf = new Map<tf.Variable, string>();
  for (const [n, v] of student.namedParameters()) nameOf.set(v, n);
  const unetVars = new Map(student.parameterGroups().unet.vars.map((v) => [nameOf.get(v)!, v]));
  const opt = new AdamW([{ name: 'unet', params: unetVars, lrScale: 1 }], { lr: o.lr, weightDecay: o.weightDecay, clipNorm: o.clipNorm });
  if (moments) opt.loadStateArrays(moments, st.loop.adamStep);
  const task = guidanceDistillationTask(student, teacher, opt, train, valBatches, o);
  let best: BestSnapshot | null = null;
  const bestDir = resolveFolder(join(o.out, 'best'));
  if (o.resume && bestDir && st.loop.validation.best !== null) {
    const b = await readTrainerState<GuidanceTrainerState>(bestDir);
    const bm = await loadCheckpoint(bestDir, { codec: teacher.codec });
    const byName = bm.namedParameters();
    const weights = new Map<string, tf.Tensor>();
    for (const [n, v] of unetVars) weights.set(v.name, tf.clone(byName.get(n)!));
    bm.dispose();
    best = { weights, moments: b.optimizer, adamStep: b.state.loop.adamStep };
  }
  const saveFolder = (dir: string, s: LoopState): Promise<void> =>
    writeFolderAtomically(dir, async (tmp) => {
      await saveCheckpoint(student, tmp);
      await writeTrainerState(tmp, opt.stateArrays(), { ...st, loop: s });
    });
  const stop = installStop();
  try {
    log.info({ teacher: o.init, guidanceRange: o.guidanceRange, budget: st.budget, params: unetVars.size }, 'guidance distillation start');
    const r = await runStage(task, st.loop, best, { saveLast: (s) => saveFolder(join(o.out, 'last'), s), saveBest: (s) => saveFolder(join(o.out, 'best'), s) }, {
      budget: st.budget,
      valEvery: o.valEvery,
      valPatience: o.valPatience,
      checkpointMinutes: o.checkpointMinutes,
      metricsFile,
      progress: o.progress,
      shouldStop: () => stop.shouldStop() || (control.shouldStop?.() ?? false),
    });
    disposeSnapshot(r.best);
    if (!r.interrupted) await writeFolderAtomically(join(o.out, 'model'), (tmp) => saveCheckpoint(student, tmp));
    return { out: o.out, interrupted: r.interrupted, finished: [r.state.finished], steps: [r.state.step], bestVal: [r.state.validation.best] };
  } finally {
    stop.remove();
    opt.dispose();
    student.dispose();
    teacher.dispose();
  }
}

/** Entry point used by the CLI. */
export function train(o: TrainOptions, control: TrainControl = {}): Promise<TrainResult> {
  if (o.stage === 'ae') return trainAutoencoder(o, control);
  if (o.stage === 'guidance') return trainGuidanceDistillation(o, control);
  return trainModel(o, control);
}
