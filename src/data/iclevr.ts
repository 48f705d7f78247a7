/**
 * i-CLEVR-style episode generator: five turns, one object added per turn, each described relative to an object
 * already in the scene ("Add a red cube behind and to the left of the blue sphere."), as in i-CLEVR (GeNeVA).
 */
import { ICLEVR_COLORS, ICLEVR_SHAPES, type IclevrEpisode, type IclevrObject, type EpisodeTurn } from './episode.js';
import { Rng, hashSeed, hashString } from './prng.js';

/** The eight spatial relations, as worded in the instructions. dx: -1 left / +1 right; dy: -1 behind / +1 in front. */
export const ICLEVR_RELATIONS = [
  { text: 'to the left of', dx: -1, dy: 0 },
  { text: 'to the right of', dx: 1, dy: 0 },
  { text: 'behind', dx: 0, dy: -1 },
  { text: 'in front of', dx: 0, dy: 1 },
  { text: 'behind and to the left of', dx: -1, dy: -1 },
  { text: 'behind and to the right of', dx: 1, dy: -1 },
  { text: 'in front of and to the left of', dx: -1, dy: 1 },
  { text: 'in front of and to the right of', dx: 1, dy: 1 },
] as const;
export type IclevrRelation = (typeof ICLEVR_RELATIONS)[number]['text'];

/** Geometry of the generator (normalised image coordinates). */
export const ICLEVR_GEOMETRY = {
  turns: 5,
  xRange: [0.1, 0.9] as const,
  yRange: [0.25, 0.9] as const,
  minDistance: 0.13,
  /** Offset along x for a left/right relation, |dx|. */
  offsetX: [0.16, 0.28] as const,
  /** Offset along y for a behind/in-front relation, |dy|. */
  offsetY: [0.14, 0.22] as const,
  /** Jitter on the axis a relation does not constrain (well below the offsets so the relation stays clear). */
  sideJitter: 0.04,
  /** The first object is placed at the centre of the floor area, jittered by at most this much. */
  centre: [0.5, 0.575] as const,
  centreJitter: 0.03,
};

export type IclevrSplit = 'train' | 'val' | 'test';

export interface IclevrGenerateOptions {
  count: number;
  seed: number;
  /** Default 'train'. Splits draw from disjoint seed streams, so train and val never share an episode. */
  split?: IclevrSplit;
}

/** "Add a {color} {shape} at the center." */
export function firstTurnText(o: Pick<IclevrObject, 'color' | 'shape'>): string {
  return `Add a ${o.color} ${o.shape} at the center.`;
}

/** "Add a {color} {shape} {relation} the {color} {shape}." */
export function relationTurnText(
  o: Pick<IclevrObject, 'color' | 'shape'>,
  relation: IclevrRelation,
  ref: Pick<IclevrObject, 'color' | 'shape'>,
): string {
  return relationSentence(iclevrLabel(o), relation, iclevrLabel(ref));
}

/** The one place the relation-turn grammar is written (RELATION_TURN below parses it). */
function relationSentence(label: string, relation: IclevrRelation, anchor: string): string {
  return `Add a ${label} ${relation} the ${anchor}.`;
}

/** What a relation turn asks for: `label` placed `dx` (-1 left / +1 right / 0 any) and `dy` (-1 behind / +1 in front) of `anchor`. */
export interface IclevrRelationSpec {
  label: string;
  anchor: string;
  dx: -1 | 0 | 1;
  dy: -1 | 0 | 1;
}

const RELATION_TURN = /^Add a (\w+) (\w+) (.+) the (\w+) (\w+)\.$/;

/** Inverse of relationTurnText; null for a first turn ("... at the center.") or any other text. */
export function parseRelationTurnText(text: string): IclevrRelationSpec | null {
  const m = RELATION_TURN.exec(text.trim());
  if (!m) return null;
  const rel = ICLEVR_RELATIONS.find((r) => r.text === m[3]);
  if (!rel) return null;
  return { label: `${m[1]} ${m[2]}`, anchor: `${m[4]} ${m[5]}`, dx: rel.dx, dy: rel.dy };
}

/**
 * The same relation turn with the opposite relation ("to the left of" <-> "to the right of", "behind and to the
 * left of" <-> "in front of and to the right of", ...): a training negative that differs only in where. Null for
 * a first turn or any other text.
 */
export function mirrorRelationText(text: string): string | null {
  return relationHardNegatives(text, false)[0] ?? null;
}

/**
 * Hard negatives of a relation turn: its mirror (mirrorRelationText) and, with `axes`, for a diagonal relation
 * also each axis mirrored on its own ("behind and to the left of" -> "behind and to the right of", "in front of
 * and to the left of"). With the full mirror alone a diagonal turn's negative is told apart by either axis, and
 * the front/behind one is the easier (perspective: far objects sit higher and smaller), so left/right is never
 * needed; the one-axis mirrors make each axis matter. Empty for a first turn or any other text.
 */
export function relationHardNegatives(text: string, axes: boolean): string[] {
  const r = parseRelationTurnText(text);
  if (!r) return [];
  const sentence = (dx: number, dy: number) => relationSentence(r.label, ICLEVR_RELATIONS.find((x) => x.dx === dx && x.dy === dy)!.text, r.anchor);
  const out = [sentence(-r.dx, -r.dy)];
  if (axes && r.dx !== 0 && r.dy !== 0) out.push(sentence(-r.dx, r.dy), sentence(r.dx, -r.dy));
  return out;
}

const FIRST_TURN = /^Add a (\w+) (\w+) at the center\.$/;

/**
 * The turn with the object it adds in another colour ("Add a red cube at the center." -> "Add a cyan cube at the
 * center.", likewise for a relation turn's new object, not its anchor): a training negative that differs only in
 * the colour asked for. The colour is fixed per text (a hash), so each text always gets the same negative while
 * the texts together cover every pair of colours. Null for any other text.
 */
