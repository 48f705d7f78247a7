/**
 * Image compositional matching (Eq. 12): a symmetric InfoNCE over the batch between fusion results and target
 * image vectors with cosine similarities and a trainable temperature tau (stored as log tau, initialised to
 * log e^-1 = -1). The same head, with its own temperature, serves N-ICM on noisy targets.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Module } from './nn.js';

/** Row-wise L2 normalisation. */
export function l2Normalize(x: tf.Tensor2D, eps = 1e-8): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.add(tf.norm(x, 'euclidean', 1, true), eps)) as tf.Tensor2D);
}

/** S[i, j] = cos(a_i, b_j). */
export function cosineSimilarityMatrix(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.matMul(l2Normalize(a), l2Normalize(b), false, true));
}

/** Per-row cos(a_i, b_i): the matching score used by ICM guidance. */
export function cosineSimilarity(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(l2Normalize(a), l2Normalize(b)), 1) as tf.Tensor1D);
}

/**
 * Eq. 12 on a similarity matrix: (1/n) tr(-log softmax(S/tau)) + (1/n) tr(-log softmax(S^T/tau)).
 * `hard` [m, n], optional, holds cos(extra condition k, target j) for conditions that must not match any target
 * (e.g. the instruction with its spatial relation mirrored): each target's softmax then runs over the n batch
 * conditions and the m extra ones. Without it this is Eq. 12 exactly.
 */
export function symmetricInfoNce(s: tf.Tensor2D, logTau: tf.Tensor, hard?: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const n = s.shape[0];
    const scale = tf.exp(tf.neg(logTau));
    const logits = tf.mul(s, scale) as tf.Tensor2D;
    const eye = tf.eye(n);
    const rows = tf.sum(tf.mul(tf.logSoftmax(logits, 1), eye));
    let perTarget = tf.transpose(logits) as tf.Tensor2D;
    if (hard && hard.shape[0] > 0) perTarget = tf.concat([perTarget, tf.transpose(tf.mul(hard, scale))], 1) as tf.Tensor2D;
    const cols = tf.sum(tf.mul(tf.slice(tf.logSoftmax(perTarget, 1), [0, 0], [n, n]), eye));
    return tf.div(tf.neg(tf.add(rows, cols)), n) as tf.Scalar;
  });
}

export class IcmHead extends Module {
  /** log tau; tau starts at e^-1 as in the paper. */
  readonly logTau: tf.Variable;
  constructor() {
    super();
    this.logTau = this.param('log_tau', tf.scalar(-1));
  }
  get temperature(): number {
    return Math.exp(this.logTau.dataSync()[0]!);
  }
  /** L_icm between fusion results f [n, d] and target vectors z [n, d]; `hard` [m, d]: extra negative conditions. */
  loss(f: tf.Tensor2D, z: tf.Tensor2D, hard?: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => symmetricInfoNce(cosineSimilarityMatrix(f, z), this.logTau, hard ? cosineSimilarityMatrix(hard, z) : undefined));
  }
}
