/**
 * A small convolutional VAE that gives the diffusion a latent space (the paper's own proposal for speed):
 * 64x64x3 pixels in [-1, 1] -> 16x16x4 latents (downFactor 4) and back. Trained with L1 + MSE reconstruction and
 * a tiny KL term; after training a latent scale is measured so that codec latents have about unit variance,
 * which is what the diffusion's N(0, I) prior expects (as in latent diffusion's scale factor).
 */
import * as tf from '@tensorflow/tfjs-core';
// nn.ts uses chained tensor ops (x.reshape) and training needs gradients: the model part registers both there.
import { Conv2d, GroupNorm, Module, resetSeed } from '../nn.js';

export interface AutoencoderConfig {
  /** Pixel channels (3 for RGB). */
  imageChannels: number;
  /** Channels of the latent. */
  latentChannels: number;
  /** Spatial reduction, a power of two (4: 64x64 -> 16x16). */
  downFactor: number;
  /** Feature widths per resolution level, length log2(downFactor) + 1, highest resolution first. */
  widths: number[];
  /** GroupNorm groups (must divide every width). */
  groups: number;
  /** Residual blocks per level. */
  blocksPerLevel: number;
  /** Weight of the KL term (mean over latent elements). */
  klWeight: number;
  /** Multiplier applied to the posterior mean so codec latents have ~unit variance; 1 until measured. */
  latentScale: number;
  /**
   * Bound of the scaled latents, measured with the scale (a high percentile of |z|, see calibrateScale): the
   * sampler clips its x0 estimates to it, as pixels are clipped to [-1, 1]. Unset in autoencoders calibrated
   * before it existed: DEFAULT_LATENT_RANGE then.
   */
  latentRange?: number;
  /** Seed of the initial weights. */
  seed: number;
}

/** Which quantile of |scaled latent| calibrateScale takes as the latent range. */
export const LATENT_RANGE_QUANTILE = 0.99;
/** The range assumed for an autoencoder calibrated without one: 3 standard deviations of unit-variance latents. */
export const DEFAULT_LATENT_RANGE = 3;

export const AUTOENCODER_PRESETS: Record<string, AutoencoderConfig> = {
  /** For tests: tiny and fast. */
  tiny: { imageChannels: 3, latentChannels: 4, downFactor: 4, widths: [4, 8, 8], groups: 4, blocksPerLevel: 1, klWeight: 1e-6, latentScale: 1, seed: 7 },
  /** The default for 64x64 i-CLEVR-style and CoDraw training on CPU. */
  small: { imageChannels: 3, latentChannels: 4, downFactor: 4, widths: [16, 32, 64], groups: 8, blocksPerLevel: 1, klWeight: 1e-6, latentScale: 1, seed: 7 },
};

/** Pre-activation residual block: x + conv(silu(gn(conv(silu(gn(x)))))), with a 1x1 skip when widths differ. */
class ResBlock extends Module {
  private readonly norm1: GroupNorm;
  private readonly conv1: Conv2d;
  private readonly norm2: GroupNorm;
  private readonly conv2: Conv2d;
  private readonly skip: Conv2d | null;
  constructor(inC: number, outC: number, groups: number) {
    super();
    this.norm1 = this.child('norm1', new GroupNorm(groups, inC));
    this.conv1 = this.child('conv1', new Conv2d(inC, outC, 3));
    this.norm2 = this.child('norm2', new GroupNorm(groups, outC));
    this.conv2 = this.child('conv2', new Conv2d(outC, outC, 3));
    this.skip = inC === outC ? null : this.child('skip', new Conv2d(inC, outC, 1));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.conv1.apply(this.norm1.apply(x, 'silu'));
      h = this.conv2.apply(this.norm2.apply(h, 'silu'));
      return tf.add(this.skip ? this.skip.apply(x) : x, h) as tf.Tensor4D;
    });
  }
}

