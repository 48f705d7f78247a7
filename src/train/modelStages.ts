/** The CDD-ICM stages 1-3 (Sec. 2.6): the model a run starts from, each stage's optimizer and its loop task. */
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32, recoloredTurnText, relationHardNegatives } from '../data/index.js';
import { partLogger } from '../log/index.js';
import {
  AutoencoderCodec,
  CddIcm,
  WordTokenizer,
  createModel,
  loadAutoencoder,
  loadCheckpoint,
  modelConfig,
  type ImageCodec,
  type ModelConfig,
  type ParameterGroupName,
  type TurnBatch,
} from '../model/index.js';
import { AdamW, type ParamGroup } from './adamw.js';
import { TurnSampler, BatchStream, batchTensors, disposeBatch, mixSeed, type HostBatch, type TurnDataset } from './data.js';
import { learnTrainingTokenizer, rewordBatch, toBpeModel } from './language.js';
import type { StageTask } from './loop.js';
import type { TrainOptions } from './options.js';
import { trainedSnapshots } from './resumableStage.js';
import type { SelfReferences } from './selfReferences.js';

const log = partLogger('train');

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
    ...trainedSnapshots(optimizer),
  };
}

/** A fresh model (preset, tokenizer from the training texts, codec) or --init's, converted to a BPE if asked. */
export async function buildModel(o: TrainOptions, train: TurnDataset): Promise<CddIcm> {
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
