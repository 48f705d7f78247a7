/**
 * ModelConfig: every size of CDD-ICM in one JSON-serialisable object (stored in checkpoints), with presets:
 * `tiny` (tests: 16x16 pixels, very small widths), `small` (CPU training at 64x64 in a 16x16x4 autoencoder latent),
 * `small-128` (the same widths at 128x128 in a 32x32x4 latent: GeNeVA's CoDraw resolution, where small clip art
 * survives the codec), `small-pixel` (the small model at 64x64 pixels), and `clip-vit-b32` (the paper: CLIP ViT-B/32 encoders, d = 512,
 * an ADM-sized U-Net).
 */
import { encoderPresets, type TextConfig, type VisionConfig } from './encoders/index.js';
import type { TokenizerKind } from './tokenizer/index.js';
import type { UNetConfig } from './unet/index.js';

export interface ModelConfig {
  /** Preset name it was built from (informational). */
  name: string;
  /** Pixel size of reference and generated images (square). */
  imageSize: number;
  tokenizer: TokenizerKind;
  /** Image encoder (reference and target images, pixels). */
  vision: VisionConfig;
  text: TextConfig;
  /** The noisy image encoder of N-ICM: sees x_t in codec space and the timestep. */
  noisyVision: VisionConfig;
  /** d: output of every projection (the joint space; the condition c has this size). */
  projectionDim: number;
  /** Width the reference patches and text tokens are projected to before each attention layer's own k/v projection. */
  contextDim: number;
  unet: Omit<UNetConfig, 'channels' | 'condDim' | 'contextDim'>;
  diffusion: { timesteps: number; schedule: 'cosine'; maxBeta: number };
  /** Latent diffusion: the codec's channels and downFactor (the codec itself is handed to the model). null: pixels. */
  latent: { channels: number; downFactor: number } | null;
  /** Seed of the initial weights. */
  seed: number;
  /**
   * Sampling settings measured best for these weights (set on export, see the model card); a server or
   * `npm run eval` uses them for turns that set none, unless its own configuration sets them. Absent: the paper's.
   */
  sampling?: SamplingDefaults;
}

/**
 * Samplers of the probability-flow ODE on the respaced schedule: 'ddim' (Song et al. 2021, eta = 0; the paper's
 * deterministic sampling) and 'dpm++2m' (DPM-Solver++(2M), Lu et al. 2022: second-order multistep, the same one
 * U-Net evaluation per step).
 */
export const SOLVERS = ['ddim', 'dpm++2m'] as const;
export type SolverName = (typeof SOLVERS)[number];

export interface SamplingDefaults {
  steps?: number;
  /** The ODE solver (SampleRequest.solver); absent: 'ddim'. */
  solver?: SolverName;
  /** Classifier-free guidance scale phi. */
  guidanceScale?: number;
  /** ICM guidance scale psi. */
  icmGuidanceScale?: number;
  /** Best-of-n candidates per turn (SampleRequest.candidates). */
  candidates?: number;
  /** Share of the steps after which best-of-n keeps one candidate (SampleRequest.selectAt); absent: 1. */
  selectAt?: number;
  /** Whether best-of-n candidates get ICM guidance before an early selection (SampleRequest.icmBeforeSelection). */
  icmBeforeSelection?: boolean;
}

/** Training and sampling defaults from the paper (Sec. 4.2). */
export const PAPER_DEFAULTS = {
  gamma: 1.5,
  delta: 0.1,
  conditionDropout: 0.2,
  guidanceScale: 3,
  icmGuidanceScale: 2,
  samplingSteps: 250,
} as const;

const cosine = { timesteps: 1000, schedule: 'cosine' as const, maxBeta: 0.999 };

function noisy(v: VisionConfig, over: Partial<VisionConfig> = {}): VisionConfig {
  return { ...v, timeConditioned: true, ...over };
}

const tinyEnc = encoderPresets.tiny;
const smallEnc = encoderPresets.small;
const clipEnc = encoderPresets['clip-vit-b32'];