class Encoder extends Module {
  private readonly convIn: Conv2d;
  private readonly blocks: ResBlock[][] = [];
  private readonly downs: Conv2d[] = [];
  private readonly mid: ResBlock;
  private readonly normOut: GroupNorm;
  private readonly convOut: Conv2d;
  constructor(c: AutoencoderConfig) {
    super();
    const w = c.widths;
    this.convIn = this.child('conv_in', new Conv2d(c.imageChannels, w[0]!, 3));
    for (let l = 0; l < w.length; l++) {
      const level: ResBlock[] = [];
      for (let b = 0; b < c.blocksPerLevel; b++) level.push(this.child(`level${l}.block${b}`, new ResBlock(w[l]!, w[l]!, c.groups)));
      this.blocks.push(level);
      if (l < w.length - 1) this.downs.push(this.child(`level${l}.down`, new Conv2d(w[l]!, w[l + 1]!, 3, { stride: 2 })));
    }
    const top = w[w.length - 1]!;
    this.mid = this.child('mid', new ResBlock(top, top, c.groups));
    this.normOut = this.child('norm_out', new GroupNorm(c.groups, top));
    // Mean and log-variance of the posterior.
    this.convOut = this.child('conv_out', new Conv2d(top, 2 * c.latentChannels, 3));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.convIn.apply(x);
      for (let l = 0; l < this.blocks.length; l++) {
        for (const b of this.blocks[l]!) h = b.apply(h);
        if (l < this.downs.length) h = this.downs[l]!.apply(h);
      }
      h = this.mid.apply(h);
      return this.convOut.apply(this.normOut.apply(h, 'silu'));
    });
  }
}

class Decoder extends Module {
  private readonly convIn: Conv2d;
  private readonly mid: ResBlock;
  private readonly ups: Conv2d[] = [];
  private readonly blocks: ResBlock[][] = [];
  private readonly normOut: GroupNorm;
  private readonly convOut: Conv2d;
  constructor(c: AutoencoderConfig) {
    super();
    const w = c.widths;
    const top = w[w.length - 1]!;
    this.convIn = this.child('conv_in', new Conv2d(c.latentChannels, top, 3));
    this.mid = this.child('mid', new ResBlock(top, top, c.groups));
    // Levels from the lowest resolution up; each but the first starts with a nearest x2 upsample + conv.
    for (let l = w.length - 1; l >= 0; l--) {
      if (l < w.length - 1) this.ups.push(this.child(`level${l}.up`, new Conv2d(w[l + 1]!, w[l]!, 3)));
      const level: ResBlock[] = [];
      for (let b = 0; b < c.blocksPerLevel; b++) level.push(this.child(`level${l}.block${b}`, new ResBlock(w[l]!, w[l]!, c.groups)));
      this.blocks.push(level);
    }
    this.normOut = this.child('norm_out', new GroupNorm(c.groups, w[0]!));
    this.convOut = this.child('conv_out', new Conv2d(w[0]!, c.imageChannels, 3));
  }
  apply(z: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.mid.apply(this.convIn.apply(z));
      for (let i = 0; i < this.blocks.length; i++) {
        if (i > 0) {
          const [, hh, ww] = h.shape;
          h = this.ups[i - 1]!.apply(tf.image.resizeNearestNeighbor(h, [hh * 2, ww * 2]));
        }
        for (const b of this.blocks[i]!) h = b.apply(h);
      }
      return this.convOut.apply(this.normOut.apply(h, 'silu'));
    });
  }
}

export interface AutoencoderLosses {
  total: tf.Scalar;
  l1: tf.Scalar;
  mse: tf.Scalar;
  kl: tf.Scalar;
}

export class Autoencoder extends Module {
  readonly config: AutoencoderConfig;
  private readonly encoder: Encoder;
  private readonly decoder: Decoder;

