/**
 * Dataset-independent entry points: render any episode scene, the first (empty) canvas of a dataset, and the
 * (reference, text, target) triples that training and evaluation consume turn by turn.
 */
import { codrawLabel } from './codraw.js';
import { codrawBackground, renderCodraw, type CodrawRenderOptions } from './codrawRender.js';
import type { CodrawObject, Dataset, Episode, IclevrObject, SceneObject } from './episode.js';
import { iclevrLabel } from './iclevr.js';
import { iclevrBackground, renderIclevr } from './iclevrRender.js';
import type { RgbImage } from './image.js';

/** Rendering options (only CoDraw has any: where its clip-art lives). */
export type SceneRenderOptions = CodrawRenderOptions;

function isIclevr(o: SceneObject): o is IclevrObject {
  return 'shape' in o;
}

function asIclevr(objects: readonly SceneObject[]): IclevrObject[] {
  return objects.map((o) => {
    if (!isIclevr(o)) throw new Error('renderScene: dataset "iclevr" got a CoDraw object');
    return o;
  });
}

function asCodraw(objects: readonly SceneObject[]): CodrawObject[] {
  return objects.map((o) => {
    if (isIclevr(o)) throw new Error('renderScene: dataset "codraw" got an i-CLEVR object');
    return o;
  });
}

/** Render the scene `objects` of `dataset` at size x size (the canvas the episode's turn describes). */
export function renderScene(dataset: Dataset, objects: readonly SceneObject[], size: number, opts?: SceneRenderOptions): RgbImage {
  return dataset === 'iclevr' ? renderIclevr(asIclevr(objects), size) : renderCodraw(asCodraw(objects), size, opts);
}

/** The empty canvas of a dataset: the reference image of every episode's first turn. */
export function backgroundFor(dataset: Dataset, size: number, opts?: SceneRenderOptions): RgbImage {
  return dataset === 'iclevr' ? iclevrBackground(size) : codrawBackground(size, opts);
}

/** The detector / metric label of an object: "red cube" for i-CLEVR, the class name for CoDraw. */
export function objectLabel(o: SceneObject): string {
  return isIclevr(o) ? iclevrLabel(o) : codrawLabel(o);
}

/** One training / evaluation step of an episode. */
export interface TurnTriple {
  /** 0-based turn index. */
  turn: number;
  /** The canvas before the turn: the previous turn's target, or the dataset's background for turn 0. */
  reference: RgbImage;
  /** The instruction of the turn. */
  text: string;
  /** The canvas after the turn (ground truth). */
  target: RgbImage;
  /** The scene after the turn (for detectors and metrics). */
  objects: SceneObject[];
}

/** Every turn of an episode as (reference, text, target), all rendered at size x size. */
export function turnTriples(episode: Episode, size: number, opts?: SceneRenderOptions): TurnTriple[] {
  let reference = backgroundFor(episode.dataset, size, opts);
  const out: TurnTriple[] = [];
  const turns: readonly { text: string; objects: readonly SceneObject[] }[] = episode.turns;
  turns.forEach((t, i) => {
    const target = renderScene(episode.dataset, t.objects, size, opts);
    out.push({ turn: i, reference, text: t.text, target, objects: [...t.objects] });
    reference = target;
  });
  return out;
}

/**
 * One turn of an episode as (reference, text, target) without rendering the other turns: the cheap way to
 * sample random turns for training. `turn` is 0-based.
 */
export function turnTriple(episode: Episode, turn: number, size: number, opts?: SceneRenderOptions): TurnTriple {
  const turns: readonly { text: string; objects: readonly SceneObject[] }[] = episode.turns;
  const t = turns[turn];
  if (!t || !Number.isInteger(turn)) throw new Error(`turnTriple: episode ${episode.id} has no turn ${turn} (it has ${turns.length})`);
  const reference = turn === 0 ? backgroundFor(episode.dataset, size, opts) : renderScene(episode.dataset, turns[turn - 1]!.objects, size, opts);
  return { turn, reference, text: t.text, target: renderScene(episode.dataset, t.objects, size, opts), objects: [...t.objects] };
}
