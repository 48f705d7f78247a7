/**
 * CDD-ICM (Sec. 2): image, text and noisy image encoders, gated fusion, the conditional U-Net, the Gaussian
 * diffusion and the ICM heads, tied together with the codec the diffusion runs in. This file owns the
 * training-facing API (`losses`, `parameterGroups`) and the pieces sampling needs (`encodeCondition`, `denoise`,
 * `matchingScore`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { TextEncoder, VisionEncoder } from './encoders/index.js';
import { idsTensor, type Tokenizer } from './tokenizer/index.js';
import { loadClipTokenizer, loadClipWeights, readClipConfig } from './clip/index.js';
import { GaussianDiffusion, cosineBetas, stopGradient } from './diffusion/index.js';
import { GatedFusion } from './fusion.js';
import { IcmHead, cosineSimilarity } from './icm.js';
import { PixelCodec, type ImageCodec } from './codec.js';
import { UNet } from './unet/index.js';
import { Linear, Module, resetSeed } from './nn.js';
import { diffusionShape, modelConfig, validateModelConfig, type ModelConfig } from './config.js';

/** One training batch of turns (teacher forcing): pixels in [-1, 1], NHWC. */
export interface TurnBatch {
  reference: tf.Tensor4D;
  target: tf.Tensor4D;
  texts: string[];
  /**
   * Per turn, instructions the target must NOT match with the same reference (e.g. the spatial relation
   * mirrored): one, several, or none (null / []). Extra negatives of L_icm and L_n-icm, so the condition has to
   * encode what tells them apart.
   */
  hardNegativeTexts?: (string | readonly string[] | null)[];
  /**
   * Per item, the reference already in codec space, read where `referenceLatentMask` is 1 instead of encoding
   * `reference`: the model's own previous canvas, handed on as a latent as at inference (scheduled sampling).
   */
  referenceLatent?: tf.Tensor4D;
  referenceLatentMask?: tf.Tensor1D;
}

export interface LossOptions {
  /** 1: L_icm; 2: L_cdd + delta L_icm (Eq. 13); 3: L_n-icm. */
  stage: 1 | 2 | 3;
  /** Weight of L_vlb in L_cdd (Eq. 11); the paper uses 1.5. */
  gamma?: number;
  /** Weight of L_icm in L_joint (Eq. 13); the paper uses 0.1. */
  delta?: number;
  /** P2 timestep weighting of L_mse (gaussianDiffusion's p2Weight); 0, the paper's uniform weighting, by default. */
  p2Gamma?: number;
  /** lambda: probability of replacing the condition by the null condition (stage 2); the paper uses 0.2. */
  conditionDropout?: number;
  /** Uniform [0, 1) source for timesteps, noise seeds and condition dropout (deterministic when seeded). */
  rng?: () => number;
}

/** Scalars of one loss evaluation; `total` is what the stage minimises. */
export interface Losses {
  total: tf.Scalar;
  mse?: tf.Scalar;
  vlb?: tf.Scalar;
  cdd?: tf.Scalar;
  icm?: tf.Scalar;
  nicm?: tf.Scalar;
}

export type ParameterGroupName = 'imageEncoder' | 'textEncoder' | 'fusion' | 'unet' | 'noisyImageEncoder' | 'icm';
export interface ParameterGroup {
  /** Every trainable variable of the group. */
  vars: tf.Variable[];
  /** The subset that is a pretrained backbone (trained at lr * eta); the rest are fresh heads. */
  backbone: tf.Variable[];
}

/** The encoded condition of a batch: c (Eq. 1) and the context sequence for the U-Net's attention. */
export interface Condition {
  /** u: the reference image's pooled vector [B, d]. */
  u: tf.Tensor2D;
  /** v: the text's pooled vector [B, d]. */
  v: tf.Tensor2D;
  /** c = f(u, v) [B, d]. */
  c: tf.Tensor2D;
  /** Reference patches ++ text tokens, each projected to contextDim: [B, S, contextDim]. */
  context: tf.Tensor3D;
}