  constructor(config: AutoencoderConfig) {
    super();
    const levels = Math.log2(config.downFactor);
    if (!Number.isInteger(levels) || levels < 0) throw new Error(`autoencoder: downFactor ${config.downFactor} is not a power of two`);
    if (config.widths.length !== levels + 1) throw new Error(`autoencoder: need ${levels + 1} widths for downFactor ${config.downFactor}`);
    this.config = { ...config, widths: [...config.widths] };
    resetSeed(config.seed);
    this.encoder = this.child('encoder', new Encoder(config));
    this.decoder = this.child('decoder', new Decoder(config));
  }

  /**
   * The decoder's weights alone: fine-tuning them (train --stage ae --decoder-only) sharpens the images of
   * models trained in this latent space without moving the space itself.
   */
  decoderParameters(): Map<string, tf.Variable> {
    return new Map([...this.namedParameters()].filter(([n]) => n.startsWith('decoder.')));
  }

  /** Posterior mean and log-variance (unscaled), each [B, H/f, W/f, latentChannels]. */
  posterior(images: tf.Tensor4D): { mean: tf.Tensor4D; logvar: tf.Tensor4D } {
    return tf.tidy(() => {
      const h = this.encoder.apply(images);
      const [mean, logvar] = tf.split(h, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
      return { mean, logvar: tf.clipByValue(logvar, -30, 20) as tf.Tensor4D };
    });
  }

  /** Deterministic codec latent: the posterior mean times latentScale. */
  encode(images: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.mul(this.posterior(images).mean, this.config.latentScale) as tf.Tensor4D);
  }

  /** Pixels in about [-1, 1] from a scaled latent. */
  decode(z: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.decoder.apply(tf.div(z, this.config.latentScale) as tf.Tensor4D));
  }

  /** Training losses on a batch of pixel images: L1 + MSE reconstruction of a posterior sample, plus klWeight * KL. */
  losses(images: tf.Tensor4D, seed: number): AutoencoderLosses {
    return tf.tidy(() => {
      const { mean, logvar } = this.posterior(images);
      const std = tf.exp(tf.mul(0.5, logvar));
      const z = tf.add(mean, tf.mul(std, tf.randomNormal(mean.shape, 0, 1, 'float32', seed))) as tf.Tensor4D;
      const rec = this.decoder.apply(z);
      const diff = tf.sub(rec, images);
      const l1 = tf.mean(tf.abs(diff)) as tf.Scalar;
      const mse = tf.mean(tf.square(diff)) as tf.Scalar;
      // KL(N(mean, std^2) || N(0, 1)) per latent element, averaged.
      const kl = tf.mean(tf.mul(0.5, tf.sub(tf.sub(tf.add(tf.square(mean), tf.exp(logvar)), 1), logvar))) as tf.Scalar;
      const total = tf.add(tf.add(l1, mse), tf.mul(this.config.klWeight, kl)) as tf.Scalar;
      return { total, l1, mse, kl };
    });
  }

  /**
   * Measure the latent scale on sample images so that codec latents have unit standard deviation,
   * and store it in the config (it is saved with the checkpoint).
   */
  calibrateScale(images: tf.Tensor4D): number {
    const std = tf.tidy(() => tf.sqrt(tf.moments(this.posterior(images).mean).variance).dataSync()[0]!);
    this.config.latentScale = std > 1e-8 ? 1 / std : 1;
    this.measureRange(images);
    return this.config.latentScale;
  }

  /**
   * Measure (only) the latent range on sample images: the LATENT_RANGE_QUANTILE quantile of |scaled latent|.
   * Also for autoencoders calibrated before the range existed (the scale stays: models were trained on it).
   */
  measureRange(images: tf.Tensor4D): number {
    const z = this.encode(images);
    const abs = Float32Array.from(z.dataSync(), Math.abs).sort();
    z.dispose();
    this.config.latentRange = abs[Math.min(abs.length - 1, Math.floor(LATENT_RANGE_QUANTILE * abs.length))] ?? DEFAULT_LATENT_RANGE;
    return this.config.latentRange;
  }
}
