/**
 * The denoising U-Net of CDD-ICM: ADM's architecture with the paper's three changes (Sec. 2.4):
 * the class embedding is replaced by the condition c (projected and added to the timestep embedding);
 * the input is x_t concatenated with the reference image along channels; every attention layer's keys/values are
 * augmented with the context sequence (reference patches ++ text tokens). The output has 2x channels:
 * epsilon and the variance interpolation v. Nothing about diffusion lives here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d, GroupNorm, Linear, Module, silu } from '../nn.js';
import { AttentionBlock, Downsample, ResBlock, Upsample, timestepEmbedding } from './blocks.js';

export interface UNetConfig {
  /** Channels of x_t (the codec's channels); the input has twice this (x_t ++ reference). */
  channels: number;
  /** Base width. */
  modelChannels: number;
  /** Width multiplier per resolution level, highest resolution first. */
  channelMult: number[];
  /** Residual blocks per level on the way down (one more on the way up, as ADM). */
  numResBlocks: number;
  /** Downsampling rates (1, 2, 4, ...) at which attention blocks are placed. */
  attentionResolutions: number[];
  /** Width of one attention head. */
  headChannels: number;
  /** GroupNorm groups (ADM uses 32). */
  groups: number;
  /** Dimension of the condition c. */
  condDim: number;
  /** Width of the context sequence the attention layers attend to. */
  contextDim: number;
  /**
   * Guidance distillation (Meng et al., CVPR 2023): the guidance scale phi is an input, embedded like the
   * timestep and added to the embedding, so one pass predicts the classifier-free-guided epsilon. The embedding's
   * last layer starts at zero: a fresh student is its teacher's conditional model at every phi.
   */
  guidanceEmbedding?: boolean;
}

type Block = ResBlock | AttentionBlock | Downsample | Upsample | Conv2d;

/** A sequence of blocks applied in order (ADM's TimestepEmbedSequential). */
class Sequential extends Module {
  readonly blocks: Block[] = [];
  add<B extends Block>(b: B): B {
    this.blocks.push(this.child(String(this.blocks.length), b));
    return b;
  }
  apply(x: tf.Tensor4D, emb: tf.Tensor2D, context: tf.Tensor3D | null): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      for (const b of this.blocks) {
        if (b instanceof ResBlock) h = b.apply(h, emb);
        else if (b instanceof AttentionBlock) h = b.apply(h, context);
        else h = b.apply(h);
      }
      return h;
    });
  }
}

/** phi is multiplied by this before its sinusoidal embedding (timesteps span 0..999; phi about 1..10). */
const GUIDANCE_EMBED_SCALE = 100;

export class UNet extends Module {
  private readonly timeEmbed1: Linear;
  private readonly timeEmbed2: Linear;
  private readonly condEmbed: Linear;
  private readonly guidanceEmbed: [Linear, Linear] | null;
  private readonly inputBlocks: Sequential[] = [];
  private readonly middle: Sequential;
  private readonly outputBlocks: Sequential[] = [];
  private readonly outNorm: GroupNorm;
  private readonly outConv: Conv2d;
  readonly embDim: number;

