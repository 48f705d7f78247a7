import type * as tf from '@tensorflow/tfjs-core';

/** What both encoders return (docs/ARCHITECTURE.md, "Model"); a type alias so tf.tidy can return it. */
export type EncoderOutput = {
  /** Projected pooled vector [B, d]. */
  pooled: tf.Tensor2D;
  /** Per-patch / per-token representations [B, S, width] for the U-Net's attention. */
  sequence: tf.Tensor3D;
};

/** The backbone's own outputs, named as Hugging Face names them (before the fresh projection). */
export type BackboneOutput = {
  lastHiddenState: tf.Tensor3D;
  pooledOutput: tf.Tensor2D;
};