export function recoloredTurnText(text: string): string | null {
  const t = text.trim();
  const m = FIRST_TURN.exec(t) ?? RELATION_TURN.exec(t);
  const color = m?.[1];
  if (!color || !(ICLEVR_COLORS as readonly string[]).includes(color)) return null;
  const others = ICLEVR_COLORS.filter((c) => c !== color);
  return `Add a ${others[hashString(t) % others.length]!}${t.slice(`Add a ${color}`.length)}`;
}

/** The label the detector and metrics use for an i-CLEVR object, e.g. "red cube". */
export function iclevrLabel(o: Pick<IclevrObject, 'color' | 'shape'>): string {
  return `${o.color} ${o.shape}`;
}

/** All 24 (colour, shape) labels in a fixed order (colour-major), for multi-label classifiers. */
export const ICLEVR_LABELS: readonly string[] = ICLEVR_COLORS.flatMap((color) =>
  ICLEVR_SHAPES.map((shape) => iclevrLabel({ color, shape })),
);

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

/** One draw of where a relation puts a new object next to `ref` (before the floor and distance checks). */
export function relativePosition(rng: Rng, ref: { x: number; y: number }, rel: { dx: number; dy: number }): { x: number; y: number } {
  const g = ICLEVR_GEOMETRY;
  const dx = rel.dx === 0 ? rng.uniform(-g.sideJitter, g.sideJitter) : rel.dx * rng.uniform(g.offsetX[0], g.offsetX[1]);
  const dy = rel.dy === 0 ? rng.uniform(-g.sideJitter, g.sideJitter) : rel.dy * rng.uniform(g.offsetY[0], g.offsetY[1]);
  return { x: round4(ref.x + dx), y: round4(ref.y + dy) };
}

/** Whether (x, y) is on the floor and at least minDistance from every placed object. */
export function fits(x: number, y: number, placed: readonly { x: number; y: number }[]): boolean {
  const g = ICLEVR_GEOMETRY;
  if (x < g.xRange[0] || x > g.xRange[1] || y < g.yRange[0] || y > g.yRange[1]) return false;
  return placed.every((p) => Math.hypot(p.x - x, p.y - y) >= g.minDistance);
}

function tryEpisode(rng: Rng): EpisodeTurn<IclevrObject>[] | null {
  const g = ICLEVR_GEOMETRY;
  const kinds = ICLEVR_COLORS.flatMap((color) => ICLEVR_SHAPES.map((shape) => ({ color, shape })));
  const used = new Set<string>();
  const take = () => {
    const free = kinds.filter((k) => !used.has(iclevrLabel(k)));
    const k = rng.pick(free);
    used.add(iclevrLabel(k));
    return k;
  };
  const first = take();
  const c: IclevrObject = {
    ...first,
    x: round4(g.centre[0] + rng.uniform(-g.centreJitter, g.centreJitter)),
    y: round4(g.centre[1] + rng.uniform(-g.centreJitter, g.centreJitter)),
  };
  const objects: IclevrObject[] = [c];
  const turns: EpisodeTurn<IclevrObject>[] = [{ text: firstTurnText(c), objects: [...objects] }];
  for (let t = 1; t < g.turns; t++) {
    const kind = take();
    let placed: IclevrObject | null = null;
    let text = '';
    // Resample reference, relation and offsets until the new object fits the floor and keeps its distance.
    for (let attempt = 0; attempt < 200 && !placed; attempt++) {
      const ref = rng.pick(objects);
      const rel = rng.pick(ICLEVR_RELATIONS);
      const { x, y } = relativePosition(rng, ref, rel);
      if (!fits(x, y, objects)) continue;
      placed = { ...kind, x, y };
      text = relationTurnText(kind, rel.text, ref);
    }
    if (!placed) return null;
    objects.push(placed);
    turns.push({ text, objects: [...objects] });
  }
  return turns;
}

/** One episode from its own seed (the building block of generateIclevrEpisodes). */
export function generateIclevrEpisode(episodeSeed: number, id: string): IclevrEpisode {
  const rng = new Rng(episodeSeed);
  // A crowded scene can leave no valid spot for the next object; then the whole episode is redrawn (rare).
  for (let tries = 0; tries < 1000; tries++) {
    const turns = tryEpisode(rng);
    if (turns) return { id, dataset: 'iclevr', turns };
  }
  throw new Error(`generateIclevrEpisode: no valid episode for seed ${episodeSeed}`);
}

/**
 * `count` i-CLEVR-style episodes, fully determined by (seed, split). Episode i uses its own seed
 * hash(split, seed, i), so a larger count extends a smaller one with the same first episodes, and the
 * splits' streams are disjoint. Ids: `iclevr-{split}-{seed}-{i}`.
 */
export function generateIclevrEpisodes(opts: IclevrGenerateOptions): IclevrEpisode[] {
  const { count, seed } = opts;
  const split = opts.split ?? 'train';
  if (!Number.isInteger(count) || count < 0) throw new Error(`generateIclevrEpisodes: count must be an integer >= 0, got ${count}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`generateIclevrEpisodes: seed must be a safe integer, got ${seed}`);
  const salt = hashString(split);
  const out: IclevrEpisode[] = [];
  // Both halves of the seed enter the hash, so seeds that differ only above bit 32 still differ.
  const lo = seed % 2 ** 32;
  const hi = Math.floor(seed / 2 ** 32);
  for (let i = 0; i < count; i++) out.push(generateIclevrEpisode(hashSeed(salt, lo, hi, i), `iclevr-${split}-${seed}-${i}`));
  return out;
}
