/**
 * The named blocks of the ADM U-Net (Dhariwal & Nichol): ResBlock with a scale-shift embedding, AttentionBlock
 * whose keys/values are augmented with an encoded context sequence (GLIDE's encoder_kv), Downsample, Upsample.
 * All tensors NHWC.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d, GroupNorm, Linear, Module, silu } from '../nn.js';

/** Sinusoidal timestep embedding [B, dim] (ADM's timestep_embedding, max period 10000). */
export function timestepEmbedding(t: tf.Tensor1D, dim: number, maxPeriod = 10000): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = tf.tensor1d(Float32Array.from({ length: half }, (_, i) => Math.exp((-Math.log(maxPeriod) * i) / half)));
    const args = tf.mul(t.toFloat().reshape([-1, 1]), freqs.reshape([1, -1]));
    let emb = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2) emb = tf.concat([emb, tf.zeros([emb.shape[0]!, 1])], 1);
    return emb as tf.Tensor2D;
  });
}

/** Residual block: GN-SiLU-conv, then GN scaled and shifted by the embedding ("scale-shift norm"), SiLU, zero-init conv. */
export class ResBlock extends Module {
  private readonly inNorm: GroupNorm;
  private readonly inConv: Conv2d;
  private readonly embLayer: Linear;
  private readonly outNorm: GroupNorm;
  private readonly outConv: Conv2d;
  private readonly skip: Conv2d | null;
  constructor(readonly inChannels: number, readonly outChannels: number, embDim: number, groups: number) {
    super();
    this.inNorm = this.child('in_norm', new GroupNorm(groups, inChannels));
    this.inConv = this.child('in_conv', new Conv2d(inChannels, outChannels, 3));
    this.embLayer = this.child('emb', new Linear(embDim, 2 * outChannels));
    this.outNorm = this.child('out_norm', new GroupNorm(groups, outChannels));
    this.outConv = this.child('out_conv', new Conv2d(outChannels, outChannels, 3, { zeroInit: true }));
    this.skip = inChannels === outChannels ? null : this.child('skip', new Conv2d(inChannels, outChannels, 1));
  }
  apply(x: tf.Tensor4D, emb: tf.Tensor2D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.inConv.apply(this.inNorm.apply(x, 'silu'));
      const e = this.embLayer.apply(silu(emb)).reshape([-1, 1, 1, 2 * this.outChannels]);
      const [scale, shift] = tf.split(e, 2, -1);
      h = tf.add(tf.mul(this.outNorm.apply(h), tf.add(1, scale!)), shift!) as tf.Tensor4D;
      h = this.outConv.apply(silu(h) as tf.Tensor4D);
      return tf.add(this.skip ? this.skip.apply(x) : x, h) as tf.Tensor4D;
    });
  }
}

/**
 * Multi-head self-attention over the H*W positions. With a context sequence [B, S, contextDim], its per-layer
 * projection to keys and values (width C) is prepended to the image's own keys/values (GLIDE's encoder_kv),
 * so every position can attend to the reference patches and text tokens.
 */
export class AttentionBlock extends Module {
  private readonly norm: GroupNorm;
  private readonly qkv: Linear;
  private readonly contextKv: Linear;
  private readonly proj: Linear;
  readonly heads: number;
  constructor(readonly channels: number, headChannels: number, contextDim: number, groups: number) {
    super();
    if (channels % headChannels !== 0) throw new Error(`attention: ${channels} channels not divisible by head width ${headChannels}`);
    this.heads = channels / headChannels;
    this.norm = this.child('norm', new GroupNorm(groups, channels));
    this.qkv = this.child('qkv', new Linear(channels, 3 * channels));
    this.contextKv = this.child('context_kv', new Linear(contextDim, 2 * channels));
    this.proj = this.child('proj_out', new Linear(channels, channels, { zeroInit: true }));
  }
  apply(x: tf.Tensor4D, context: tf.Tensor3D | null): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, hh, ww, c] = x.shape;
      const n = hh * ww;
      const ch = c / this.heads;
      const toHeads = (t: tf.Tensor, len: number): tf.Tensor4D =>
        t.reshape([b, len, this.heads, ch]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
      const qkv = this.qkv.apply(this.norm.apply(x).reshape([b, n, c]));
      const [q, k, v] = tf.split(qkv, 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
      let kh = toHeads(k, n);
      let vh = toHeads(v, n);
      if (context) {
        const s = context.shape[1];
        const [ek, ev] = tf.split(this.contextKv.apply(context), 2, -1) as [tf.Tensor, tf.Tensor];
        kh = tf.concat([toHeads(ek, s), kh], 2);
        vh = tf.concat([toHeads(ev, s), vh], 2);
      }
      const qh = toHeads(q, n);
      const w = tf.softmax(tf.mul(tf.matMul(qh, kh, false, true), 1 / Math.sqrt(ch)));
      const a = tf.matMul(w, vh).transpose([0, 2, 1, 3]).reshape([b, n, c]);
      return tf.add(x, this.proj.apply(a).reshape([b, hh, ww, c])) as tf.Tensor4D;
    });
  }
}

/** Strided 3x3 convolution halving the resolution. */
export class Downsample extends Module {
  private readonly conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.child('conv', new Conv2d(channels, channels, 3, { stride: 2 }));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return this.conv.apply(x);
  }
}

/** Nearest-neighbour x2 upsampling followed by a 3x3 convolution. */
export class Upsample extends Module {
  private readonly conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.child('conv', new Conv2d(channels, channels, 3));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      return this.conv.apply(tf.image.resizeNearestNeighbor(x, [2 * h, 2 * w]));
    });
  }
}
