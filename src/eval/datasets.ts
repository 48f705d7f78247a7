/**
 * What the detector and the metrics need to know about each dataset: class vocabulary, how an episode object
 * becomes a located label, which scene-graph axis RSIM uses, the default detector configuration, and the stream
 * of rendered training scenes (i-CLEVR: freshly generated train-split scenes; CoDraw: the training split's scenes).
 */
import {
  CODRAW_CLASSES,
  ICLEVR_LABELS,
  Rng,
  generateIclevrEpisodes,
  loadCodraw,
  objectLabel,
  parseRelationTurnText,
  renderScene,
  resizeImage,
  type Dataset,
  type Episode,
  type SceneObject,
  type SceneRenderOptions,
} from '../data/index.js';
import type { DetectorConfig } from './detector.js';
import { iclevrRsimCeiling, type RsimCeiling } from './ceiling.js';
import type { GraphAxis, LocatedObject, RelationCheck } from './metrics.js';
import type { SampleSource, TrainSample } from './train.js';

export interface DatasetInfo {
  classes: readonly string[];
  coords: 2 | 3;
  depthLevels?: number;
  /** RSIM's second relation: y for i-CLEVR, depth for CoDraw (as GeNeVA). */
  graphAxis: GraphAxis;
  /** The spatial relation a turn's instruction asks for, where the dataset's grammar states one (i-CLEVR). */
  relationOf?(text: string): RelationCheck | null;
  /** RSIM a perfect instruction follower would score on these episodes (where the generator's geometry is known). */
  rsimCeiling?(episodes: readonly Episode[]): RsimCeiling;
}

export const DATASET_INFO: Record<Dataset, DatasetInfo> = {
  iclevr: { classes: ICLEVR_LABELS, coords: 2, graphAxis: 'y', relationOf: parseRelationTurnText, rsimCeiling: (e) => iclevrRsimCeiling(e) },
  codraw: { classes: CODRAW_CLASSES, coords: 3, depthLevels: 3, graphAxis: 'z' },
};

/** Episode objects as located labels (the annotations the detector is scored against). */
export function locate(objects: readonly SceneObject[]): LocatedObject[] {
  return objects.map((o) => {
    const l: LocatedObject = { label: objectLabel(o), x: o.x, y: o.y };
    if ('cls' in o) l.z = o.z;
    return l;
  });
}

/**
 * Default architecture per dataset: i-CLEVR at 64x64 on an 8x8 grid (24 classes of simple solids), CoDraw at 128x128 on an 8x8 grid (58 clip-art
 * classes, small far objects). Class weights are filled in by `classWeightsFrom`.
 */
export function defaultDetectorConfig(dataset: Dataset, seed = 1): DetectorConfig {
  const info = DATASET_INFO[dataset];
  const base = {
    format: 1 as const,
    kind: 'object-detector' as const,
    dataset,
    classes: [...info.classes],
    coords: info.coords,
    ...(info.depthLevels ? { depthLevels: info.depthLevels } : {}),
    groups: 8,
    classWeights: info.classes.map(() => 1),
    coordWeight: 1,
    threshold: 0.5,
    seed,
  };
  return dataset === 'iclevr'
    ? { ...base, inputSize: 64, channels: [16, 32, 64], hidden: 64 }
    : { ...base, inputSize: 128, channels: [16, 24, 48, 96], stageConvs: [0, 0, 1, 1], normMaxSide: 16, hidden: 96 };
}

/**
 * Per-class BCE weights from class frequencies in sample scenes: sqrt(mean frequency / class frequency),
 * clipped to [0.25, 4] and normalised to mean 1, so rare classes count more without drowning the frequent ones.
 */
export function classWeightsFrom(classes: readonly string[], scenes: readonly LocatedObject[][]): number[] {
  const counts = new Map(classes.map((c) => [c, 0]));
  for (const s of scenes) for (const l of new Set(s.map((o) => o.label))) counts.set(l, (counts.get(l) ?? 0) + 1);
  const freq = classes.map((c) => (counts.get(c) ?? 0) / Math.max(1, scenes.length));
  const mean = freq.reduce((a, b) => a + b, 0) / classes.length;
  const raw = freq.map((f) => (f === 0 ? 4 : Math.min(4, Math.max(0.25, Math.sqrt(mean / f)))));
  const norm = raw.reduce((a, b) => a + b, 0) / raw.length;
  return raw.map((w) => Math.round((w / norm) * 1e4) / 1e4);
}

