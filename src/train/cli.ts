/**
 * `npm run train -- --dataset iclevr|codraw --config <preset> --stage 1|2|3|all|ae|guidance|progressive --out <folder>
 *   [--steps N] [--minutes M] [--batch B] [--lr X] [--resume] ...`   (run with --help for every option)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, parseBackendFlag } from '../backend/index.js';
import { AutoencoderCodec, latentSpaceMismatch, loadAutoencoder, loadCheckpoint, modelConfig, saveCheckpoint, validateModelConfig, type CddIcm, type SamplingDefaults, type SolverName } from '../model/index.js';
import { resolveTurnDefaults, type TurnSettings } from '../config/index.js';
import { assignNamed, readRawWeights } from './checkpointIo.js';
import { loadEpisodeSource } from './data.js';
import { rolloutSelfReferences } from './selfReferences.js';
import { DEFAULT_OPTIONS, type StageArg, type TrainOptions } from './options.js';
import { train } from './trainer.js';

const HELP = `usage: npm run train -- --dataset iclevr|codraw --config <preset> --stage 1|2|3|all|ae|guidance|progressive --out <folder> [options]

  --stage 1|2|3|2,3|all the stages to run in order (all = 1,2,3)
  --stage ae            train the autoencoder (--config is then an autoencoder preset: tiny, small)
  --stage guidance      guidance distillation (Meng et al. 2023) of --init: a student U-Net that takes phi as an
                        input matches the teacher's classifier-free-guided epsilon (Eq. 15) in one pass instead of
                        two; encoders stay the teacher's; the student is written to <out>/model
  --stage progressive   progressive distillation (Salimans & Ho 2022) of --init: a student (phi as an input, as
                        above) learns to take in one DDIM step on its N-step grid what the guided teacher takes in
                        K; the student records N as its default step count; ICM guidance stays a sampling-time term
  --student-steps N     (--stage progressive) the student's step count (default 5)
  --teacher-substeps K  (--stage progressive) teacher steps per student step (default 2: halve the step count)
  --guidance-range a,b  (--stage guidance|progressive) phi of each training item drawn from [a, b] (default 1,8)
  --autoencoder DIR     the autoencoder of a latent preset (e.g. runs/ae-iclevr/autoencoder)
  --init DIR            start from a model checkpoint instead of a fresh model (with --autoencoder: swap its codec);
                        with --stage ae: from an autoencoder folder or a latent model checkpoint's autoencoder
  --decoder-only        (--stage ae --init DIR) fine-tune the decoder alone: the latent space stays, so models
                        trained in it get the new decoder with --export MODEL --autoencoder <out>/autoencoder
  --steps N             step budget (with --stage all: total, split over the stages by --split)
  --minutes M           training-time budget (same splitting)
  --split a,b,c         budget weights of stages 1,2,3 when several run (default 0.1,0.8,0.1)
  --batch B             batch size (default 16)
  --lr X                learning rate (default 1e-4); --weight-decay X (default 0.01)
  --eta X               backbone activity ratio (default 1 from scratch; use 0.001 for CLIP-initialised encoders)
  --gamma X --delta X --condition-dropout X    loss weights (defaults 1.5, 0.1, 0.2)
  --icm-hard-negatives  i-CLEVR: each relation turn's mirrored instruction is an extra L_icm / L_n-icm negative
  --icm-hard-negative-axes  with it: a diagonal relation's one-axis mirrors are negatives too (left/right must matter)
  --icm-hard-negative-colors  i-CLEVR: each turn with its new object in another colour is an extra negative
  --reword-rate P       i-CLEVR: share of instructions reworded by the training grammar each step (synonyms, other
                        relation wordings and orders, typos; default 0); validation rewords the same share
  --tokenizer word|bpe  a fresh model's tokenizer (default word); with --init a word-level model is converted to a
                        byte-level BPE learnt from the training texts, keeping every weight (no word becomes [UNK])
  --p2-gamma X          P2 timestep weighting of L_mse, 1/(1 + SNR_t)^X (default 0: the paper's uniform weighting)
  --clip-norm X         global gradient-norm clipping (default 1, 0 = off)
  --val-every K         validate every K steps (default 500); --val-batches N (default 8)
  --val-patience N      validations in a row without improvement before restore-and-halve (default 1: the paper's)
  --ema-decay D         validate, keep and save a moving average of the weights (e.g. 0.999; default 0 = off)
  --checkpoint-minutes M  save out/last this often (default 5)
  --train-episodes N --val-episodes N   how many episodes (i-CLEVR: generated; CoDraw: a cap)
  --train-file F --val-file F           episodes JSON Lines instead
  --codraw-dir DIR      CoDraw dataset folder
  --image-size S        canvas pixels of --stage ae (default 64); the model stages render at the model's own size
                        (--init's, else the preset's: 64, or 128 for small-128), and refuse another
  --context-length N    text tokens of a fresh model (default: the preset's; CoDraw dialogues want ~96)
  --seed S              data / noise seed (default 0)
  --self-references F   scheduled sampling: mix the model's own canvases from a rollout file (see --rollouts) into
                        the batches; --self-reference-rate P: the share of batch slots (default 0.25);
                        --self-reference-target composite|ground-truth: what they learn to draw (default
                        composite: the own canvas plus what the turn changes; ground-truth measured harmful)
  --resume              continue from out/last (optimizer state and data position included)
  --no-progress         no progress bar
  --backend NAME        tensor backend: auto, native-cpu, cpu, tensorflow

       npm run train -- --export <checkpoint folder> --out <folder> [--dtype float16|float32]
                        [--weights average|raw] [--default-steps N] [--default-guidance PHI] [--default-icm-guidance PSI]
                        [--default-candidates N] [--default-solver ddim|dpm++2m] [--default-select-at F]
                        [--default-icm-before-selection yes|no] [--autoencoder DIR]
  copies a model checkpoint (weights, config, tokenizer, embedded autoencoder) for shipping, float16 by default;
  --weights raw exports the optimised weights (raw.safetensors) of a run trained with --ema-decay instead of
  their average (the model files, the default); --autoencoder DIR replaces the model's decoder with DIR's (a
  --decoder-only fine-tune of the model's own autoencoder: refused for any other latent space);
  --default-* record the sampling settings measured best for it (config.json "sampling"): the server and
  npm run eval use them for turns that set none, unless their own configuration sets them

       npm run train -- --rollouts <file> --init <model folder> --dataset iclevr|codraw --train-episodes N --seed S
                        --count E [--steps N] [--guidance PHI] [--icm-guidance PSI] [--batch B]
  rolls the model out over E of the run's training episodes (same --dataset, --train-episodes / --train-file and
  --seed as the training run) turn by turn as at inference (sampling settings: the model's recommended ones unless
  given) and writes its canvases for --self-references; continues an existing file made with the same settings
`;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`--${name} must be a number, got "${v}"`);
  return x;
}

export function parseTrainArgs(argv: string[]): TrainOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      dataset: { type: 'string' },
      config: { type: 'string' },
      stage: { type: 'string' },
      'guidance-range': { type: 'string' },
      'student-steps': { type: 'string' },
      'teacher-substeps': { type: 'string' },
      out: { type: 'string' },
      steps: { type: 'string' },
      minutes: { type: 'string' },
      split: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      'weight-decay': { type: 'string' },
      eta: { type: 'string' },
      gamma: { type: 'string' },
      delta: { type: 'string' },
      'p2-gamma': { type: 'string' },
      'reword-rate': { type: 'string' },
      tokenizer: { type: 'string' },
      'icm-hard-negatives': { type: 'boolean' },
      'icm-hard-negative-axes': { type: 'boolean' },
      'icm-hard-negative-colors': { type: 'boolean' },
      'condition-dropout': { type: 'string' },
      'clip-norm': { type: 'string' },
      'val-every': { type: 'string' },
      'val-batches': { type: 'string' },
      'val-patience': { type: 'string' },
      'ema-decay': { type: 'string' },
      'checkpoint-minutes': { type: 'string' },
      'train-episodes': { type: 'string' },
      'val-episodes': { type: 'string' },
      'train-file': { type: 'string' },
      'val-file': { type: 'string' },
      'codraw-dir': { type: 'string' },
      autoencoder: { type: 'string' },
      init: { type: 'string' },
      'decoder-only': { type: 'boolean' },
      'self-references': { type: 'string' },
      'self-reference-rate': { type: 'string' },
      'self-reference-target': { type: 'string' },
      'image-size': { type: 'string' },
      'context-length': { type: 'string' },
      seed: { type: 'string' },
      resume: { type: 'boolean' },
      'no-progress': { type: 'boolean' },
      backend: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const dataset = values.dataset;
  if (dataset !== 'iclevr' && dataset !== 'codraw') throw new Error('--dataset must be iclevr or codraw');
  if (!values.out) throw new Error('--out <folder> is required');
  const stageRaw = values.stage ?? 'all';
  let stage: StageArg;
  if (stageRaw === 'all' || stageRaw === 'ae' || stageRaw === 'guidance' || stageRaw === 'progressive') stage = stageRaw;
  else {
    const list = stageRaw.split(',').map(Number);
    if (list.length === 0 || list.some((x) => x !== 1 && x !== 2 && x !== 3)) throw new Error('--stage must be 1, 2, 3, a list such as 2,3, all, ae, guidance or progressive');
    stage = list.length === 1 ? (list[0] as 1 | 2 | 3) : (list as (1 | 2 | 3)[]);
  }
  const split = (values.split ?? '0.1,0.8,0.1').split(',').map(Number);
  if (split.length !== 3 || split.some((x) => !(x >= 0)) || split.every((x) => x === 0)) throw new Error('--split needs three non-negative fractions');
  const o: TrainOptions = {
    ...DEFAULT_OPTIONS,
    dataset,
    config: values.config ?? 'small',
    stage,
    out: values.out,
    split: split as [number, number, number],
    resume: values.resume ?? false,
    progress: !values['no-progress'],
  };
  const set = <K extends keyof TrainOptions>(k: K, v: TrainOptions[K] | undefined): void => {
    if (v !== undefined) o[k] = v;
  };
  set('steps', num(values.steps, 'steps'));
  set('minutes', num(values.minutes, 'minutes'));
  set('batch', num(values.batch, 'batch'));
  set('lr', num(values.lr, 'lr'));
  set('weightDecay', num(values['weight-decay'], 'weight-decay'));
  set('eta', num(values.eta, 'eta'));
  set('gamma', num(values.gamma, 'gamma'));
  set('delta', num(values.delta, 'delta'));
  set('p2Gamma', num(values['p2-gamma'], 'p2-gamma'));
  set('rewordRate', num(values['reword-rate'], 'reword-rate'));
  if (!(o.rewordRate >= 0 && o.rewordRate <= 1)) throw new Error('--reword-rate must be in [0, 1]');
  if (o.rewordRate > 0 && dataset !== 'iclevr') throw new Error('--reword-rate needs i-CLEVR episodes (their canonical grammar is what gets reworded)');
  if (values.tokenizer !== undefined) {
    if (values.tokenizer !== 'word' && values.tokenizer !== 'bpe') throw new Error(`--tokenizer must be word or bpe, got "${values.tokenizer}"`);
    o.tokenizer = values.tokenizer;
  }
  if (o.p2Gamma < 0) throw new Error('--p2-gamma must be >= 0');
  if (values['icm-hard-negatives']) {
    if (dataset !== 'iclevr') throw new Error('--icm-hard-negatives needs i-CLEVR episodes (their relations can be mirrored)');
    o.icmHardNegatives = true;
  }
  if (values['icm-hard-negative-axes']) {
    if (!o.icmHardNegatives) throw new Error('--icm-hard-negative-axes needs --icm-hard-negatives');
    o.icmHardNegativeAxes = true;
  }
  if (values['icm-hard-negative-colors']) {
    if (dataset !== 'iclevr') throw new Error('--icm-hard-negative-colors needs i-CLEVR episodes (their colours can be swapped)');
    o.icmHardNegativeColors = true;
  }
  set('conditionDropout', num(values['condition-dropout'], 'condition-dropout'));
  set('clipNorm', num(values['clip-norm'], 'clip-norm'));
  set('valEvery', num(values['val-every'], 'val-every'));
  set('valBatches', num(values['val-batches'], 'val-batches'));
  set('valPatience', num(values['val-patience'], 'val-patience'));
  if (!Number.isInteger(o.valPatience) || o.valPatience < 1) throw new Error('--val-patience must be an integer >= 1');
  set('emaDecay', num(values['ema-decay'], 'ema-decay'));
  if (!(o.emaDecay >= 0 && o.emaDecay < 1)) throw new Error('--ema-decay must be in [0, 1) (0 = no weight average)');
  if (o.emaDecay > 0 && stage === 'ae') throw new Error('--ema-decay applies to the CDD-ICM stages, not to --stage ae');
  set('checkpointMinutes', num(values['checkpoint-minutes'], 'checkpoint-minutes'));
  set('trainEpisodes', num(values['train-episodes'], 'train-episodes'));
  set('valEpisodes', num(values['val-episodes'], 'val-episodes'));
  set('imageSize', num(values['image-size'], 'image-size'));
  set('contextLength', num(values['context-length'], 'context-length'));
  set('seed', num(values.seed, 'seed'));
  set('trainFile', values['train-file']);
  set('valFile', values['val-file']);
  set('codrawDir', values['codraw-dir']);
  set('autoencoder', values.autoencoder);
  set('init', values.init);
  set('selfReferences', values['self-references']);
  set('selfReferenceRate', num(values['self-reference-rate'], 'self-reference-rate'));
  if (!(o.selfReferenceRate >= 0 && o.selfReferenceRate <= 1)) throw new Error('--self-reference-rate must be in [0, 1]');
  const target = values['self-reference-target'];
  if (target !== undefined) {
    if (target !== 'composite' && target !== 'ground-truth') throw new Error('--self-reference-target must be composite or ground-truth');
    o.selfReferenceTarget = target;
  }
  if (!o.selfReferences && (values['self-reference-rate'] !== undefined || target !== undefined)) {
    throw new Error('--self-reference-rate and --self-reference-target need --self-references <rollout file>');
  }
  if (o.selfReferences && stage === 'ae') throw new Error('--self-references applies to the CDD-ICM stages, not to --stage ae');
  if (values['decoder-only']) {
    if (stage !== 'ae' || !o.init) throw new Error('--decoder-only fine-tunes an existing autoencoder: it needs --stage ae and --init <autoencoder or latent model folder>');
    o.decoderOnly = true;
  }
  if (values['guidance-range'] !== undefined) {
    const r = values['guidance-range'].split(',').map(Number);
    if (stage !== 'guidance' && stage !== 'progressive') throw new Error('--guidance-range applies to --stage guidance and --stage progressive');
    if (r.length !== 2 || !(r[0]! >= 0 && r[1]! >= r[0]!)) throw new Error('--guidance-range wants min,max with 0 <= min <= max');
    o.guidanceRange = [r[0]!, r[1]!];
  }
  for (const [flag, key] of [['student-steps', 'studentSteps'], ['teacher-substeps', 'teacherSubsteps']] as const) {
    const raw = values[flag];
    if (raw === undefined) continue;
    if (stage !== 'progressive') throw new Error(`--${flag} applies to --stage progressive`);
    const v = Number(raw);
    if (!Number.isInteger(v) || v < (key === 'studentSteps' ? 1 : 2)) throw new Error(`--${flag} wants an integer >= ${key === 'studentSteps' ? 1 : 2}, got ${raw}`);
    o[key] = v;
  }
  if (stage === 'guidance' || stage === 'progressive') {
    if (!o.init) throw new Error(`--stage ${stage} distils a trained model: pass it as --init <model folder>`);
    if (o.emaDecay > 0 || o.selfReferences) throw new Error(`--ema-decay and --self-references apply to stages 1-3, not to --stage ${stage}`);
  }
  if (stage === 'ae' && o.autoencoder) throw new Error('--autoencoder applies to the CDD-ICM stages; to start --stage ae from an autoencoder, use --init');
  if (stage !== 'ae') {
    // The canvases are rendered at the model's own size (--init's, else the preset's); an autoencoder has none of
    // its own (it is convolutional) and trains at --image-size, 64 unless given.
    const size = modelImageSize(o);
    if (values['image-size'] !== undefined && o.imageSize !== size)
      throw new Error(`--image-size ${o.imageSize}: ${o.init ? `--init ${o.init}` : `preset ${o.config}`} works at ${size}x${size}${o.imageSize === 128 ? ' (128x128: --config small-128)' : ''}`);
    o.imageSize = size;
  }
  return o;
}

/** The image size of --init's checkpoint, else of the --config preset. */
function modelImageSize(o: TrainOptions): number {
  if (!o.init) return modelConfig(o.config).imageSize;
  let file: { config?: { imageSize?: unknown } };
  try {
    file = JSON.parse(readFileSync(join(o.init, 'config.json'), 'utf8')) as typeof file;
  } catch (e) {
    throw new Error(`--init ${o.init}: no readable config.json (${(e as Error).message})`);
  }
  const size = file.config?.imageSize;
  if (typeof size !== 'number') throw new Error(`--init ${o.init}: not a model checkpoint (its config.json has no config.imageSize)`);
  return size;
}

