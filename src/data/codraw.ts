/**
 * CoDraw (Kim et al., ACL 2019; CC BY-NC 4.0; clip art from Abstract Scenes v1.1, Zitnick and Parikh 2013):
 * the abstract-scene string format, the 58 object classes, the dataset reader, and episode building as GeNeVA
 * did it (El-Nouby et al., ICCV 2019). The dataset layout is described in ../shared/datasets/codraw/README.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';
import { EpisodeFormatError, type CodrawEpisode, type CodrawObject, type EpisodeProblem, type EpisodeTurn } from './episode.js';

/** The eight clip-art types, in typeIdx order: sky, large, boy (Mike), girl (Jenny), animals, clothing, food, toys. */
export const CODRAW_TYPE_PREFIXES = ['s', 'p', 'hb0', 'hb1', 'a', 'c', 'e', 't'] as const;
/** Pictures per type. */
export const CODRAW_TYPE_COUNTS = [8, 10, 35, 35, 6, 10, 7, 15] as const;
/** First class of each type: class = offset[type] + subtype, except the two people, one class each. */
export const CODRAW_TYPE_OFFSETS = [0, 8, 18, 19, 20, 26, 36, 43] as const;

/** The 58 CoDraw object classes, named after their clip art (index = class). */
export const CODRAW_CLASSES: readonly string[] = [
  // sky (s_0 .. s_7)
  'helicopter', 'hot air balloon', 'cloud', 'sun', 'lightning cloud', 'rain cloud', 'rocket', 'airplane',
  // large (p_0 .. p_9)
  'bee spring rider', 'slide', 'sandbox', 'grill', 'swing set', 'tent', 'picnic table', 'pine tree', 'oak tree', 'apple tree',
  // people (hb0_*, hb1_*: 35 poses x expressions each)
  'boy', 'girl',
  // animals (a_0 .. a_5)
  'bear', 'cat', 'dog', 'duck', 'owl', 'snake',
  // clothing (c_0 .. c_9)
  'baseball cap', 'crown', 'chef hat', 'pirate hat', 'winter hat', 'propeller hat', 'wizard hat', 'viking helmet',
  'glasses', 'sunglasses',
  // food (e_0 .. e_6)
  'pie', 'pizza', 'hot dog', 'ketchup', 'mustard', 'hamburger', 'drink',
  // toys (t_0 .. t_14)
  'baseball', 'bucket', 'beach ball', 'basketball', 'soccer ball', 'tennis ball', 'football', 'frisbee',
  'baseball bat', 'balloons', 'baseball glove', 'shovel', 'tennis racket', 'kite', 'campfire',
];

/** Width and height of the CoDraw canvas, in the units of abstract-scene x and y. */
export const CODRAW_CANVAS = { width: 500, height: 400 } as const;
/** Draw scale per depth z = 0, 1, 2. */
export const CODRAW_DEPTH_SCALE = [1.0, 0.7, 0.49] as const;
/** x = y = NOT_PLACED marks an object left in the palette. */
export const CODRAW_NOT_PLACED = -10000;

const PERSON_TYPES = new Set([2, 3]);

/** Class of a clip-art from its type and subtype (the two people collapse to one class each). */
export function codrawClassOf(typeIdx: number, subtypeIdx: number): number {
  if (!Number.isInteger(typeIdx) || typeIdx < 0 || typeIdx > 7) throw new Error(`CoDraw typeIdx out of range: ${typeIdx}`);
  const count = CODRAW_TYPE_COUNTS[typeIdx]!;
  if (!Number.isInteger(subtypeIdx) || subtypeIdx < 0 || subtypeIdx >= count)
    throw new Error(`CoDraw subtype ${subtypeIdx} out of range for type ${CODRAW_TYPE_PREFIXES[typeIdx]} (0..${count - 1})`);
  return CODRAW_TYPE_OFFSETS[typeIdx]! + (PERSON_TYPES.has(typeIdx) ? 0 : subtypeIdx);
}

