/**
 * Episodes: the multi-turn samples every tool reads and writes, one JSON object a line (JSON Lines):
 *
 *   {"id": "...", "dataset": "iclevr" | "codraw", "turns": [{"text": "...", "objects": [...]}, ...]}
 *
 * `objects` is the whole scene after that turn (not the change). The canvas before turn 1 is the empty
 * background of the dataset. See docs/DATA.md for the full description.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';

/** CLEVR's eight colours, in CLEVR's order. */
export const ICLEVR_COLORS = ['gray', 'red', 'blue', 'green', 'brown', 'purple', 'cyan', 'yellow'] as const;
/** The three CLEVR shapes. */
export const ICLEVR_SHAPES = ['cube', 'sphere', 'cylinder'] as const;
export type IclevrColor = (typeof ICLEVR_COLORS)[number];
export type IclevrShape = (typeof ICLEVR_SHAPES)[number];

/** Number of CoDraw object classes (names in `CODRAW_CLASSES`, src/data/codraw.ts). */
export const CODRAW_NUM_CLASSES = 58;

/** An i-CLEVR-style object: its centre in the image, x to the right, y growing toward the viewer (down), both in [0, 1]. */
export interface IclevrObject {
  shape: IclevrShape;
  color: IclevrColor;
  x: number;
  y: number;
}

/**
 * A CoDraw clip-art object. `cls` indexes `CODRAW_CLASSES` (0..57). x, y: the clip-art's centre normalised by the
 * 500x400 canvas (x / 500, y / 400); drawers sometimes dragged clip-art partly off the canvas, so values slightly
 * outside [0, 1] occur. z: depth 0 (near, scale 1.0), 1 (0.7), 2 (far, 0.49). flip: mirrored horizontally.
 * `subtype` (optional) is the pose x expression index 0..34 of the two person classes (18 Mike, 19 Jenny), which
 * share one class each but have 35 pictures; it only chooses the picture the renderer draws (0 when absent).
 */
export interface CodrawObject {
  cls: number;
  x: number;
  y: number;
  z: 0 | 1 | 2;
  flip: boolean;
  subtype?: number;
}

export type Dataset = 'iclevr' | 'codraw';
export type SceneObject = IclevrObject | CodrawObject;

/** One turn: the instruction and the whole scene after it. */
export interface EpisodeTurn<O extends SceneObject = SceneObject> {
  text: string;
  objects: O[];
  /** The generator's own wording when `text` is a paraphrase of it (paraphrased validation sets). */
  canonicalText?: string;
}

export interface IclevrEpisode {
  id: string;
  dataset: 'iclevr';
  turns: EpisodeTurn<IclevrObject>[];
}

export interface CodrawEpisode {
  id: string;
  dataset: 'codraw';
  turns: EpisodeTurn<CodrawObject>[];
}

/** A multi-turn sample; `dataset` tells which object type its turns hold. */
export type Episode = IclevrEpisode | CodrawEpisode;

const unit = z.number().finite().min(0).max(1);

const iclevrObjectSchema = z.strictObject({
  shape: z.enum(ICLEVR_SHAPES),
  color: z.enum(ICLEVR_COLORS),
  x: unit,
  y: unit,
});

const codrawObjectSchema = z.strictObject({
  cls: z.number().int().min(0).max(CODRAW_NUM_CLASSES - 1),
  // Off-canvas drags reach about -0.3..1.8 in the real data; anything beyond [-1, 2] is garbage.
  x: z.number().finite().min(-1).max(2),
  y: z.number().finite().min(-1).max(2),
  z: z.union([z.literal(0), z.literal(1), z.literal(2)]),
  flip: z.boolean(),
  subtype: z.number().int().min(0).max(34).optional(),
});

const turn = <T extends z.ZodType>(obj: T) => z.strictObject({ text: z.string().min(1), objects: z.array(obj), canonicalText: z.string().min(1).optional() });

const episodeSchema = z.discriminatedUnion('dataset', [
  z.strictObject({ id: z.string().min(1), dataset: z.literal('iclevr'), turns: z.array(turn(iclevrObjectSchema)).min(1) }),
  z.strictObject({ id: z.string().min(1), dataset: z.literal('codraw'), turns: z.array(turn(codrawObjectSchema)).min(1) }),
]);

/** One problem found in an episodes file. `line` is 1-based. */
export interface EpisodeProblem {
  file: string;
  line: number;
  message: string;
}

/** Thrown when an episodes file has malformed lines; `problems` lists every one of them (not just the first). */
export class EpisodeFormatError extends Error {
  readonly problems: EpisodeProblem[];

  constructor(problems: EpisodeProblem[]) {
    const shown = problems.slice(0, 50).map((p) => `  ${p.file}:${p.line}: ${p.message}`);
    if (problems.length > shown.length) shown.push(`  ... and ${problems.length - shown.length} more`);
    super(`${problems.length} malformed episode line(s):\n${shown.join('\n')}`);
    this.name = 'EpisodeFormatError';
    this.problems = problems;
  }
}

function pathText(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s;
}

/**
 * Parse and validate JSON Lines text. Blank lines are ignored. Every bad line (invalid JSON, wrong shape, duplicate
 * id) is collected, then one EpisodeFormatError lists them all; nothing is returned unless the whole text is valid.
 */
export function parseEpisodes(text: string, file = '<episodes>'): Episode[] {
  const problems: EpisodeProblem[] = [];
  const episodes: Episode[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = i + 1;
    const src = raw.trim();
    if (src === '') return;
    let value: unknown;
    try {
      value = JSON.parse(src);
    } catch (e) {
      problems.push({ file, line, message: `invalid JSON: ${(e as Error).message}` });
      return;
    }
    const r = episodeSchema.safeParse(value);
    if (!r.success) {
      const msgs = r.error.issues.map((iss) => {
        const at = pathText(iss.path);
        return at ? `${at}: ${iss.message}` : iss.message;
      });
      problems.push({ file, line, message: msgs.join('; ') });
      return;
    }
    const ep = r.data as Episode;
    const first = seen.get(ep.id);
    if (first !== undefined) {
      problems.push({ file, line, message: `duplicate id "${ep.id}" (first on line ${first})` });
      return;
    }
    seen.set(ep.id, line);
    episodes.push(ep);
  });
  if (problems.length > 0) throw new EpisodeFormatError(problems);
  return episodes;
}

/**
 * Read an episodes file (JSON Lines; gzip-compressed if the name ends in .gz) from any path.
 * Throws EpisodeFormatError listing every malformed line with file, line number and reason.
 */
export async function readEpisodes(path: string): Promise<Episode[]> {
  let buf = await readFile(path);
  if (path.endsWith('.gz')) buf = gunzipSync(buf);
  return parseEpisodes(buf.toString('utf8'), path);
}

/** Serialise episodes as JSON Lines (one episode a line, trailing newline). */
export function formatEpisodes(episodes: readonly Episode[]): string {
  return episodes.map((e) => JSON.stringify(e)).join('\n') + (episodes.length > 0 ? '\n' : '');
}

/** Write episodes to a JSON Lines file. */
export async function writeEpisodes(path: string, episodes: readonly Episode[]): Promise<void> {
  await writeFile(path, formatEpisodes(episodes));
}
