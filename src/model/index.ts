/**
 * Public surface of the model part: CDD-ICM (encoders, fusion, U-Net, diffusion, ICM, guidance, sampling,
 * checkpoints), its tokenizers and the image codecs. Other parts import only from here.
 */
export * from './nn.js';
export * from './config.js';
export { PixelCodec, type ImageCodec } from './codec.js';
export { GatedFusion } from './fusion.js';
export { IcmHead, symmetricInfoNce, cosineSimilarityMatrix, cosineSimilarity, l2Normalize } from './icm.js';
export { UNet, ResBlock, AttentionBlock, Downsample, Upsample, type UNetConfig } from './unet/index.js';
export * from './diffusion/index.js';
export {
  CddIcm,
  createModel,
  createModelFromClip,
  type TurnBatch,
  type LossOptions,
  type Losses,
  type ParameterGroup,
  type ParameterGroupName,
  type Condition,
} from './cddIcm.js';
export {
  Sampler,
  sample,
  sampleWithLatents,
  sampleBestOf,
  candidateSeed,
  type BestOfResult,
  type SampleRequest,
  type SampleState,
  type SampleOptions,
} from './sampler.js';
export { rollOutEpisodes, type RolloutOptions, type RolloutReference } from './rollout.js';
export * from './checkpoint.js';
export * from './tokenizer/index.js';
export { learnByteBpe, BPE_PAD, type LearnBpeOptions } from './tokenizer/bpeTrainer.js';
export { retokenizeModel, type RetokenizeReport } from './retokenize.js';
export * from './encoders/index.js';
export {
  Autoencoder,
  AutoencoderCodec,
  AUTOENCODER_PRESETS,
  DEFAULT_LATENT_RANGE,
  LATENT_RANGE_QUANTILE,
  createAutoencoder,
  saveAutoencoder,
  loadAutoencoder,
  autoencoderWeights,
  setAutoencoderWeights,
  latentSpaceMismatch,
  AUTOENCODER_FORMAT,
  type AutoencoderConfig,
  type AutoencoderLosses,
} from './autoencoder/index.js';
export * from './safetensors.js';
export * from './clip/index.js';
export {
  createGuidanceStudent,
  guidanceDistillationLoss,
  type GuidanceDistillationOptions,
  type GuidanceDistillationLosses,
} from './guidanceDistillation.js';
export {
  createProgressiveStudent,
  distillationGrids,
  progressiveDistillationLoss,
  type DistillationGrids,
  type ProgressiveDistillationOptions,
  type ProgressiveDistillationLosses,
} from './progressiveDistillation.js';
