/**
 * Multi-turn evaluation of a CDD-ICM model (paper Sec. 4.1): every episode is generated turn by turn, each turn's
 * output being the next turn's reference (the iterative M-CIG setting) or, teacher-forced, the ground-truth
 * rendering (the paper's "w/o iterative setting"). The dataset's detector then labels the ground-truth and the
 * generated image of every turn; precision / recall / F1 are averaged over all turns, RSIM over final turns.
 */
import { backgroundFor, hashSeed, renderScene, type Episode, type RgbImage, type SceneRenderOptions } from '../data/index.js';
import { rollOutEpisodes, type CddIcm, type SolverName } from '../model/index.js';
import type { Detection, ObjectDetector } from './detector.js';
import { DATASET_INFO, locate } from './datasets.js';
import {
  aggregateScores,
  meanScores,
  precisionRecallF1,
  relationHolds,
  scoreEpisode,
  type DatasetScores,
  type LocatedObject,
  type PrfScores,
  type RelationCheck,
} from './metrics.js';

export interface ModelEvalOptions {
  teacherForced?: boolean;
  /** Denoising steps per image. */
  steps: number;
  /** ODE solver (SampleRequest.solver); default: the model's recommendation, else DDIM. */
  solver?: SolverName;
  /** Best-of-n early selection (SampleRequest.selectAt); default: the model's, else 1. */
  selectAt?: number;
  /** Best-of-n: ICM guidance before the early selection too (SampleRequest.icmBeforeSelection); default: the model's. */
  icmBeforeSelection?: boolean;
  /** phi (Eq. 15). */
  guidanceScale: number;
  /** psi (Eq. 14). */
  icmGuidanceScale: number;
  /** Best-of-n sampling per turn (sampleBestOf: kept by the model's clean-image ICM score). Default 1. */
  candidates?: number;
  /** Base seed; each (episode, turn) gets its own seed derived from it. */
  seed?: number;
  /** Episodes generated together (one batched sampler call per turn). */
  batchSize?: number;
  render?: SceneRenderOptions;
  /** After each turn of a batch: turns finished so far and in total. */
  onProgress?(doneTurns: number, totalTurns: number): void;
  /** After each denoising step of the current batch. */
  onStep?(step: number, total: number): void;
  signal?: AbortSignal;
  /** Keep the images of this many episodes in the results (for the contact sheet); default 24. */
  keepImages?: number;
  /**
   * Iterative setting: re-encode each generated image as the next turn's reference instead of handing its latent
   * on (what a server that lost the latent does). Default false, as the engine carries latents.
   */
  reencodeReference?: boolean;
}

export interface TurnResult {
  text: string;
  /** The generator's wording when `text` is a paraphrase (relations are read from it). */
  canonicalText?: string;
  /** Ground-truth rendering and generated image (model size); kept for the first `keepImages` episodes only. */
  groundTruth?: RgbImage;
  generated?: RgbImage;
  annotations: LocatedObject[];
  gtDetections: Detection[];
  genDetections: Detection[];
  scores: PrfScores;
}

export interface EpisodeResult {
  id: string;
  turns: TurnResult[];
  rsim: number;
}

/** How often generated objects sit where their instruction put them (datasets whose grammar states relations). */
export interface RelationReport {
  /** Share of judged turns whose new object is on the asked side of its anchor in the generated image. */
  accuracy: number;
  /** Turns judged: a relation was asked and both objects were detected in the generated image. */
  judged: number;
  /** Turns that asked for a relation. */
  asked: number;
  /** The same share on the ground-truth renderings (a check of the detector's localisation; ~1). */
  referenceAccuracy: number;
}

export interface ModelEvalReport extends DatasetScores {
  /** The detector's own precision / recall / F1 on the ground-truth renderings against the annotations. */
  detectorReference: PrfScores;
  /** Mean precision / recall / F1 per turn index (turn 1 first). */
  perTurn: (PrfScores & { count: number })[];
  results: EpisodeResult[];
  /** Spatial-relation accuracy (i-CLEVR); absent for datasets without relation grammar. */
  relations?: RelationReport;
  elapsedMs: number;
}

function relationReport(results: readonly EpisodeResult[], relationOf: (text: string) => RelationCheck | null): RelationReport {
  let asked = 0;
  let judged = 0;
  let held = 0;
  let refJudged = 0;
  let refHeld = 0;
  for (const t of results.flatMap((r) => r.turns)) {
    const rel = relationOf(t.canonicalText ?? t.text);
    if (!rel) continue;
    asked++;
    const gen = relationHolds(t.genDetections, rel);
    if (gen !== null) {
      judged++;
      if (gen) held++;
    }
    const ref = relationHolds(t.gtDetections, rel);
    if (ref !== null) {
      refJudged++;
      if (ref) refHeld++;
    }
  }
  return { accuracy: judged ? held / judged : 0, judged, asked, referenceAccuracy: refJudged ? refHeld / refJudged : 0 };
}

