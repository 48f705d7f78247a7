/**
 * Contact sheet of an evaluation: per episode, the ground-truth renderings in one row and the generated images in
 * the row below, one column per turn, with the episode id and per-turn F1 written beside them.
 */
import { createCanvas } from '@napi-rs/canvas';
import { imageToCanvas, resizeImage, type RgbImage } from '../data/index.js';
import type { EpisodeResult } from './evaluate.js';

export interface ContactSheetOptions {
  /** Side of each cell in pixels (images are resized to it). Default: max(64, image size). */
  cell?: number;
  /** At most this many episodes (the sheet stays a sensible size). Default 24. */
  maxEpisodes?: number;
}

const GAP = 4;
const LABEL_W = 44;
const HEADER_H = 16;

/** PNG bytes of the contact sheet. */
export function contactSheet(results: readonly EpisodeResult[], opts: ContactSheetOptions = {}): Buffer {
  const shown = results.filter((r) => r.turns.every((t) => t.groundTruth && t.generated)).slice(0, opts.maxEpisodes ?? 24);
  if (shown.length === 0) throw new Error('contactSheet: no episodes with images');
  const first = shown[0]!.turns[0]!.groundTruth!;
  const cell = opts.cell ?? Math.max(64, first.width);
  const cols = Math.max(...shown.map((r) => r.turns.length));
  const blockH = HEADER_H + 2 * cell + GAP;
  const width = LABEL_W + cols * (cell + GAP) + GAP;
  const height = shown.length * (blockH + GAP) + GAP;
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  ctx.font = '11px sans-serif';
  ctx.textBaseline = 'middle';

  const put = (img: RgbImage, x: number, y: number): void => {
    ctx.drawImage(imageToCanvas(resizeImage(img, cell)), x, y);
  };

  shown.forEach((r, e) => {
    const top = GAP + e * (blockH + GAP);
    ctx.fillStyle = '#000000';
    ctx.fillText(`${r.id}  RSIM ${r.rsim.toFixed(2)}`, GAP, top + HEADER_H / 2);
    ctx.fillText('GT', GAP, top + HEADER_H + cell / 2);
    ctx.fillText('gen', GAP, top + HEADER_H + cell + GAP + cell / 2);
    r.turns.forEach((t, c) => {
      const x = LABEL_W + c * (cell + GAP);
      put(t.groundTruth!, x, top + HEADER_H);
      put(t.generated!, x, top + HEADER_H + cell + GAP);
      ctx.fillStyle = '#ffffff';
      ctx.fillRect(x, top + HEADER_H + 2 * cell + GAP - 13, 52, 13);
      ctx.fillStyle = '#000000';
      ctx.fillText(`F1 ${t.scores.f1.toFixed(2)}`, x + 2, top + HEADER_H + 2 * cell + GAP - 6);
    });
  });
  return canvas.toBuffer('image/png');
}
