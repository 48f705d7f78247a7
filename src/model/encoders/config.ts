/** Sizes of the CLIP-style encoders, with presets from CLIP ViT-B/32 (as in the paper) down to test size. */

/** CLIP's activations as Hugging Face names them: quick_gelu (OpenAI CLIP), gelu (exact, erf), gelu_tanh (approximation). */
export type HiddenAct = 'quick_gelu' | 'gelu' | 'gelu_tanh';

export interface VisionConfig {
  /** Square input size the encoder resizes every image to. */
  imageSize: number;
  patchSize: number;
  width: number;
  layers: number;
  heads: number;
  /** 3 for RGB (default); the noisy image encoder may see latents with another channel count. */
  inChannels?: number;
  /** Adds a timestep embedding to every token (the noisy image encoder of N-ICM). */
  timeConditioned?: boolean;
  /** MLP hidden size, default 4 * width (CLIP's intermediate_size). */
  mlpDim?: number;
  hiddenAct?: HiddenAct;
  layerNormEps?: number;
  /** Normalise inputs with CLIP's pixel mean/std; default true for 3 channels, false otherwise. */
  clipNormalize?: boolean;
}

export interface TextConfig {
  vocabSize: number;
  contextLength: number;
  width: number;
  layers: number;
  heads: number;
  mlpDim?: number;
  hiddenAct?: HiddenAct;
  layerNormEps?: number;
  /**
   * Token id marking the end of a text; the encoder pools at its first occurrence. Unset: pool at the argmax id,
   * as Hugging Face CLIP does (CLIP's <|endoftext|> has the largest id).
   */
  eosTokenId?: number;
}

/** CLIP's pixel statistics (over [0, 1] RGB). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export interface EncoderPreset {
  vision: VisionConfig;
  text: TextConfig;
  /** Output dimensionality d of both projections (the joint space). */
  projectionDim: number;
}

/**
 * Presets by name. `clip-vit-b32` is openai/clip-vit-base-patch32 (d = 512 as in the paper); `small` serves CPU
 * training, `tiny` tests. The text vocabSize/eosTokenId of `small`/`tiny` are placeholders for a word tokenizer:
 * set them from the tokenizer actually used.
 */
export const encoderPresets: Record<'clip-vit-b32' | 'small' | 'tiny', EncoderPreset> = {
  'clip-vit-b32': {
    vision: { imageSize: 224, patchSize: 32, width: 768, layers: 12, heads: 12, mlpDim: 3072, hiddenAct: 'quick_gelu' },
    text: { vocabSize: 49408, contextLength: 77, width: 512, layers: 12, heads: 8, mlpDim: 2048, hiddenAct: 'quick_gelu' },
    projectionDim: 512,
  },
  small: {
    vision: { imageSize: 64, patchSize: 8, width: 128, layers: 4, heads: 4 },
    text: { vocabSize: 1000, contextLength: 32, width: 128, layers: 4, heads: 4, eosTokenId: 2 },
    projectionDim: 128,
  },
  tiny: {
    vision: { imageSize: 16, patchSize: 4, width: 32, layers: 2, heads: 2 },
    text: { vocabSize: 64, contextLength: 16, width: 32, layers: 2, heads: 2, eosTokenId: 2 },
    projectionDim: 32,
  },
};

export function validateVisionConfig(c: VisionConfig): void {
  if (c.imageSize % c.patchSize !== 0) throw new Error(`imageSize ${c.imageSize} not divisible by patchSize ${c.patchSize}`);
  if (c.width % c.heads !== 0) throw new Error(`vision width ${c.width} not divisible by ${c.heads} heads`);
}

export function validateTextConfig(c: TextConfig): void {
  if (c.width % c.heads !== 0) throw new Error(`text width ${c.width} not divisible by ${c.heads} heads`);
  if (c.contextLength < 2) throw new Error('text contextLength must be at least 2');
}
