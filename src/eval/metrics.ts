/**
 * Precision / recall / F1 / RSIM as GeNeVA's evaluation code computes them (and LatteGAN re-implements them):
 * the detector's output on the ground-truth image is the label set, its output on the generated image the
 * prediction (paper Eq. 16 and 17). Pure functions: no tensors, no I/O.
 *
 * Conventions (LatteGAN's `sklearn.metrics.*_score(average="samples", zero_division=0)`):
 * - per image, precision = |gen ∩ gt| / |gen|, recall = |gen ∩ gt| / |gt|, F1 = 2 |gen ∩ gt| / (|gen| + |gt|);
 * - a ratio whose denominator is 0 counts as 0: an empty prediction has precision 0, an empty label set
 *   recall 0, and both empty give F1 0 (zero_division=0 for every score, also when both sets are empty);
 * - the dataset scores are the plain means of the per-image scores over all turns of all episodes.
 * - RSIM (final turn only): 0 when no class is detected in both images, otherwise
 *   recall x the share of equal entries of the two scene graphs built over the classes detected in both.
 */

/** One located object: normalised x (right) and y (down) in [0, 1]; z = depth level for CoDraw (0 near .. 2 far). */
export interface LocatedObject {
  /** Class name (e.g. "red cube", or a CoDraw class name); the identity used for set comparisons. */
  label: string;
  x: number;
  y: number;
  z?: number;
}

export interface PrfScores {
  precision: number;
  recall: number;
  f1: number;
}

/** Which axis the second relation of a scene graph uses: y for i-CLEVR, depth z for CoDraw (as GeNeVA). */
export type GraphAxis = 'y' | 'z';

/**
 * Where the "image centre" sits on each axis when an object is compared with it (the graph's diagonal).
 * GeNeVA compares with 0.5 on normalised coordinates; CoDraw's depth has three levels 0, 1, 2, whose middle is 1.
 */
export const GRAPH_CENTRE = { x: 0.5, y: 0.5, z: 1 } as const;

function labelSet(labels: Iterable<string>): Set<string> {
  return labels instanceof Set ? (labels as Set<string>) : new Set(labels);
}

/** Safe ratio with LatteGAN's zero_division=0. */
function ratio(num: number, den: number): number {
  return den === 0 ? 0 : num / den;
}

/** Per-image precision, recall and F1 of a predicted label set against a reference label set (Eq. 16). */
export function precisionRecallF1(reference: Iterable<string>, predicted: Iterable<string>): PrfScores {
  const gt = labelSet(reference);
  const gen = labelSet(predicted);
  let tp = 0;
  for (const l of gen) if (gt.has(l)) tp++;
  return {
    precision: ratio(tp, gen.size),
    recall: ratio(tp, gt.size),
    // 2PR/(P+R) rewritten as 2tp/(|gen|+|gt|): identical when defined, 0 when both sets are empty.
    f1: ratio(2 * tp, gen.size + gt.size),
  };
}

/** Mean of per-image scores (an empty list gives zeros, so reports never contain NaN). */
export function meanScores(scores: readonly PrfScores[]): PrfScores {
  if (scores.length === 0) return { precision: 0, recall: 0, f1: 0 };
  const s = { precision: 0, recall: 0, f1: 0 };
  for (const x of scores) {
    s.precision += x.precision;
    s.recall += x.recall;
    s.f1 += x.f1;
  }
  return { precision: s.precision / scores.length, recall: s.recall / scores.length, f1: s.f1 / scores.length };
}

function sign(d: number): -1 | 0 | 1 {
  return d > 0 ? 1 : d < 0 ? -1 : 0;
}

function coord(o: LocatedObject, axis: GraphAxis): number {
  if (axis === 'y') return o.y;
  if (o.z === undefined) throw new Error(`sceneGraph: object ${o.label} has no depth z`);
  return o.z;
}

/**
 * GeNeVA's scene graph (`construct_graph`): a [2, n, n] array flattened row-major; entry (a, i, j) is the sign of
 * object i's coordinate minus object j's on axis a (x, then y or depth). On the diagonal (i = j) object i is
 * compared with the image centre instead.
 */
