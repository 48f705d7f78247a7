/** Compositional fusion of the reference-image vector u with the text vector v (Eq. 1, gated fusion from QA). */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, Module, gelu } from './nn.js';

export class GatedFusion extends Module {
  readonly gate: Linear;
  readonly hidden: Linear;
  constructor(readonly dim: number) {
    super();
    this.gate = this.child('gate', new Linear(4 * dim, dim));
    this.hidden = this.child('hidden', new Linear(4 * dim, dim));
  }

  /** Eq. 1: g = sigmoid(W_g[u;v;u*v;u-v]+b_g), h = gelu(W_h[...]+b_h), f = g*h + (1-g)*u. u, v: [B, d]. */
  apply(u: tf.Tensor2D, v: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const x = tf.concat([u, v, tf.mul(u, v), tf.sub(u, v)], 1);
      const g = tf.sigmoid(this.gate.apply(x));
      const h = gelu(this.hidden.apply(x));
      return tf.add(tf.mul(g, h), tf.mul(tf.sub(1, g), u)) as tf.Tensor2D;
    });
  }
}