/** `--export FROM --out TO [--dtype float16]`: copy a model checkpoint (e.g. best/) for shipping, float16 by default. */
async function exportModel(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      export: { type: 'string' },
      out: { type: 'string' },
      dtype: { type: 'string' },
      weights: { type: 'string' },
      backend: { type: 'string' },
      'default-steps': { type: 'string' },
      'default-guidance': { type: 'string' },
      'default-icm-guidance': { type: 'string' },
      'default-candidates': { type: 'string' },
      'default-solver': { type: 'string' },
      'default-select-at': { type: 'string' },
      'default-icm-before-selection': { type: 'string' },
      autoencoder: { type: 'string' },
    },
    strict: true,
  });
  if (!values.export || !values.out) throw new Error('usage: --export <checkpoint folder> --out <folder> [--dtype float16|float32] [--default-guidance PHI] ...');
  const dtype = values.dtype ?? 'float16';
  if (dtype !== 'float16' && dtype !== 'float32') throw new Error('--dtype must be float16 or float32');
  const weights = values.weights ?? 'average';
  if (weights !== 'average' && weights !== 'raw') throw new Error('--weights must be average or raw');
  const sampling: SamplingDefaults = {};
  const steps = num(values['default-steps'], 'default-steps');
  const guidanceScale = num(values['default-guidance'], 'default-guidance');
  const icmGuidanceScale = num(values['default-icm-guidance'], 'default-icm-guidance');
  if (steps !== undefined) sampling.steps = steps;
  if (guidanceScale !== undefined) sampling.guidanceScale = guidanceScale;
  if (icmGuidanceScale !== undefined) sampling.icmGuidanceScale = icmGuidanceScale;
  const candidates = num(values['default-candidates'], 'default-candidates');
  if (candidates !== undefined) sampling.candidates = candidates;
  // validateModelConfig below rejects an unknown solver name.
  if (values['default-solver'] !== undefined) sampling.solver = values['default-solver'] as SolverName;
  if (values['default-select-at'] !== undefined) sampling.selectAt = num(values['default-select-at'], 'default-select-at');
  const icmBefore = values['default-icm-before-selection'];
  if (icmBefore !== undefined) {
    if (icmBefore !== 'yes' && icmBefore !== 'no') throw new Error('--default-icm-before-selection must be yes or no');
    sampling.icmBeforeSelection = icmBefore === 'yes';
  }
  await initBackend(parseBackendFlag(argv, process.env));
  const model = await loadCheckpoint(values.export);
  if (weights === 'raw') {
    const raw = await readRawWeights(values.export);
    if (!raw) throw new Error(`${values.export} has no raw.safetensors (a run without --ema-decay, or a finished stage's folder, which holds only its kept weights): export it without --weights raw`);
    // raw.safetensors holds the weights the checkpoint's stage trained; the others were frozen, so average = raw.
    assignNamed(model.namedParameters(), raw);
  }
  if (values.autoencoder) await swapDecoder(model, values.autoencoder);
  // Settings not given keep the source checkpoint's recommendation (if any).
  if (Object.keys(sampling).length) model.config.sampling = { ...model.config.sampling, ...sampling };
  validateModelConfig(model.config);
  await saveCheckpoint(model, values.out, { dtype });
  process.stdout.write(JSON.stringify({ exported: values.export, to: values.out, dtype, weights, params: model.parameterCount(), sampling: model.config.sampling ?? null }) + '\n');
  model.dispose();
}