  constructor(readonly config: UNetConfig) {
    super();
    const c = config;
    const mc = c.modelChannels;
    this.embDim = 4 * mc;
    this.timeEmbed1 = this.child('time_embed_1', new Linear(mc, this.embDim));
    this.timeEmbed2 = this.child('time_embed_2', new Linear(this.embDim, this.embDim));
    // In place of ADM's class embedding: a projection of the fusion result c.
    this.condEmbed = this.child('cond_embed', new Linear(c.condDim, this.embDim));
    this.guidanceEmbed = c.guidanceEmbedding
      ? [this.child('guidance_embed_1', new Linear(mc, this.embDim)), this.child('guidance_embed_2', new Linear(this.embDim, this.embDim, { zeroInit: true }))]
      : null;
    const attn = (ch: number): AttentionBlock => new AttentionBlock(ch, Math.min(c.headChannels, ch), c.contextDim, c.groups);

    const seq = (list: Sequential[], prefix: string): Sequential => {
      const s = this.child(`${prefix}.${list.length}`, new Sequential());
      list.push(s);
      return s;
    };
    seq(this.inputBlocks, 'input_blocks').add(new Conv2d(2 * c.channels, mc, 3));
    const skipChannels = [mc];
    let ch = mc;
    let ds = 1;
    c.channelMult.forEach((mult, level) => {
      for (let i = 0; i < c.numResBlocks; i++) {
        const s = seq(this.inputBlocks, 'input_blocks');
        s.add(new ResBlock(ch, mult * mc, this.embDim, c.groups));
        ch = mult * mc;
        if (c.attentionResolutions.includes(ds)) s.add(attn(ch));
        skipChannels.push(ch);
      }
      if (level !== c.channelMult.length - 1) {
        seq(this.inputBlocks, 'input_blocks').add(new Downsample(ch));
        skipChannels.push(ch);
        ds *= 2;
      }
    });
    this.middle = this.child('middle', new Sequential());
    this.middle.add(new ResBlock(ch, ch, this.embDim, c.groups));
    this.middle.add(attn(ch));
    this.middle.add(new ResBlock(ch, ch, this.embDim, c.groups));
    [...c.channelMult.entries()].reverse().forEach(([level, mult]) => {
      for (let i = 0; i <= c.numResBlocks; i++) {
        const s = seq(this.outputBlocks, 'output_blocks');
        s.add(new ResBlock(ch + skipChannels.pop()!, mult * mc, this.embDim, c.groups));
        ch = mult * mc;
        if (c.attentionResolutions.includes(ds)) s.add(attn(ch));
        if (level > 0 && i === c.numResBlocks) {
          s.add(new Upsample(ch));
          ds /= 2;
        }
      }
    });
    this.outNorm = this.child('out_norm', new GroupNorm(c.groups, ch));
    this.outConv = this.child('out_conv', new Conv2d(ch, 2 * c.channels, 3, { zeroInit: true }));
  }

  /**
   * x: x_t [B, h, w, C]; reference: the reference image in the same codec space [B, h, w, C]; t: [B] timesteps
   * (original indices); cond: c [B, condDim]; context: [B, S, contextDim] or null; guidance: phi [B] (a
   * guidance-distilled U-Net only; required there). Returns [B, h, w, 2C].
   */
  apply(x: tf.Tensor4D, reference: tf.Tensor4D, t: tf.Tensor1D, cond: tf.Tensor2D, context: tf.Tensor3D | null, guidance?: tf.Tensor1D): tf.Tensor4D {
    return tf.tidy(() => {
      const temb = this.timeEmbed2.apply(silu(this.timeEmbed1.apply(timestepEmbedding(t, this.config.modelChannels))));
      let emb = tf.add(temb, this.condEmbed.apply(cond)) as tf.Tensor2D;
      if (this.guidanceEmbed) {
        if (!guidance) throw new Error('a guidance-distilled U-Net needs the guidance scale of every item');
        // phi in [1, ~10] on the timestep embedding's frequency scale (Meng et al. embed w with Fourier features).
        const g = timestepEmbedding(tf.mul(guidance, GUIDANCE_EMBED_SCALE) as tf.Tensor1D, this.config.modelChannels);
        emb = tf.add(emb, this.guidanceEmbed[1].apply(silu(this.guidanceEmbed[0].apply(g)))) as tf.Tensor2D;
      }
      let h = tf.concat([x, reference], 3) as tf.Tensor4D;
      const skips: tf.Tensor4D[] = [];
      for (const b of this.inputBlocks) {
        h = b.apply(h, emb, context);
        skips.push(h);
      }
      h = this.middle.apply(h, emb, context);
      for (const b of this.outputBlocks) h = b.apply(tf.concat([h, skips.pop()!], 3) as tf.Tensor4D, emb, context);
      return this.outConv.apply(this.outNorm.apply(h, 'silu'));
    });
  }
}
