/**
 * CLIP's pre-LN transformer blocks. Parameter names follow Hugging Face's CLIPEncoderLayer
 * (self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1/fc2, layer_norm2) so that CLIP checkpoints map one to one.
 */
import * as tf from '@tensorflow/tfjs-core';
// Registers tensor methods and gradients in every runtime (see runtime.ts).
import { Module, Linear, LayerNorm, gelu, quickGelu } from '../nn.js';
import type { HiddenAct } from './config.js';

/** A numbered list of child modules ("0", "1", ...), like torch.nn.ModuleList. */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
}

/** Multi-head self-attention; an additive mask [S, S] (0 or a large negative) may be given. */
export class SelfAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  readonly headDim: number;
  constructor(readonly width: number, readonly heads: number) {
    super();
    if (width % heads !== 0) throw new Error(`attention width ${width} not divisible by ${heads} heads`);
    this.headDim = width / heads;
    this.q_proj = this.child('q_proj', new Linear(width, width));
    this.k_proj = this.child('k_proj', new Linear(width, width));
    this.v_proj = this.child('v_proj', new Linear(width, width));
    this.out_proj = this.child('out_proj', new Linear(width, width));
  }

  apply(x: tf.Tensor3D, mask?: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, s] = x.shape;
      const split = (t: tf.Tensor) => t.reshape([b, s, this.heads, this.headDim]).transpose([0, 2, 1, 3]);
      // CLIP scales the queries before the product.
      const q = split(tf.mul(this.q_proj.apply(x), 1 / Math.sqrt(this.headDim)));
      const k = split(this.k_proj.apply(x));
      const v = split(this.v_proj.apply(x));
      let scores = tf.matMul(q, k, false, true); // [B, h, S, S]
      if (mask) scores = tf.add(scores, mask);
      const o = tf.matMul(tf.softmax(scores), v); // [B, h, S, dh]
      return this.out_proj.apply(o.transpose([0, 2, 1, 3]).reshape([b, s, this.width])) as tf.Tensor3D;
    });
  }
}

/** Apply a CLIP activation; 'gelu' is the exact erf form Hugging Face uses, nn.ts's gelu the tanh approximation. */
export function activation(act: HiddenAct, x: tf.Tensor): tf.Tensor {
  switch (act) {
    case 'quick_gelu':
      return quickGelu(x);
    case 'gelu_tanh':
      return gelu(x);
    case 'gelu':
      return tf.tidy(() => tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
  }
}

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(width: number, hidden: number, readonly act: HiddenAct = 'quick_gelu') {
    super();
    this.fc1 = this.child('fc1', new Linear(width, hidden));
    this.fc2 = this.child('fc2', new Linear(hidden, width));
  }
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = this.fc1.apply(x);
      return this.fc2.apply(activation(this.act, h));
    });
  }
}

/** x + attn(LN1(x)); x + mlp(LN2(x)). */
export class EncoderLayer extends Module {
  readonly self_attn: SelfAttention;
  readonly layer_norm1: LayerNorm;
  readonly mlp: Mlp;
  readonly layer_norm2: LayerNorm;
  constructor(width: number, heads: number, mlpDim: number, act: HiddenAct, eps: number) {
    super();
    this.self_attn = this.child('self_attn', new SelfAttention(width, heads));
    this.layer_norm1 = this.child('layer_norm1', new LayerNorm(width, eps));
    this.mlp = this.child('mlp', new Mlp(width, mlpDim, act));
    this.layer_norm2 = this.child('layer_norm2', new LayerNorm(width, eps));
  }
  apply(x: tf.Tensor3D, mask?: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.self_attn.apply(this.layer_norm1.apply(x) as tf.Tensor3D, mask)) as tf.Tensor3D;
      return tf.add(h, this.mlp.apply(this.layer_norm2.apply(h))) as tf.Tensor3D;
    });
  }
}

/** The stack of layers, named "layers.N.*" as in Hugging Face's CLIPEncoder. */
export class TransformerStack extends Module {
  readonly layers: ModuleList<EncoderLayer>;
  constructor(width: number, layers: number, heads: number, mlpDim: number, act: HiddenAct, eps: number) {
    super();
    this.layers = this.child(
      'layers',
      new ModuleList(Array.from({ length: layers }, () => new EncoderLayer(width, heads, mlpDim, act, eps))),
    );
  }
  apply(x: tf.Tensor3D, mask?: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => this.layers.items.reduce((h, layer) => layer.apply(h, mask), x));
  }
}

/** Additive causal mask [S, S]: 0 on and below the diagonal, a large negative above (future tokens hidden). */
export function causalMask(s: number): tf.Tensor2D {
  return tf.tidy(() => {
    const lower = tf.linalg.bandPart(tf.ones([s, s]), -1, 0);
    return tf.mul(tf.sub(1, lower), -1e9) as tf.Tensor2D;
  });
}

/**
 * Sinusoidal timestep embedding as in ADM (cos half, then sin half); t may be fractional.
 * Returns [B, dim].
 */
export function timestepEmbedding(t: tf.Tensor1D, dim: number, maxPeriod = 10000): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = tf.exp(tf.mul(tf.range(0, half, 1, 'float32'), -Math.log(maxPeriod) / half));
    const args = tf.mul(tf.cast(t, 'float32').expandDims(1), freqs.expandDims(0));
    let emb = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2 === 1) emb = tf.pad(emb, [[0, 0], [0, 1]]);
    return emb as tf.Tensor2D;
  });
}