/** Give a latent model the decoder of an autoencoder with the same latent space (a --decoder-only fine-tune). */
async function swapDecoder(model: CddIcm, dir: string): Promise<void> {
  if (!(model.codec instanceof AutoencoderCodec)) throw new Error('--autoencoder: this is a pixel-space model, it has no decoder to replace');
  const ae = await loadAutoencoder(dir);
  try {
    const why = latentSpaceMismatch(ae, model.codec.autoencoder);
    if (why) {
      throw new Error(
        `--autoencoder ${dir} is not this model's latent space (${why}): only a decoder fine-tuned from it ` +
          `(--stage ae --init <this model> --decoder-only) can be swapped in`,
      );
    }
    const own = model.codec.autoencoder.decoderParameters();
    for (const [name, v] of ae.decoderParameters()) own.get(name)!.assign(v);
  } finally {
    ae.dispose();
  }
}

/** `--rollouts FILE --init MODEL ...`: the model's own canvases on training episodes, for --self-references. */
async function rollouts(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rollouts: { type: 'string' },
      init: { type: 'string' },
      dataset: { type: 'string' },
      'train-episodes': { type: 'string' },
      'train-file': { type: 'string' },
      'codraw-dir': { type: 'string' },
      seed: { type: 'string' },
      count: { type: 'string' },
      steps: { type: 'string' },
      guidance: { type: 'string' },
      'icm-guidance': { type: 'string' },
      batch: { type: 'string' },
      backend: { type: 'string' },
    },
    strict: true,
  });
  const dataset = values.dataset;
  if (dataset !== 'iclevr' && dataset !== 'codraw') throw new Error('--dataset must be iclevr or codraw');
  if (!values.rollouts || !values.init) throw new Error('usage: --rollouts <file> --init <model folder> --dataset iclevr|codraw --count E ...');
  const count = num(values.count, 'count');
  if (count === undefined || !Number.isInteger(count) || count < 1) throw new Error('--count E (episodes to roll out, >= 1) is required');
  const batch = num(values.batch, 'batch') ?? 16;
  if (!Number.isInteger(batch) || batch < 1) throw new Error('--batch must be an integer >= 1');
  const seed = num(values.seed, 'seed') ?? 0;
  const trainEpisodes = num(values['train-episodes'], 'train-episodes');
  const episodes = await loadEpisodeSource({
    dataset,
    split: 'train',
    seed,
    ...(trainEpisodes !== undefined ? { count: trainEpisodes } : {}),
    ...(values['train-file'] ? { file: values['train-file'] } : {}),
    ...(values['codraw-dir'] ? { codrawDir: values['codraw-dir'] } : {}),
  });
  await initBackend(parseBackendFlag(argv, process.env));
  const model = await loadCheckpoint(values.init);
  const asked: Partial<TurnSettings> = {};
  const steps = num(values.steps, 'steps');
  const guidanceScale = num(values.guidance, 'guidance');
  const icmGuidanceScale = num(values['icm-guidance'], 'icm-guidance');
  if (steps !== undefined && !(Number.isInteger(steps) && steps >= 1)) throw new Error('--steps must be an integer >= 1');
  if ((guidanceScale ?? 0) < 0 || (icmGuidanceScale ?? 0) < 0) throw new Error('--guidance and --icm-guidance must be >= 0');
  if (steps !== undefined) asked.steps = steps;
  if (guidanceScale !== undefined) asked.guidanceScale = guidanceScale;
  if (icmGuidanceScale !== undefined) asked.icmGuidanceScale = icmGuidanceScale;
  // Rollouts sample plainly: a recommended best-of-n is a serving choice, not part of the canvases trained on.
  const { candidates: _bestOf, ...sampling } = resolveTurnDefaults(null, { ...model.config.sampling, ...asked });
  const t0 = Date.now();
  let startDone = -1;
  const stop = { requested: false };
  process.once('SIGINT', () => {
    stop.requested = true;
    process.stderr.write('\nstopping after this group of episodes (the file keeps every finished one)\n');
  });
  const r = await rolloutSelfReferences(model, episodes, {
    file: values.rollouts,
    count,
    batch,
    seed,
    trainEpisodes: episodes.length,
    ...sampling,
    shouldStop: () => stop.requested,
    onProgress: (done, total, entries) => {
      if (startDone < 0) startDone = done;
      const rate = (Date.now() - t0) / Math.max(1, done - startDone);
      const eta = done > startDone ? ` | ETA ${Math.round(((total - done) * rate) / 60_000)} min` : '';
      process.stderr.write(`rollouts: ${done}/${total} episodes | ${entries} canvases${eta}\n`);
    },
  });
  process.stdout.write(JSON.stringify({ rollouts: values.rollouts, model: values.init, episodes: r.episodesDone, canvases: r.turns.length, ...sampling, minutes: (Date.now() - t0) / 60_000 }) + '\n');
  model.dispose();
  process.exit(stop.requested ? 130 : 0);
}

async function main(): Promise<void> {
  if (process.argv.includes('--export')) return exportModel(process.argv.slice(2));
  if (process.argv.includes('--rollouts')) return rollouts(process.argv.slice(2));
  const opts = parseTrainArgs(process.argv.slice(2));
  const info = await initBackend(parseBackendFlag(process.argv.slice(2), process.env));
  process.stderr.write(`backend: ${info.name} (${info.device}, ${info.threads} threads)\n`);
  const t0 = Date.now();
  const r = await train(opts);
  const summary = { ...r, minutes: (Date.now() - t0) / 60_000 };
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exit(r.interrupted ? 130 : 0);
}

main().catch((e: unknown) => {
  process.stderr.write(`train: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  if (!process.argv.includes('--export') && !process.argv.includes('--rollouts')) process.stderr.write('a checkpoint (if any) is in <out>/last: rerun with --resume to continue\n');
  process.exit(1);
});