/** Type and subtype of a class (subtype = person pose for classes 18 and 19, default 0). */
export function codrawTypeOf(cls: number, personSubtype = 0): { typeIdx: number; subtypeIdx: number } {
  if (!Number.isInteger(cls) || cls < 0 || cls >= CODRAW_CLASSES.length) throw new Error(`CoDraw class out of range: ${cls}`);
  let typeIdx = 0;
  for (let t = 0; t < CODRAW_TYPE_OFFSETS.length; t++) if (cls >= CODRAW_TYPE_OFFSETS[t]!) typeIdx = t;
  const subtypeIdx = PERSON_TYPES.has(typeIdx) ? personSubtype : cls - CODRAW_TYPE_OFFSETS[typeIdx]!;
  return { typeIdx, subtypeIdx };
}

/** The clip-art file of a class (and person pose), e.g. "a_2s.png" or "hb1_19s.png". */
export function codrawPng(cls: number, personSubtype = 0): string {
  const { typeIdx, subtypeIdx } = codrawTypeOf(cls, personSubtype);
  return `${CODRAW_TYPE_PREFIXES[typeIdx]}_${subtypeIdx}s.png`;
}

/** One clip-art entry of an abstract-scene string: `png, localIdx, subtypeIdx, typeIdx, x, y, z, flip`. */
export interface AbstractSceneItem {
  png: string;
  localIdx: number;
  subtypeIdx: number;
  typeIdx: number;
  /** Centre on the 500x400 canvas; -10000 = in the palette. */
  x: number;
  y: number;
  z: number;
  flip: number;
  /**
   * The original spelling of x and y. The data holds floats printed by different programs (some not in the
   * shortest form JavaScript prints), so formatting reuses this spelling while the value is unchanged.
   */
  text?: { x: string; y: string };
}

/** A parsed abstract-scene string. An empty string is the empty canvas (no items). */
export interface AbstractScene {
  items: AbstractSceneItem[];
  /** Whether the string ended with a comma (the drawer canvases do, the target scenes do not). */
  trailingComma: boolean;
}

const INT = /^-?\d+$/;
const NUM = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Parse an abstract-scene string (see the dataset README). Throws with the field at fault. */
export function parseAbstractScene(s: string): AbstractScene {
  if (s === '') return { items: [], trailingComma: false };
  const trailingComma = s.endsWith(',');
  const f = (trailingComma ? s.slice(0, -1) : s).split(',');
  if (!INT.test(f[0]!)) throw new Error(`abstract scene: count "${f[0]}" is not an integer`);
  const n = Number(f[0]);
  if (f.length !== 1 + 8 * n) throw new Error(`abstract scene: ${n} objects need ${8 * n} fields after the count, got ${f.length - 1}`);
  const items: AbstractSceneItem[] = [];
  for (let i = 0; i < n; i++) {
    const g = f.slice(1 + 8 * i, 9 + 8 * i);
    const [png, ...rest] = g as [string, ...string[]];
    const names = ['localIdx', 'subtypeIdx', 'typeIdx', 'x', 'y', 'z', 'flip'];
    rest.forEach((v, k) => {
      const ok = k === 3 || k === 4 ? NUM.test(v) : INT.test(v);
      if (!ok) throw new Error(`abstract scene: object ${i} field ${names[k]} = "${v}" is not a ${k === 3 || k === 4 ? 'number' : 'integer'}`);
    });
    const [localIdx, subtypeIdx, typeIdx, x, y, zz, flip] = rest.map(Number) as [number, number, number, number, number, number, number];
    codrawClassOf(typeIdx, subtypeIdx); // validates type and subtype
    const expected = `${CODRAW_TYPE_PREFIXES[typeIdx]}_${subtypeIdx}s.png`;
    if (png !== expected) throw new Error(`abstract scene: object ${i} png "${png}" does not match type/subtype (${expected})`);
    if (zz < 0 || zz > 2) throw new Error(`abstract scene: object ${i} depth ${zz} not in 0..2`);
    if (flip !== 0 && flip !== 1) throw new Error(`abstract scene: object ${i} flip ${flip} not 0 or 1`);
    items.push({ png, localIdx, subtypeIdx, typeIdx, x, y, z: zz, flip, text: { x: rest[3]!, y: rest[4]! } });
  }
  return { items, trailingComma };
}

