/**
 * CLIP-style encoders: the image encoder (ViT), the text encoder (causal transformer) and the noisy image encoder
 * (ViT with a timestep input), each with a fresh projection to the joint space d.
 */
export type { EncoderOutput, BackboneOutput } from './types.js';
export {
  encoderPresets, CLIP_MEAN, CLIP_STD, validateVisionConfig, validateTextConfig,
  type VisionConfig, type TextConfig, type HiddenAct, type EncoderPreset,
} from './config.js';
export { VisionEncoder, VisionTransformer, VisionEmbeddings, PatchEmbedding, TimestepMlp } from './vision.js';
export { TextEncoder, TextTransformer, TextEmbeddings } from './text.js';
export { SelfAttention, Mlp, EncoderLayer, TransformerStack, ModuleList, causalMask, timestepEmbedding } from './transformer.js';
