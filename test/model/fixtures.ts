/** Small synthetic turns for model tests: 16x16 canvases with coloured squares and matching texts. */
import * as tf from '@tensorflow/tfjs-core';
import { WordTokenizer, createModel, type CddIcm, type TurnBatch } from '../../src/model/index.js';
import type { RgbImage } from '../../src/data/index.js';

export const COLORS: Record<string, [number, number, number]> = {
  red: [230, 30, 30],
  green: [30, 200, 40],
  blue: [40, 60, 230],
  yellow: [240, 220, 30],
};
export const PLACES: Record<string, [number, number]> = { left: [1, 5], right: [9, 5], top: [5, 1], bottom: [5, 9] };

/** A grey canvas with squares drawn at the given places. */
export function drawScene(items: Array<{ color: string; place: string }>, size = 16): RgbImage {
  const data = new Uint8Array(size * size * 3).fill(128);
  for (const { color, place } of items) {
    const [x0, y0] = PLACES[place]!;
    const rgb = COLORS[color]!;
    for (let y = y0; y < y0 + 6 && y < size; y++) for (let x = x0; x < x0 + 6 && x < size; x++) data.set(rgb, (y * size + x) * 3);
  }
  return { width: size, height: size, data };
}

export interface Turn {
  reference: RgbImage;
  target: RgbImage;
  text: string;
}

/** Single-object turns: every colour at every place, added to an empty canvas (16 distinct turns). */
export function makeTurns(): Turn[] {
  const out: Turn[] = [];
  for (const color of Object.keys(COLORS)) {
    for (const place of Object.keys(PLACES)) {
      out.push({ reference: drawScene([]), target: drawScene([{ color, place }]), text: `add a ${color} square on the ${place}` });
    }
  }
  return out;
}

export function tinyTokenizer(): WordTokenizer {
  return WordTokenizer.fromCorpus(makeTurns().map((t) => t.text), { contextLength: 10 });
}

export function tinyModel(): CddIcm {
  return createModel('tiny', { tokenizer: tinyTokenizer() });
}

function toTensor(images: RgbImage[]): tf.Tensor4D {
  const n = images.length;
  const s = images[0]!.width;
  const out = new Float32Array(n * s * s * 3);
  images.forEach((im, i) => im.data.forEach((v, j) => (out[i * s * s * 3 + j] = v / 127.5 - 1)));
  return tf.tensor4d(out, [n, s, s, 3]);
}

export function toBatch(turns: Turn[]): TurnBatch {
  return { reference: toTensor(turns.map((t) => t.reference)), target: toTensor(turns.map((t) => t.target)), texts: turns.map((t) => t.text) };
}

export { mulberry32 as seededRng } from '../../src/data/index.js';

/** Add N(0, std) to every weight, so zero-initialised output layers no longer hide the rest of the network. */
export function perturb(model: CddIcm, std = 0.05, seed = 99): void {
  let k = seed;
  for (const v of model.parameters()) tf.tidy(() => v.assign(tf.add(v, tf.randomNormal(v.shape, 0, std, 'float32', k++))));
}