export const MODEL_PRESETS: Record<'tiny' | 'small' | 'small-128' | 'small-pixel' | 'clip-vit-b32', ModelConfig> = {
  tiny: {
    name: 'tiny',
    imageSize: 16,
    tokenizer: 'word',
    vision: tinyEnc.vision,
    text: tinyEnc.text,
    noisyVision: noisy(tinyEnc.vision),
    projectionDim: tinyEnc.projectionDim,
    contextDim: 32,
    unet: { modelChannels: 16, channelMult: [1, 2], numResBlocks: 1, attentionResolutions: [2], headChannels: 16, groups: 4 },
    diffusion: cosine,
    latent: null,
    seed: 1234,
  },
  small: {
    name: 'small',
    imageSize: 64,
    tokenizer: 'word',
    vision: smallEnc.vision,
    text: smallEnc.text,
    // x_t lives in the 16x16x4 latent: 2x2 patches over 4 channels, no CLIP pixel normalisation.
    noisyVision: noisy(smallEnc.vision, { imageSize: 16, patchSize: 2, inChannels: 4, clipNormalize: false }),
    projectionDim: smallEnc.projectionDim,
    contextDim: 128,
    unet: { modelChannels: 64, channelMult: [1, 2, 2], numResBlocks: 2, attentionResolutions: [2, 4], headChannels: 32, groups: 16 },
    diffusion: cosine,
    latent: { channels: 4, downFactor: 4 },
    seed: 1234,
  },
  'small-128': {
    name: 'small-128',
    imageSize: 128,
    tokenizer: 'word',
    // Patches twice as wide keep the encoders at the small model's 64 tokens (and their cost); the U-Net gets one
    // more level so that its attention runs at the same 8x8 and 4x4 as the small model's.
    vision: { ...smallEnc.vision, imageSize: 128, patchSize: 16 },
    text: smallEnc.text,
    noisyVision: noisy(smallEnc.vision, { imageSize: 32, patchSize: 4, inChannels: 4, clipNormalize: false }),
    projectionDim: smallEnc.projectionDim,
    contextDim: 128,
    unet: { modelChannels: 64, channelMult: [1, 2, 2, 2], numResBlocks: 2, attentionResolutions: [4, 8], headChannels: 32, groups: 16 },
    diffusion: cosine,
    latent: { channels: 4, downFactor: 4 },
    seed: 1234,
  },
  'small-pixel': {
    name: 'small-pixel',
    imageSize: 64,
    tokenizer: 'word',
    vision: smallEnc.vision,
    text: smallEnc.text,
    noisyVision: noisy(smallEnc.vision),
    projectionDim: smallEnc.projectionDim,
    contextDim: 128,
    unet: { modelChannels: 64, channelMult: [1, 2, 2, 2], numResBlocks: 2, attentionResolutions: [4, 8], headChannels: 32, groups: 16 },
    diffusion: cosine,
    latent: null,
    seed: 1234,
  },
  'clip-vit-b32': {
    name: 'clip-vit-b32',
    imageSize: 64,
    tokenizer: 'clip-bpe',
    vision: clipEnc.vision,
    text: clipEnc.text,
    noisyVision: noisy(clipEnc.vision),
    projectionDim: clipEnc.projectionDim,
    contextDim: 512,
    // ADM's 64x64 model (channel_mult 1,2,3,4; attention at 32, 16, 8; 64-channel heads).
    unet: { modelChannels: 192, channelMult: [1, 2, 3, 4], numResBlocks: 3, attentionResolutions: [2, 4, 8], headChannels: 64, groups: 32 },
    diffusion: cosine,
    latent: null,
    seed: 1234,
  },
};

export type PresetName = keyof typeof MODEL_PRESETS;

/** A deep copy of a preset with overrides (top level; nested objects are replaced, not merged). */
export function modelConfig(name: PresetName | string, overrides: Partial<ModelConfig> = {}): ModelConfig {
  const base = (MODEL_PRESETS as Record<string, ModelConfig>)[name];
  if (!base) throw new Error(`unknown model preset ${name} (have ${Object.keys(MODEL_PRESETS).join(', ')})`);
  return structuredClone({ ...base, ...overrides });
}

/** Codec-space size and channels of the diffusion. */
export function diffusionShape(c: ModelConfig): { size: number; channels: number } {
  const down = c.latent?.downFactor ?? 1;
  if (c.imageSize % down !== 0) throw new Error(`imageSize ${c.imageSize} not divisible by downFactor ${down}`);
  return { size: c.imageSize / down, channels: c.latent?.channels ?? 3 };
}

/** Throws with a readable message when sizes do not fit together. */
export function validateModelConfig(c: ModelConfig): void {
  const { size, channels } = diffusionShape(c);
  const levels = c.unet.channelMult.length;
  if (size % 2 ** (levels - 1) !== 0) throw new Error(`diffusion size ${size} not divisible by 2^${levels - 1}`);
  if ((c.noisyVision.inChannels ?? 3) !== channels) {
    throw new Error(`noisy image encoder takes ${c.noisyVision.inChannels ?? 3} channels but the diffusion has ${channels}`);
  }
  if (!c.noisyVision.timeConditioned) throw new Error('the noisy image encoder must be time-conditioned');
  if (c.diffusion.schedule !== 'cosine') throw new Error(`unknown schedule ${c.diffusion.schedule}`);
  const s = c.sampling ?? {};
  for (const k of ['steps', 'candidates'] as const) {
    const v = s[k];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new Error(`sampling.${k} must be a positive integer, got ${v}`);
  }
  for (const k of ['guidanceScale', 'icmGuidanceScale'] as const) {
    const v = s[k];
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new Error(`sampling.${k} must be a number >= 0, got ${v}`);
  }
  if (s.selectAt !== undefined && !(s.selectAt > 0 && s.selectAt <= 1)) throw new Error(`sampling.selectAt must be in (0, 1], got ${s.selectAt}`);
  if (s.icmBeforeSelection !== undefined && typeof s.icmBeforeSelection !== 'boolean') {
    throw new Error(`sampling.icmBeforeSelection must be true or false, got ${String(s.icmBeforeSelection)}`);
  }
  if (s.solver !== undefined && !SOLVERS.includes(s.solver)) throw new Error(`sampling.solver must be one of ${SOLVERS.join(', ')}, got ${String(s.solver)}`);
  for (const m of c.unet.channelMult) {
    if ((m * c.unet.modelChannels) % c.unet.groups !== 0) throw new Error(`U-Net width ${m * c.unet.modelChannels} not divisible by ${c.unet.groups} groups`);
  }
}
