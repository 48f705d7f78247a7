/**
 * The image codec the diffusion runs in: identity in pixel space, or an autoencoder's latent space
 * (src/model/autoencoder has AutoencoderCodec). The CLIP-style encoders always see pixels.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface ImageCodec {
  /** Channels of the codec space (3 for pixels). */
  readonly channels: number;
  /** Spatial reduction from pixels to the codec space (1 for pixels). */
  readonly downFactor: number;
  /** [-1, 1] pixels NHWC -> codec space. */
  encode(images: tf.Tensor4D): tf.Tensor4D;
  /** Codec space -> [-1, 1] pixels NHWC. */
  decode(z: tf.Tensor4D): tf.Tensor4D;
  /** Bound of codec-space values (pixels: 1): the diffusion clips its x0 estimates to it when sampling. */
  readonly range: number;
}

/** Pixel space: encode and decode are the identity (clones, so callers may dispose freely). */
export class PixelCodec implements ImageCodec {
  readonly channels = 3;
  readonly downFactor = 1;
  readonly range = 1;
  encode(images: tf.Tensor4D): tf.Tensor4D {
    return tf.clone(images);
  }
  decode(z: tf.Tensor4D): tf.Tensor4D {
    return tf.clone(z);
  }
}
