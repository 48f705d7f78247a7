/** Options of a training run (what the CLI parses), their defaults, and what a run returns. */
import { PAPER_DEFAULTS } from '../model/index.js';
import type { DatasetName, OwnTarget } from './data.js';

/**
 * One stage, a list run in order (e.g. [2, 3] after a separate stage-1 run), 'all' = [1, 2, 3], the autoencoder,
 * guidance distillation of a trained model (--init) into a one-pass student, or progressive distillation of it into
 * a student with fewer steps.
 */
export type StageArg = 1 | 2 | 3 | (1 | 2 | 3)[] | 'all' | 'ae' | 'guidance' | 'progressive';

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
  /** Stages 'guidance', 'progressive': phi of each training item is drawn from [min, max] (the student is exact only there). */
  guidanceRange: [number, number];
  /** Stage 'progressive': the student's step count N (its grid is the sampler's N-step respacing). */
  studentSteps: number;
  /** Stage 'progressive': teacher DDIM steps per student step (2: Salimans & Ho's halving). */
  teacherSubsteps: number;
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
  studentSteps: 5,
  teacherSubsteps: 2,
  selfReferenceTarget: 'composite',
  valBatches: 8,
  checkpointMinutes: 5,
  imageSize: 64,
  seed: 0,
  resume: false,
  progress: true,
};

/** What a run did: per stage, how it finished, its steps and best validation loss (stages 1-3: those completed). */
export interface TrainResult {
  out: string;
  interrupted: boolean;
  finished: (string | null)[];
  steps: number[];
  bestVal: (number | null)[];
}

/** Programmatic control of a run (the CLI uses Ctrl-C / SIGTERM instead). */
export interface TrainControl {
  /** Polled between steps: true checkpoints and stops the run, as Ctrl-C does. */
  shouldStop?: () => boolean;
}