/** Projects the reference's patch sequence and the text's token sequence to one width and concatenates them. */
class ContextProjection extends Module {
  readonly image: Linear;
  readonly text: Linear;
  constructor(imageWidth: number, textWidth: number, dim: number) {
    super();
    this.image = this.child('image', new Linear(imageWidth, dim));
    this.text = this.child('text', new Linear(textWidth, dim));
  }
  apply(imageSeq: tf.Tensor3D, textSeq: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => tf.concat([this.image.apply(imageSeq), this.text.apply(textSeq)], 1) as tf.Tensor3D);
  }
}

export class CddIcm extends Module {
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  readonly codec: ImageCodec;
  readonly imageEncoder: VisionEncoder;
  readonly textEncoder: TextEncoder;
  readonly noisyImageEncoder: VisionEncoder;
  readonly fusion: GatedFusion;
  readonly contextProjection: ContextProjection;
  readonly unet: UNet;
  readonly icm: IcmHead;
  readonly nicm: IcmHead;
  readonly diffusion: GaussianDiffusion;
  /** Codec-space size and channels. */
  readonly latentSize: number;
  readonly latentChannels: number;

  /**
   * The text encoder's vocabulary and end token follow the tokenizer. With `config.latent`, `codec` must be given
   * and match its channels and downFactor; otherwise the model runs in pixel space.
   */
  constructor(config: ModelConfig, opts: { tokenizer: Tokenizer; codec?: ImageCodec }) {
    super();
    const cfg = structuredClone(config);
    if (opts.tokenizer.kind !== cfg.tokenizer) throw new Error(`model wants a ${cfg.tokenizer} tokenizer, got ${opts.tokenizer.kind}`);
    cfg.text = { ...cfg.text, vocabSize: opts.tokenizer.vocabSize, contextLength: opts.tokenizer.contextLength, eosTokenId: opts.tokenizer.endId };
    validateModelConfig(cfg);
    this.config = cfg;
    this.tokenizer = opts.tokenizer;
    const codec = opts.codec ?? new PixelCodec();
    const want = cfg.latent ?? { channels: 3, downFactor: 1 };
    if (codec.channels !== want.channels || codec.downFactor !== want.downFactor) {
      throw new Error(`codec has ${codec.channels} channels / downFactor ${codec.downFactor}, config wants ${want.channels} / ${want.downFactor}`);
    }
    this.codec = codec;
    const { size, channels } = diffusionShape(cfg);
    this.latentSize = size;
    this.latentChannels = channels;
    resetSeed(cfg.seed);
    const d = cfg.projectionDim;
    this.imageEncoder = this.child('image_encoder', new VisionEncoder(cfg.vision, d));
    this.textEncoder = this.child('text_encoder', new TextEncoder(cfg.text, d));
    this.noisyImageEncoder = this.child('noisy_image_encoder', new VisionEncoder(cfg.noisyVision, d));
    this.fusion = this.child('fusion', new GatedFusion(d));
    this.contextProjection = this.child('context', new ContextProjection(cfg.vision.width, cfg.text.width, cfg.contextDim));
    this.unet = this.child('unet', new UNet({ ...cfg.unet, channels, condDim: d, contextDim: cfg.contextDim }));
    this.icm = this.child('icm', new IcmHead());
    this.nicm = this.child('nicm', new IcmHead());
    this.diffusion = new GaussianDiffusion(cosineBetas(cfg.diffusion.timesteps, cfg.diffusion.maxBeta), {
      dataKind: cfg.latent ? 'continuous' : 'pixels',
      x0Range: codec.range,
    });
  }

  /** Fused conditions of the batch's hard-negative instructions (with their turns' references), if any. */
  private hardNegativeConditions(batch: TurnBatch): tf.Tensor2D | undefined {
    const h = batch.hardNegativeTexts;
    if (!h) return undefined;
    if (h.length !== batch.texts.length) throw new Error('batch: hardNegativeTexts and texts differ in length');
    const pairs = h.flatMap((t, i) => (t === null ? [] : typeof t === 'string' ? [t] : t).map((text) => ({ i, text })));
    if (pairs.length === 0) return undefined;
    return this.encodeCondition(tf.gather(batch.reference, pairs.map((p) => p.i)), pairs.map((p) => p.text)).c;
  }