/** Seed of one (episode, turn) generation: fixed by the base seed, so runs are reproducible. */
export function turnSeed(base: number, episode: number, turn: number): number {
  return hashSeed(base, episode, turn) % 2147483647;
}

export async function evaluateModel(
  model: CddIcm,
  detector: ObjectDetector,
  episodes: readonly Episode[],
  opts: ModelEvalOptions,
): Promise<ModelEvalReport> {
  const t0 = Date.now();
  if (episodes.length === 0) throw new Error('no episodes to evaluate');
  const dataset = episodes[0]!.dataset;
  for (const e of episodes) if (e.dataset !== dataset) throw new Error(`episodes mix datasets (${dataset} and ${e.dataset})`);
  if (detector.config.dataset !== dataset) throw new Error(`the ${detector.config.dataset} detector cannot score ${dataset} episodes`);
  const size = model.config.imageSize;
  const batchSize = opts.batchSize ?? 4;
  const seed = opts.seed ?? 0;
  const totalTurns = episodes.reduce((s, e) => s + e.turns.length, 0);
  let doneTurns = 0;
  const results: EpisodeResult[] = [];

  for (let b = 0; b < episodes.length; b += batchSize) {
    const group = episodes.slice(b, b + batchSize);
    const gts = group.map((e) => e.turns.map((t) => renderScene(dataset, t.objects, size, opts.render)));
    const outs = await rollOutEpisodes(
      model,
      group.map((e) => e.turns.map((t) => t.text)),
      {
        backgrounds: group.map(() => backgroundFor(dataset, size, opts.render)),
        steps: opts.steps,
        guidanceScale: opts.guidanceScale,
        icmGuidanceScale: opts.icmGuidanceScale,
        ...(opts.solver ? { solver: opts.solver } : {}),
        ...(opts.selectAt !== undefined ? { selectAt: opts.selectAt } : {}),
        ...(opts.icmBeforeSelection !== undefined ? { icmBeforeSelection: opts.icmBeforeSelection } : {}),
        ...(opts.candidates !== undefined ? { candidates: opts.candidates } : {}),
        seedOf: (i, t) => turnSeed(seed, b + i, t),
        // Iterative setting: the output (with its latent unless re-encoding) is the next reference; teacher-forced:
        // the ground truth is.
        nextReference: (i, t, out) =>
          opts.teacherForced ? { image: gts[i]![t]! } : opts.reencodeReference ? { image: out.image } : { image: out.image, latent: out.latent },
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onStep ? { onStep: (i: number, total: number) => opts.onStep!(i, total) } : {}),
        onTurns: (n) => {
          doneTurns += n;
          opts.onProgress?.(doneTurns, totalTurns);
        },
      },
    );
    const gens = outs.map((o) => o.map((r) => r.image));
    // Detect on all ground-truth and generated images of the group at once.
    const flatGt = gts.flat();
    const flatGen = gens.flat();
    const gtDet = detector.detect(flatGt);
    const genDet = detector.detect(flatGen);
    let k = 0;
    group.forEach((e, i) => {
      const turns: TurnResult[] = e.turns.map((turn, t) => {
        const keep = results.length < (opts.keepImages ?? 24);
        const r: TurnResult = {
          text: turn.text,
          ...(turn.canonicalText ? { canonicalText: turn.canonicalText } : {}),
          ...(keep ? { groundTruth: gts[i]![t]!, generated: gens[i]![t]! } : {}),
          annotations: locate(turn.objects),
          gtDetections: gtDet[k]!,
          genDetections: genDet[k]!,
          scores: precisionRecallF1(
            gtDet[k]!.map((d) => d.label),
            genDet[k]!.map((d) => d.label),
          ),
        };
        k++;
        return r;
      });
      const s = scoreEpisode({ reference: turns.map((r) => r.gtDetections), generated: turns.map((r) => r.genDetections) }, DATASET_INFO[dataset].graphAxis);
      results.push({ id: e.id, turns, rsim: s.rsim });
    });
  }

  const agg = aggregateScores(results.map((r) => ({ turns: r.turns.map((t) => t.scores), rsim: r.rsim })));
  const allTurns = results.flatMap((r) => r.turns);
  const detectorReference = meanScores(
    allTurns.map((t) =>
      precisionRecallF1(
        t.annotations.map((o) => o.label),
        t.gtDetections.map((d) => d.label),
      ),
    ),
  );
  const maxLen = Math.max(...results.map((r) => r.turns.length));
  const perTurn = Array.from({ length: maxLen }, (_, t) => {
    const s = results.filter((r) => t < r.turns.length).map((r) => r.turns[t]!.scores);
    return { ...meanScores(s), count: s.length };
  });
  const relationOf = DATASET_INFO[dataset].relationOf;
  return {
    ...agg,
    detectorReference,
    perTurn,
    results,
    ...(relationOf ? { relations: relationReport(results, relationOf) } : {}),
    elapsedMs: Date.now() - t0,
  };
}