export function sceneGraph(objects: readonly LocatedObject[], axis: GraphAxis): Int8Array {
  const n = objects.length;
  const g = new Int8Array(2 * n * n);
  for (let i = 0; i < n; i++) {
    const ref = objects[i]!;
    const rx = ref.x;
    const ry = coord(ref, axis);
    for (let j = 0; j < n; j++) {
      const q = objects[j]!;
      const qx = i === j ? GRAPH_CENTRE.x : q.x;
      const qy = i === j ? GRAPH_CENTRE[axis] : coord(q, axis);
      g[i * n + j] = sign(rx - qx);
      g[n * n + i * n + j] = sign(ry - qy);
    }
  }
  return g;
}

/**
 * Relational similarity of one final-turn image pair (Eq. 17, GeNeVA's `get_graph_similarity`): the classes
 * detected in both images, in one fixed order, give two scene graphs (one from each image's locations);
 * RSIM = recall(gt labels, generated labels) x share of equal graph entries. 0 when no class is shared.
 * A class detected more than once in an image uses its first detection.
 */
export function relationalSimilarity(
  reference: readonly LocatedObject[],
  generated: readonly LocatedObject[],
  axis: GraphAxis,
): number {
  const gtBy = new Map<string, LocatedObject>();
  for (const o of reference) if (!gtBy.has(o.label)) gtBy.set(o.label, o);
  const genBy = new Map<string, LocatedObject>();
  for (const o of generated) if (!genBy.has(o.label)) genBy.set(o.label, o);
  const shared = [...gtBy.keys()].filter((l) => genBy.has(l)).sort();
  if (shared.length === 0) return 0;
  const gGt = sceneGraph(
    shared.map((l) => gtBy.get(l)!),
    axis,
  );
  const gGen = sceneGraph(
    shared.map((l) => genBy.get(l)!),
    axis,
  );
  let equal = 0;
  for (let k = 0; k < gGt.length; k++) if (gGt[k] === gGen[k]) equal++;
  const { recall } = precisionRecallF1(gtBy.keys(), genBy.keys());
  return recall * (equal / gGt.length);
}

/** A spatial instruction: `label` asked to be `dx` (-1 left / +1 right / 0 any) and `dy` (-1 less / +1 more) of `anchor`. */
export interface RelationCheck {
  label: string;
  anchor: string;
  dx: -1 | 0 | 1;
  dy: -1 | 0 | 1;
}

/**
 * Whether the located objects put `label` on the asked side of `anchor` on every constrained axis (first detection
 * of each class); null when either object is missing, so placement is judged apart from presence (which F1 scores).
 */
export function relationHolds(objects: readonly LocatedObject[], r: RelationCheck): boolean | null {
  const o = objects.find((x) => x.label === r.label);
  const a = objects.find((x) => x.label === r.anchor);
  if (!o || !a) return null;
  return (r.dx === 0 || sign(o.x - a.x) === r.dx) && (r.dy === 0 || sign(o.y - a.y) === r.dy);
}

/** One evaluated episode: detections per turn on the ground-truth and on the generated images. */
export interface EpisodeDetections {
  reference: LocatedObject[][];
  generated: LocatedObject[][];
}

export interface EpisodeScores {
  turns: PrfScores[];
  /** RSIM of the final turn. */
  rsim: number;
}

/** Scores of one episode: per-turn precision/recall/F1, RSIM on its final turn. */
export function scoreEpisode(ep: EpisodeDetections, axis: GraphAxis): EpisodeScores {
  if (ep.reference.length !== ep.generated.length) throw new Error('scoreEpisode: turn counts differ');
  if (ep.reference.length === 0) throw new Error('scoreEpisode: an episode has no turns');
  const turns = ep.reference.map((gt, t) =>
    precisionRecallF1(
      gt.map((o) => o.label),
      ep.generated[t]!.map((o) => o.label),
    ),
  );
  const last = ep.reference.length - 1;
  return { turns, rsim: relationalSimilarity(ep.reference[last]!, ep.generated[last]!, axis) };
}

export interface DatasetScores extends PrfScores {
  rsim: number;
  episodes: number;
  turns: number;
}

/** Dataset scores: precision/recall/F1 averaged over all turns, RSIM averaged over episodes (final turns). */
export function aggregateScores(episodes: readonly EpisodeScores[]): DatasetScores {
  const all = episodes.flatMap((e) => e.turns);
  const m = meanScores(all);
  const rsim = episodes.length === 0 ? 0 : episodes.reduce((s, e) => s + e.rsim, 0) / episodes.length;
  return { ...m, rsim, episodes: episodes.length, turns: all.length };
}