  /** The batch's references in codec space: encoded, or the given latents where the mask says so. */
  private referenceLatents(batch: TurnBatch): tf.Tensor4D {
    const encoded = this.encodeImage(batch.reference);
    const given = batch.referenceLatent;
    const mask = batch.referenceLatentMask;
    if (!given || !mask) return encoded;
    if (given.shape.join() !== encoded.shape.join()) throw new Error(`batch: referenceLatent is ${given.shape.join('x')}, the codec gives ${encoded.shape.join('x')}`);
    const m = mask.reshape([mask.shape[0], 1, 1, 1]);
    return tf.add(tf.mul(given, m), tf.mul(encoded, tf.sub(1, m))) as tf.Tensor4D;
  }

  /** Token ids [B, L] for texts. */
  tokenize(texts: string[]): tf.Tensor2D {
    return idsTensor(this.tokenizer.encode(texts));
  }

  /** Pixels at the model's image size (bilinear resize when they differ). */
  private pixels(x: tf.Tensor4D): tf.Tensor4D {
    const s = this.config.imageSize;
    if (x.shape[1] === s && x.shape[2] === s) return x;
    return tf.image.resizeBilinear(x, [s, s], false, true);
  }

  /** Pixels [-1, 1] -> codec space at the diffusion's size. */
  encodeImage(pixels: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.codec.encode(this.pixels(pixels)));
  }

  /** Encode reference images and texts into u, v, c = f(u, v) (Eq. 1) and the attention context. */
  encodeCondition(reference: tf.Tensor4D, texts: string[] | tf.Tensor2D): Condition {
    return tf.tidy(() => {
      const enc = Array.isArray(texts) ? this.tokenizer.encode(texts) : null;
      const ids = enc ? idsTensor(enc) : (texts as tf.Tensor2D);
      const img = this.imageEncoder.encode(this.pixels(reference));
      const txt = this.textEncoder.encode(ids, enc?.endIndex);
      const c = this.fusion.apply(img.pooled, txt.pooled);
      const context = this.contextProjection.apply(img.sequence, txt.sequence);
      return { u: img.pooled, v: txt.pooled, c, context };
    });
  }

  /**
   * The U-Net: x_t and the codec-space reference -> [B, h, w, 2C] (epsilon ++ v). t are original timesteps.
   * A guidance-distilled model (`guidanceDistilled`) also takes phi per item and returns the guided epsilon.
   */
  denoise(xt: tf.Tensor4D, referenceLatent: tf.Tensor4D, t: tf.Tensor1D, c: tf.Tensor2D, context: tf.Tensor3D, guidance?: tf.Tensor1D): tf.Tensor4D {
    return this.unet.apply(xt, referenceLatent, t, c, context, guidance);
  }

  /** True for a guidance-distilled student: one U-Net pass gives Eq. 15's guided epsilon for the phi it is given. */
  get guidanceDistilled(): boolean {
    return this.config.unet.guidanceEmbedding === true;
  }

  /** The N-ICM matching score cos(noisy encoder(x_t, t), c) per item: what ICM guidance climbs (Eq. 14). */
  matchingScore(xt: tf.Tensor4D, t: tf.Tensor1D, c: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => cosineSimilarity(this.noisyImageEncoder.encode(xt, t).pooled, c));
  }

  /**
   * The clean-image ICM score cos(image encoder(image), c) per item (the stage-1 / stage-2 L_icm's similarity):
   * how well a finished image matches (reference, instruction). Pixels in [-1, 1].
   */
  compositionalMatch(reference: tf.Tensor4D, texts: string[], images: tf.Tensor4D): tf.Tensor1D {
    return tf.tidy(() => this.conditionMatch(images, this.encodeCondition(reference, texts).c));
  }

  /** compositionalMatch against an already fused condition c ([N, d], or [1, d] for every image). */
  conditionMatch(images: tf.Tensor4D, c: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => {
      const pooled = this.imageEncoder.encode(this.pixels(images)).pooled;
      return cosineSimilarity(pooled, c.shape[0] === pooled.shape[0] ? c : (tf.tile(c, [pooled.shape[0], 1]) as tf.Tensor2D));
    });
  }

  /** Gradient of the summed matching score w.r.t. x_t (items are independent, so this is per-item). */
  matchingScoreGrad(xt: tf.Tensor4D, t: tf.Tensor1D, c: tf.Tensor2D): tf.Tensor4D {
    return tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(this.matchingScore(x as tf.Tensor4D, t, c)))(xt) as tf.Tensor4D);
  }

  /**
   * Eq. 14's mean shift: psi * Sigma * grad_{x_t} cos(noisy encoder(x_t, t), c), per item. `logVariance` is
   * log Sigma (Eq. 9) broadcastable to x_t; `psi` one scale per item.
   */
  icmGuidanceShift(xt: tf.Tensor4D, t: tf.Tensor1D, c: tf.Tensor2D, logVariance: tf.Tensor, psi: number[]): tf.Tensor4D {
    return tf.tidy(() => {
      const grad = this.matchingScoreGrad(xt, t, c);
      const scale = tf.tensor4d(Float32Array.from(psi), [psi.length, 1, 1, 1]);
      return tf.mul(tf.mul(scale, tf.exp(logVariance)), grad) as tf.Tensor4D;
    });
  }

  /** Loss of one training stage (Sec. 2.6) on a batch. */
  losses(batch: TurnBatch, opts: LossOptions): Losses {
    const rng = opts.rng ?? Math.random;
    const n = batch.texts.length;
    if (batch.reference.shape[0] !== n || batch.target.shape[0] !== n) throw new Error('batch: reference, target and texts differ in length');
    const T = this.diffusion.numTimesteps;
    const timesteps = (): tf.Tensor1D => tf.tensor1d(Int32Array.from({ length: n }, () => Math.min(T - 1, Math.floor(rng() * T))), 'int32');
    const seed = (): number => Math.floor(rng() * 2 ** 31);
    return tf.tidy(() => {
      if (opts.stage === 1) {
        const cond = this.encodeCondition(batch.reference, batch.texts);
        const z = this.imageEncoder.encode(this.pixels(batch.target)).pooled;
        const icm = this.icm.loss(cond.c, z, this.hardNegativeConditions(batch));
        return { total: icm, icm };
      }
      if (opts.stage === 2) {
        const gamma = opts.gamma ?? 1.5;
        const delta = opts.delta ?? 0.1;
        const lambda = opts.conditionDropout ?? 0.2;
        const cond = this.encodeCondition(batch.reference, batch.texts);
        const z = this.imageEncoder.encode(this.pixels(batch.target)).pooled;
        const icm = this.icm.loss(cond.c, z, this.hardNegativeConditions(batch));
        // Classifier-free training: with probability lambda the condition is the null one (c = 0, empty context).
        const keep = tf.tensor1d(Float32Array.from({ length: n }, () => (rng() < lambda ? 0 : 1)));
        const c = tf.mul(cond.c, keep.reshape([n, 1])) as tf.Tensor2D;
        const context = tf.mul(cond.context, keep.reshape([n, 1, 1])) as tf.Tensor3D;
        const x0 = this.encodeImage(batch.target);
        const ref = this.referenceLatents(batch);
        const t = timesteps();
        const noise = tf.randomNormal(x0.shape, 0, 1, 'float32', seed()) as tf.Tensor4D;
        const d = this.diffusion.trainingLosses((xt, tt) => this.denoise(xt, ref, tt, c, context), x0, t, { noise, gamma, p2Gamma: opts.p2Gamma ?? 0 });
        const mse = tf.mean(d.mse) as tf.Scalar;
        const vlb = tf.mean(d.vlb) as tf.Scalar;
        const cdd = tf.mean(d.loss) as tf.Scalar;
        const total = tf.add(cdd, tf.mul(delta, icm)) as tf.Scalar;
        return { total, mse, vlb, cdd, icm };
      }
      // Stage 3: encoders and fusion are frozen; only the noisy image encoder (and its temperature) learn.
      const cond = this.encodeCondition(batch.reference, batch.texts);
      const c = stopGradient(cond.c) as tf.Tensor2D;
      const x0 = this.encodeImage(batch.target);
      const t = timesteps();
      const noise = tf.randomNormal(x0.shape, 0, 1, 'float32', seed()) as tf.Tensor4D;
      const xt = this.diffusion.qSample(x0, t, noise);
      const zn = this.noisyImageEncoder.encode(xt, t).pooled;
      const hard = this.hardNegativeConditions(batch);
      const nicm = this.nicm.loss(c, zn, hard ? (stopGradient(hard) as tf.Tensor2D) : undefined);
      return { total: nicm, nicm };
    });
  }

  /** Trainable variables by component; `backbone` are the pretrained encoder trunks (trained at lr * eta). */
  parameterGroups(): Record<ParameterGroupName, ParameterGroup> {
    return {
      imageEncoder: { vars: this.imageEncoder.parameters(), backbone: this.imageEncoder.backboneParameters() },
      textEncoder: { vars: this.textEncoder.parameters(), backbone: this.textEncoder.backboneParameters() },
      fusion: { vars: this.fusion.parameters(), backbone: [] },
      unet: { vars: [...this.contextProjection.parameters(), ...this.unet.parameters()], backbone: [] },
      // The N-ICM temperature belongs to stage 3 with the noisy encoder.
      noisyImageEncoder: {
        vars: [...this.noisyImageEncoder.parameters(), ...this.nicm.parameters()],
        backbone: this.noisyImageEncoder.backboneParameters(),
      },
      icm: { vars: this.icm.parameters(), backbone: [] },
    };
  }

  /** The groups a stage trains (Sec. 2.6). */
  stageGroups(stage: 1 | 2 | 3): ParameterGroupName[] {
    if (stage === 1) return ['imageEncoder', 'textEncoder', 'fusion', 'icm'];
    if (stage === 2) return ['imageEncoder', 'textEncoder', 'fusion', 'unet', 'icm'];
    return ['noisyImageEncoder'];
  }

  override dispose(): void {
    super.dispose();
    this.diffusion.dispose();
  }
}

