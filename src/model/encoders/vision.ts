/**
 * CLIP's vision transformer (ViT) with a fresh linear projection to the joint space d, and its noisy variant for
 * N-ICM (a timestep embedding added to every token). Backbone parameter names follow Hugging Face's
 * CLIPVisionTransformer under `backbone.` so that `vision_model.*` weights load one to one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Module, Linear, LayerNorm, Embedding, nextSeed, silu } from '../nn.js';
import { TransformerStack, timestepEmbedding } from './transformer.js';
import { CLIP_MEAN, CLIP_STD, validateVisionConfig, type VisionConfig } from './config.js';
import type { EncoderOutput, BackboneOutput } from './types.js';

/** Conv patch embedding without bias (stride = kernel = patch size); weight is HWIO [p, p, C, width]. */
export class PatchEmbedding extends Module {
  readonly weight: tf.Variable;
  constructor(readonly inChannels: number, readonly width: number, readonly patchSize: number) {
    super();
    const fanIn = patchSize * patchSize * inChannels;
    const limit = Math.sqrt(1 / fanIn);
    this.weight = this.param(
      'weight',
      tf.randomUniform([patchSize, patchSize, inChannels, width], -limit, limit, 'float32', nextSeed()),
    );
  }
  /**
   * [B, H, W, C] -> [B, (H/p)*(W/p), width], patches in row-major order as CLIP flattens them. Because stride equals
   * kernel, the convolution is one matrix product over non-overlapping patches (much cheaper than conv2d's
   * backward pass on the cpu backend); same values as tf.conv2d(x, weight, p, 'valid').
   */
  apply(x: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const p = this.patchSize;
      if (h % p !== 0 || w % p !== 0) throw new Error(`patch embedding: ${h}x${w} not divisible by patch ${p}`);
      const gh = h / p;
      const gw = w / p;
      // [B, gh, p, gw, p, C] -> [B, gh, gw, p(ky), p(kx), C]: rows ordered (ky, kx, c) like the HWIO filter.
      const patches = tf.reshape(tf.transpose(tf.reshape(x, [b, gh, p, gw, p, c]), [0, 1, 3, 2, 4, 5]), [b * gh * gw, p * p * c]);
      const y = tf.matMul(patches, tf.reshape(this.weight, [p * p * c, this.width]));
      return tf.reshape(y, [b, gh * gw, this.width]) as tf.Tensor3D;
    });
  }
}

export class VisionEmbeddings extends Module {
  readonly class_embedding: tf.Variable;
  readonly patch_embedding: PatchEmbedding;
  readonly position_embedding: Embedding;
  readonly numPositions: number;
  constructor(readonly config: VisionConfig) {
    super();
    const { width, patchSize, imageSize } = config;
    this.class_embedding = this.param('class_embedding', tf.randomNormal([width], 0, width ** -0.5, 'float32', nextSeed()));
    this.patch_embedding = this.child('patch_embedding', new PatchEmbedding(config.inChannels ?? 3, width, patchSize));
    this.numPositions = (imageSize / patchSize) ** 2 + 1;
    this.position_embedding = this.child('position_embedding', new Embedding(this.numPositions, width));
  }
  /** [B, S, S, C] (already normalised, at imageSize) -> [B, 1 + patches, width]. */
  apply(x: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => {
      const patches = this.patch_embedding.apply(x);
      const [b, n, w] = patches.shape;
      if (n + 1 !== this.numPositions) throw new Error(`vision embeddings: ${n} patches, expected ${this.numPositions - 1}`);
      const cls = tf.tile(this.class_embedding.reshape([1, 1, w]), [b, 1, 1]);
      return tf.add(tf.concat([cls, patches], 1), this.position_embedding.table) as tf.Tensor3D;
    });
  }
}

/** Hugging Face's CLIPVisionTransformer: embeddings, pre_layrnorm (sic), encoder, post_layernorm. */
export class VisionTransformer extends Module {
  readonly embeddings: VisionEmbeddings;
  readonly pre_layrnorm: LayerNorm;
  readonly encoder: TransformerStack;
  readonly post_layernorm: LayerNorm;
  constructor(readonly config: VisionConfig) {
    super();
    const eps = config.layerNormEps ?? 1e-5;
    this.embeddings = this.child('embeddings', new VisionEmbeddings(config));
    this.pre_layrnorm = this.child('pre_layrnorm', new LayerNorm(config.width, eps));
    this.encoder = this.child(
      'encoder',
      new TransformerStack(config.width, config.layers, config.heads, config.mlpDim ?? 4 * config.width, config.hiddenAct ?? 'quick_gelu', eps),
    );
    this.post_layernorm = this.child('post_layernorm', new LayerNorm(config.width, eps));
  }
  /**
   * @param x normalised pixels at the input size
   * @param tokenShift optional [B, width] added to every token before the transformer (timestep embedding)
   * @returns lastHiddenState [B, 1+N, width] (before post_layernorm, as HF) and post-LN'd tokens
   */
  forward(x: tf.Tensor4D, tokenShift?: tf.Tensor2D): BackboneOutput & { normed: tf.Tensor3D } {
    return tf.tidy(() => {
      let h = this.embeddings.apply(x);
      if (tokenShift) h = tf.add(h, tokenShift.expandDims(1)) as tf.Tensor3D;
      h = this.encoder.apply(this.pre_layrnorm.apply(h) as tf.Tensor3D);
      const normed = this.post_layernorm.apply(h) as tf.Tensor3D;
      const [b, , w] = normed.shape;
      const pooledOutput = normed.slice([0, 0, 0], [b, 1, w]).reshape([b, w]) as tf.Tensor2D;
      return { lastHiddenState: h, pooledOutput, normed };
    });
  }
}