/** Inverse of parseAbstractScene: parse(format(s)) equals s field for field, and format(parse(str)) === str. */
export function formatAbstractScene(scene: AbstractScene): string {
  if (scene.items.length === 0 && !scene.trailingComma) return '';
  const num = (v: number, t: string | undefined) => (t !== undefined && Number(t) === v ? t : String(v));
  const fields: string[] = [String(scene.items.length)];
  for (const it of scene.items) {
    fields.push(
      it.png,
      String(it.localIdx),
      String(it.subtypeIdx),
      String(it.typeIdx),
      num(it.x, it.text?.x),
      num(it.y, it.text?.y),
      String(it.z),
      String(it.flip),
    );
  }
  return fields.join(',') + (scene.trailingComma ? ',' : '');
}

/** True if an item sits in the palette rather than on the canvas. */
export function isPaletteItem(it: AbstractSceneItem): boolean {
  return it.x === CODRAW_NOT_PLACED || it.y === CODRAW_NOT_PLACED;
}

/** The placed clip-art of a scene as episode objects (palette items dropped; x / 500, y / 400). */
export function sceneToObjects(scene: AbstractScene): CodrawObject[] {
  return scene.items
    .filter((it) => !isPaletteItem(it))
    .map((it) => {
      const o: CodrawObject = {
        cls: codrawClassOf(it.typeIdx, it.subtypeIdx),
        x: it.x / CODRAW_CANVAS.width,
        y: it.y / CODRAW_CANVAS.height,
        z: it.z as 0 | 1 | 2,
        flip: it.flip === 1,
      };
      if (PERSON_TYPES.has(it.typeIdx)) o.subtype = it.subtypeIdx;
      return o;
    });
}

/** The metric/detector label of a CoDraw object: its class name. */
export function codrawLabel(o: Pick<CodrawObject, 'cls'>): string {
  const name = CODRAW_CLASSES[o.cls];
  if (name === undefined) throw new Error(`CoDraw class out of range: ${o.cls}`);
  return name;
}

/** One round of a CoDraw dialog (the fields this project uses; the files carry more). */
export interface CodrawRound {
  msg_t: string;
  msg_d: string;
  /** Drawer canvas before and after the round (abstract-scene strings, '' = empty). */
  abs_b: string;
  abs_d: string;
}

/** One CoDraw scene: the target scene and the dialog that reproduced it. */
export interface CodrawScene {
  image_id: number;
  split?: string;
  abs_t: string;
  dialog: CodrawRound[];
}

const roundSchema = z.object({ msg_t: z.string(), msg_d: z.string(), abs_b: z.string(), abs_d: z.string() });
const sceneSchema = z.object({ image_id: z.number().int(), split: z.string().optional(), abs_t: z.string(), dialog: z.array(roundSchema) });

/** Where the dataset lives by default: ../shared/datasets/codraw relative to the repository root. */
export function defaultCodrawDir(): string {
  // Walk up from this module to the folder holding package.json (works from src/ and from dist/src/).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
  return resolve(dir, '..', 'shared', 'datasets', 'codraw');
}

export interface CodrawLoadOptions {
  /** Dataset folder holding {split}.jsonl.gz (or {split}.jsonl) and clipart/. Default: defaultCodrawDir(). */
  dir?: string;
  split: 'train' | 'val' | string;
}

