/**
 * How much of a scene survives the model's image codec: the detector's scores on every ground-truth turn against
 * its scores on decode(encode(turn)), and on further round trips. A latent model's images are its decoder's, so
 * what one round trip loses bounds what the model can score, whatever the U-Net does; repeated round trips show
 * what re-encoding each result as the next reference costs (docs/TRAINING.md, "Fine-tuning a trained model's
 * decoder").
 */
import * as tf from '@tensorflow/tfjs-core';
import { imagesToTensor, renderScene, tensorToImages, type Episode, type RgbImage, type SceneRenderOptions } from '../data/index.js';
import type { ImageCodec } from '../model/index.js';
import type { ObjectDetector } from './detector.js';
import { locate } from './datasets.js';
import { meanScores, precisionRecallF1, type PrfScores } from './metrics.js';

export interface CodecRoundScores {
  /** Round trips done (0: the ground truth itself). */
  round: number;
  /** Detections against the scene's annotations, averaged over the images. */
  scores: PrfScores;
  /** Annotated objects the detector no longer finds, by label (most first). */
  lost: [label: string, count: number][];
}

export interface CodecCheckReport {
  images: number;
  rounds: CodecRoundScores[];
}

export interface CodecCheckOptions {
  /** Round trips (default 1). */
  rounds?: number;
  /** Images per codec / detector call (default 32). */
  batchSize?: number;
  render?: SceneRenderOptions;
  /** After each batch: images done and in total. */
  onProgress?(done: number, total: number): void;
}

/**
 * What is checked: a codec and the canvas size it works at: a model's (`{ codec: model.codec, imageSize:
 * model.config.imageSize }`), or an autoencoder alone, before any diffusion is trained on it (`{ codec: new AutoencoderCodec(ae),
 * imageSize }`), which is when the check decides a resolution.
 */
export interface CheckedCodec {
  codec: ImageCodec;
  imageSize: number;
}

/** Every turn of the episodes, rendered, detected, and detected again after each codec round trip. */
export function checkCodec({ codec, imageSize: size }: CheckedCodec, detector: ObjectDetector, episodes: readonly Episode[], opts: CodecCheckOptions = {}): CodecCheckReport {
  const rounds = opts.rounds ?? 1;
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds must be an integer >= 1, got ${rounds}`);
  const turns = episodes.flatMap((e) => e.turns.map((t) => ({ dataset: e.dataset, objects: t.objects })));
  const labels = turns.map((t) => locate(t.objects).map((o) => o.label));
  const perRound: PrfScores[][] = Array.from({ length: rounds + 1 }, () => []);
  const lost: Map<string, number>[] = Array.from({ length: rounds + 1 }, () => new Map());
  for (let b = 0; b < turns.length; b += batchSize) {
    let images: RgbImage[] = turns.slice(b, b + batchSize).map((t) => renderScene(t.dataset, t.objects, size, opts.render));
    for (let r = 0; r <= rounds; r++) {
      if (r > 0) {
        const out = tf.tidy(() => codec.decode(codec.encode(imagesToTensor(images))));
        images = tensorToImages(out);
        out.dispose();
      }
      detector.detect(images).forEach((found, i) => {
        const want = labels[b + i]!;
        perRound[r]!.push(precisionRecallF1(want, found.map((d) => d.label)));
        const got = new Set(found.map((d) => d.label));
        for (const l of want) if (!got.has(l)) lost[r]!.set(l, (lost[r]!.get(l) ?? 0) + 1);
      });
    }
    opts.onProgress?.(Math.min(b + batchSize, turns.length), turns.length);
  }
  return {
    images: turns.length,
    rounds: perRound.map((s, round) => ({ round, scores: meanScores(s), lost: [...lost[round]!].sort((x, y) => y[1] - x[1]) })),
  };
}
