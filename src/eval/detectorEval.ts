/**
 * The detector's own accuracy: precision / recall / F1 of its detections on ground-truth renderings against the
 * episodes' annotations (per image, averaged over every turn, as LatteGAN's "reference" scores), plus how well it
 * localises the classes it finds.
 */
import { renderScene, type Episode, type SceneRenderOptions } from '../data/index.js';
import type { ObjectDetector } from './detector.js';
import { locate } from './datasets.js';
import { meanScores, precisionRecallF1, type PrfScores } from './metrics.js';

export interface DetectorScores extends PrfScores {
  episodes: number;
  images: number;
  /** Mean |dx| and |dy| (normalised units) over classes both annotated and detected. */
  meanAbsX: number;
  meanAbsY: number;
  /** Share of matched CoDraw objects whose depth level is right (null for i-CLEVR). */
  depthAccuracy: number | null;
}

export interface DetectorEvalOptions {
  /** Render size of the ground truth (default: the detector's input size). */
  size?: number;
  render?: SceneRenderOptions;
  /** Images per detector call. */
  batchSize?: number;
  onProgress?(doneImages: number, totalImages: number): void;
}

export function evaluateDetector(det: ObjectDetector, episodes: readonly Episode[], opts: DetectorEvalOptions = {}): DetectorScores {
  const size = opts.size ?? det.config.inputSize;
  const batch = opts.batchSize ?? 64;
  const items = episodes.flatMap((e) => e.turns.map((t) => ({ dataset: e.dataset, objects: t.objects })));
  for (const it of items)
    if (it.dataset !== det.config.dataset) throw new Error(`episode of dataset ${it.dataset} given to the ${det.config.dataset} detector`);
  const scores: PrfScores[] = [];
  let dx = 0;
  let dy = 0;
  let matched = 0;
  let depthOk = 0;
  let depthN = 0;
  for (let i = 0; i < items.length; i += batch) {
    const chunk = items.slice(i, i + batch);
    const images = chunk.map((it) => renderScene(it.dataset, it.objects, size, opts.render));
    const dets = det.detect(images);
    chunk.forEach((it, j) => {
      const truth = locate(it.objects);
      const found = dets[j]!;
      scores.push(
        precisionRecallF1(
          truth.map((o) => o.label),
          found.map((d) => d.label),
        ),
      );
      const byLabel = new Map(found.map((d) => [d.label, d]));
      for (const o of truth) {
        const d = byLabel.get(o.label);
        if (!d) continue;
        matched++;
        dx += Math.abs(d.x - o.x);
        dy += Math.abs(d.y - o.y);
        if (o.z !== undefined && d.z !== undefined) {
          depthN++;
          if (d.z === o.z) depthOk++;
        }
      }
    });
    opts.onProgress?.(Math.min(items.length, i + batch), items.length);
  }
  return {
    ...meanScores(scores),
    episodes: episodes.length,
    images: items.length,
    meanAbsX: matched ? dx / matched : 0,
    meanAbsY: matched ? dy / matched : 0,
    depthAccuracy: depthN ? depthOk / depthN : null,
  };
}