function splitFile(opts: CodrawLoadOptions): string {
  const dir = opts.dir ?? defaultCodrawDir();
  const gz = join(dir, `${opts.split}.jsonl.gz`);
  const plain = join(dir, `${opts.split}.jsonl`);
  if (existsSync(gz)) return gz;
  if (existsSync(plain)) return plain;
  throw new Error(`CoDraw split "${opts.split}" not found: neither ${gz} nor ${plain} exists`);
}

/**
 * Run `each` on every scene line of a split file, collecting every problem (bad JSON, missing fields, or an
 * error thrown by `each`, e.g. a malformed abstract-scene string) with its file and line; throws them together.
 */
function forEachScene(opts: CodrawLoadOptions, each: (scene: CodrawScene) => void): void {
  const file = splitFile(opts);
  const buf = readFileSync(file);
  const text = (file.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8');
  const problems: EpisodeProblem[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      problems.push({ file, line, message: `invalid JSON: ${(e as Error).message}` });
      return;
    }
    const r = sceneSchema.safeParse(value);
    if (!r.success) {
      problems.push({ file, line, message: r.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ') });
      return;
    }
    try {
      each(r.data);
    } catch (e) {
      problems.push({ file, line, message: (e as Error).message });
    }
  });
  if (problems.length > 0) throw new EpisodeFormatError(problems);
}

/**
 * Read the raw scenes of a split: `{dir}/{split}.jsonl.gz` (gzip) or, if absent, `{dir}/{split}.jsonl`.
 * Every line is checked (JSON, fields, and every abstract-scene string parses) before anything is returned;
 * problems are thrown together as one EpisodeFormatError with file:line:reason.
 */
export function loadCodrawScenes(opts: CodrawLoadOptions): CodrawScene[] {
  const scenes: CodrawScene[] = [];
  forEachScene(opts, (scene) => {
    parseAbstractScene(scene.abs_t);
    for (const rd of scene.dialog) {
      parseAbstractScene(rd.abs_b);
      parseAbstractScene(rd.abs_d);
    }
    scenes.push(scene);
  });
  return scenes;
}

const clean = (s: string) => s.replace(/\s+/g, ' ').trim();

/** The text of one round: "<teller> {msg_t} <drawer> {msg_d}". */
export function codrawRoundText(r: Pick<CodrawRound, 'msg_t' | 'msg_d'>): string {
  return clean(`<teller> ${r.msg_t} <drawer> ${r.msg_d}`);
}

/**
 * Build an episode from a scene as GeNeVA did: each round's text is the teller's and drawer's utterances with
 * speaker tags; a round whose drawer canvas (abs_d) adds no object class absent from the previous turn's canvas
 * is merged into the next round (texts joined in order); rounds after the last adding round are dropped (there is
 * no image for them to describe). Each turn's objects are the drawer canvas after its last round, palette items
 * dropped. The canvas before turn 1 is the empty background. Returns null if no round adds anything.
 */
export function codrawEpisode(scene: CodrawScene, split = scene.split ?? 'unknown'): CodrawEpisode | null {
  const turns: EpisodeTurn<CodrawObject>[] = [];
  let before = new Set<number>();
  let pending: string[] = [];
  for (const rd of scene.dialog) {
    pending.push(codrawRoundText(rd));
    const objects = sceneToObjects(parseAbstractScene(rd.abs_d));
    const classes = new Set(objects.map((o) => o.cls));
    if (![...classes].some((c) => !before.has(c))) continue;
    turns.push({ text: pending.join(' '), objects });
    pending = [];
    before = classes;
  }
  if (turns.length === 0) return null;
  return { id: `codraw-${split}-${scene.image_id}`, dataset: 'codraw', turns };
}

/** Read a split and build its episodes (scenes whose dialog never adds an object are skipped). */
export function loadCodraw(opts: CodrawLoadOptions): CodrawEpisode[] {
  const out: CodrawEpisode[] = [];
  // One pass: building an episode parses every drawer canvas, so a malformed one is reported with its line.
  forEachScene(opts, (scene) => {
    const ep = codrawEpisode(scene, opts.split);
    if (ep) out.push(ep);
  });
  return out;
}
