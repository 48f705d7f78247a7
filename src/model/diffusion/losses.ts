/**
 * Pure math of the diffusion losses (improved-diffusion's losses.py): Gaussian KL, the discretised Gaussian
 * log-likelihood of 8-bit pixels in [-1, 1], and the continuous Gaussian log-likelihood used for latents.
 * Everything elementwise; callers reduce.
 */
import * as tf from '@tensorflow/tfjs-core';

/** KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats. */
export function normalKl(mean1: tf.Tensor, logvar1: tf.Tensor, mean2: tf.Tensor, logvar2: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(
      0.5,
      tf.add(
        tf.add(tf.sub(tf.sub(logvar2, logvar1), 1), tf.exp(tf.sub(logvar1, logvar2))),
        tf.mul(tf.square(tf.sub(mean1, mean2)), tf.exp(tf.neg(logvar2))),
      ),
    ),
  );
}

/** A fast approximation of the standard normal CDF (the same tanh form improved-diffusion uses). */
export function approxStandardNormalCdf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(0.5, tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))))))),
  );
}

/**
 * Log-likelihood of x (pixels in [-1, 1], quantised to 256 levels) under a Gaussian discretised into bins of
 * width 2/255; the end bins take the tails. `logScales` is log(std). Elementwise, in nats.
 */
export function discretizedGaussianLogLikelihood(x: tf.Tensor, means: tf.Tensor, logScales: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const centered = tf.sub(x, means);
    const invStdv = tf.exp(tf.neg(logScales));
    const cdfPlus = approxStandardNormalCdf(tf.mul(invStdv, tf.add(centered, 1 / 255)));
    const cdfMin = approxStandardNormalCdf(tf.mul(invStdv, tf.sub(centered, 1 / 255)));
    const logCdfPlus = tf.log(tf.maximum(cdfPlus, 1e-12));
    const logOneMinusCdfMin = tf.log(tf.maximum(tf.sub(1, cdfMin), 1e-12));
    const logCdfDelta = tf.log(tf.maximum(tf.sub(cdfPlus, cdfMin), 1e-12));
    return tf.where(
      tf.less(x, -0.999),
      logCdfPlus,
      tf.where(tf.greater(x, 0.999), logOneMinusCdfMin, logCdfDelta),
    );
  });
}

/** Continuous Gaussian log-density of x (for latents, which are not 8-bit data). `logScales` is log(std). Nats. */
export function gaussianLogLikelihood(x: tf.Tensor, means: tf.Tensor, logScales: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const z = tf.mul(tf.sub(x, means), tf.exp(tf.neg(logScales)));
    return tf.sub(tf.sub(-0.5 * Math.log(2 * Math.PI), logScales), tf.mul(0.5, tf.square(z)));
  });
}

/** Mean over every axis but the first: [B, ...] -> [B]. */
export function meanFlat(x: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.mean(x.reshape([x.shape[0]!, -1]), 1) as tf.Tensor1D);
}
