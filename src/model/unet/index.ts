/** The conditional ADM U-Net and its blocks. */
export * from './unet.js';
export { AttentionBlock, Downsample, ResBlock, Upsample, timestepEmbedding } from './blocks.js';