/** A fresh model from a preset name or a config. */
export function createModel(config: ModelConfig | string, opts: { tokenizer: Tokenizer; codec?: ImageCodec }): CddIcm {
  return new CddIcm(typeof config === 'string' ? modelConfig(config) : config, opts);
}

/**
 * A model whose image, text (and, in pixel space, noisy image) encoder backbones are a pretrained Hugging Face
 * CLIP checkpoint in a local folder (the paper: CLIP ViT-B/32); projections, fusion, U-Net and heads are fresh.
 * Encoder sizes and the BPE tokenizer come from the folder; everything else from `config`.
 */
export async function createModelFromClip(
  clipDir: string,
  config: ModelConfig | string = 'clip-vit-b32',
  opts: { codec?: ImageCodec } = {},
): Promise<CddIcm> {
  const hf = await readClipConfig(clipDir);
  if (!hf.vision || !hf.text) throw new Error(`${clipDir}: needs both vision and text CLIP configs`);
  const cfg = typeof config === 'string' ? modelConfig(config) : structuredClone(config);
  cfg.tokenizer = 'clip-bpe';
  cfg.vision = hf.vision;
  cfg.text = hf.text;
  // In pixel space the noisy encoder has CLIP's shape too and starts from the same weights (plus a fresh
  // timestep MLP); on latents its input differs, so it stays as configured and starts fresh.
  if (!cfg.latent) cfg.noisyVision = { ...hf.vision, timeConditioned: true };
  const tokenizer = await loadClipTokenizer(clipDir, hf.text.contextLength);
  const model = new CddIcm(cfg, { tokenizer, ...(opts.codec ? { codec: opts.codec } : {}) });
  const vision = cfg.latent ? [model.imageEncoder] : [model.imageEncoder, model.noisyImageEncoder];
  await loadClipWeights(clipDir, { vision, text: model.textEncoder });
  return model;
}