export interface SourceOptions {
  /** Seed of the scene stream (a resumed run should pass a different one to see new scenes). */
  seed: number;
  /** Render size = detector input size. */
  size: number;
  /**
   * Share of scenes rendered at half size and upscaled, so the detector also works on lower-resolution images
   * (the diffusion model may generate at a smaller size than the detector's input). Default 0.3.
   */
  lowResShare?: number;
  /** CoDraw dataset folder (default: the data part's default). */
  codrawDir?: string;
  render?: SceneRenderOptions;
}

/** The scenes a detector trains on, before rendering. */
export interface SceneSource {
  next(rng: Rng): SceneObject[];
}

/** i-CLEVR: a fresh train-split episode per scene, one of its turns (1..5 objects) picked uniformly. */
function iclevrScenes(seed: number): SceneSource {
  let chunk = 0;
  let pool: SceneObject[][] = [];
  return {
    next(rng) {
      if (pool.length === 0) {
        const eps = generateIclevrEpisodes({ count: 256, seed: seed * 100_003 + chunk++, split: 'train' });
        pool = eps.map((e) => e.turns[Math.floor(rng.next() * e.turns.length)]!.objects);
      }
      return pool.pop()!;
    },
  };
}

/**
 * CoDraw: every turn's scene of the training split's episodes (objects placed by drawers). Scenes are drawn with
 * probability proportional to sqrt(mean class count / count of the scene's rarest class), clipped to [1, 4]:
 * the long tail of small clip-art (food, glasses, toys) is seen more often than uniform sampling would show it.
 */
function codrawScenes(dir: string | undefined): SceneSource {
  const eps = loadCodraw({ split: 'train', ...(dir ? { dir } : {}) });
  const scenes = eps.flatMap((e) => e.turns.map((t) => t.objects as SceneObject[]));
  if (scenes.length === 0) throw new Error('CoDraw training split has no scenes');
  const counts = new Map<string, number>();
  for (const s of scenes) for (const l of new Set(s.map(objectLabel))) counts.set(l, (counts.get(l) ?? 0) + 1);
  const mean = [...counts.values()].reduce((a, b) => a + b, 0) / Math.max(1, counts.size);
  const cumulative = new Float64Array(scenes.length);
  let total = 0;
  scenes.forEach((s, i) => {
    const rarest = Math.min(Infinity, ...s.map((o) => counts.get(objectLabel(o))!));
    total += Number.isFinite(rarest) ? Math.min(4, Math.max(1, Math.sqrt(mean / rarest))) : 1;
    cumulative[i] = total;
  });
  return {
    next(rng) {
      const u = rng.next() * total;
      let lo = 0;
      let hi = scenes.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cumulative[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      return scenes[lo]!;
    },
  };
}

export function sceneSource(dataset: Dataset, opts: Pick<SourceOptions, 'seed' | 'codrawDir'>): SceneSource {
  return dataset === 'iclevr' ? iclevrScenes(opts.seed) : codrawScenes(opts.codrawDir);
}

/** Rendered training samples for `trainDetector`. */
export function trainingSource(dataset: Dataset, scenes: SceneSource, opts: SourceOptions): SampleSource {
  const rng = new Rng(opts.seed);
  const low = opts.lowResShare ?? 0.3;
  return (n: number): TrainSample[] => {
    const out: TrainSample[] = [];
    for (let i = 0; i < n; i++) {
      const objects = scenes.next(rng);
      const small = rng.next() < low;
      let image = renderScene(dataset, objects, small ? Math.max(8, Math.round(opts.size / 2)) : opts.size, opts.render);
      if (small) image = resizeImage(image, opts.size);
      out.push({ image, objects: locate(objects) });
    }
    return out;
  };
}