/** Sinusoidal t -> Linear -> SiLU -> Linear, giving a [B, width] shift for every token. */
export class TimestepMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(readonly width: number) {
    super();
    this.fc1 = this.child('fc1', new Linear(width, width));
    this.fc2 = this.child('fc2', new Linear(width, width));
  }
  apply(t: tf.Tensor1D): tf.Tensor2D {
    return tf.tidy(() => this.fc2.apply(silu(this.fc1.apply(timestepEmbedding(t, this.width)))) as tf.Tensor2D);
  }
}

/**
 * The image encoder (and, with `timeConditioned`, the noisy image encoder). Images enter as float32 NHWC in
 * [-1, 1] at any size; they are resized to `imageSize` and normalised with CLIP's mean/std (RGB inputs).
 */
export class VisionEncoder extends Module {
  readonly backbone: VisionTransformer;
  readonly time_embed: TimestepMlp | null;
  readonly projection: Linear;
  readonly inChannels: number;

  constructor(readonly config: VisionConfig, readonly projectionDim: number) {
    super();
    validateVisionConfig(config);
    this.inChannels = config.inChannels ?? 3;
    this.backbone = this.child('backbone', new VisionTransformer(config));
    this.time_embed = config.timeConditioned ? this.child('time_embed', new TimestepMlp(config.width)) : null;
    this.projection = this.child('projection', new Linear(config.width, projectionDim));
  }

  /** Resize to the input size and normalise: [-1, 1] -> [0, 1] -> (x - mean) / std for RGB. */
  preprocess(images: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w, c] = images.shape;
      if (c !== this.inChannels) throw new Error(`vision encoder expects ${this.inChannels} channels, got ${c}`);
      const s = this.config.imageSize;
      let x = tf.cast(images, 'float32');
      if (h !== s || w !== s) {
        // Integer downscale: average pooling (no aliasing); otherwise bilinear with half-pixel centres.
        x = h === w && h > s && h % s === 0 ? tf.avgPool(x, h / s, h / s, 'valid') : tf.image.resizeBilinear(x, [s, s], false, true);
      }
      if (this.config.clipNormalize ?? this.inChannels === 3) {
        if (this.inChannels !== 3) throw new Error('CLIP normalisation needs 3 channels');
        const mean = tf.tensor1d(CLIP_MEAN as unknown as number[]);
        const std = tf.tensor1d(CLIP_STD as unknown as number[]);
        x = tf.div(tf.sub(tf.mul(tf.add(x, 1), 0.5), mean), std);
      }
      return x;
    });
  }

  /** Backbone outputs before the projection (HF's last_hidden_state and pooler_output). */
  features(images: tf.Tensor4D, t?: tf.Tensor1D): BackboneOutput & { normed: tf.Tensor3D } {
    return tf.tidy(() => {
      if (this.time_embed && !t) throw new Error('the noisy image encoder needs timesteps t');
      if (!this.time_embed && t) throw new Error('this image encoder is not time-conditioned');
      if (t && t.shape[0] !== images.shape[0]) throw new Error(`t has ${t.shape[0]} entries for ${images.shape[0]} images`);
      const shift = this.time_embed && t ? this.time_embed.apply(t) : undefined;
      return this.backbone.forward(this.preprocess(images), shift);
    });
  }

  /** pooled: projected class token [B, d]; sequence: post-LN'd patch tokens [B, N, width]. */
  encode(images: tf.Tensor4D, t?: tf.Tensor1D): EncoderOutput {
    return tf.tidy(() => {
      const { pooledOutput, normed } = this.features(images, t);
      const [b, n, w] = normed.shape;
      return {
        pooled: this.projection.apply(pooledOutput) as tf.Tensor2D,
        sequence: normed.slice([0, 1, 0], [b, n - 1, w]) as tf.Tensor3D,
      };
    });
  }

  /** Number of tokens in `sequence` (patches). */
  get sequenceLength(): number {
    return (this.config.imageSize / this.config.patchSize) ** 2;
  }

  /**
   * The CLIP backbone's variables (pretrained when loaded from CLIP; trained at the backbone learning rate).
   * A patch embedding over other than 3 channels (latents) can never come from CLIP, so it belongs to the head.
   */
  backboneParameters(): tf.Variable[] {
    const patch = this.backbone.embeddings.patch_embedding.weight;
    return this.backbone.parameters().filter((v) => this.inChannels === 3 || v !== patch);
  }

  /** Fresh layers: projection, (noisy encoder) timestep MLP, and a latent-channel patch embedding. */
  headParameters(): tf.Variable[] {
    const patch = this.inChannels === 3 ? [] : [this.backbone.embeddings.patch_embedding.weight];
    return [...patch, ...(this.time_embed?.parameters() ?? []), ...this.projection.parameters()];
  }
}
