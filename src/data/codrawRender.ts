/**
 * CoDraw renderer: background.png, then the clip-art, each scaled by its depth, mirrored when flipped, painted
 * sky first, then from far (z = 2) to near (z = 0), ties by class index (the order CoDraw's own renderer uses).
 *
 * The 500x400 CoDraw canvas is stretched to the square output: canvas point (px, py) lands on
 * (px * size / 500, py * size / 400), so an object with normalised centre (x, y) is centred on (x * size, y * size)
 * and everything is squashed horizontally by 400/500 (as GeNeVA's square CoDraw images are).
 * Clip-art PNGs are read once per folder and cached; rendering is synchronous and deterministic.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Image, createCanvas, type SKRSContext2D } from '@napi-rs/canvas';
import { CODRAW_CANVAS, CODRAW_DEPTH_SCALE, codrawPng, defaultCodrawDir } from './codraw.js';
import type { CodrawObject } from './episode.js';
import { contextToImage, type RgbImage } from './image.js';

export interface CodrawRenderOptions {
  /** Folder with background.png and the clip-art PNGs. Default: {defaultCodrawDir()}/clipart. */
  clipartDir?: string;
}

const cache = new Map<string, Image>();

function loadClipart(dir: string, name: string): Image {
  const path = join(dir, name);
  let img = cache.get(path);
  if (!img) {
    if (!existsSync(path)) throw new Error(`CoDraw clip-art not found: ${path}`);
    img = new Image();
    img.src = readFileSync(path); // a Buffer source decodes synchronously
    if (!img.width || !img.height) throw new Error(`CoDraw clip-art could not be decoded: ${path}`);
    cache.set(path, img);
  }
  return img;
}

function clipartDirOf(opts: CodrawRenderOptions | undefined): string {
  return opts?.clipartDir ?? join(defaultCodrawDir(), 'clipart');
}

/** Sort key of the paint order: sun behind everything, then the other sky objects, then far to near, then class. */
function paintKey(o: CodrawObject): [number, number, number, number] {
  const sky = o.cls < 8 ? 0 : 1;
  return [o.cls === 3 ? 0 : 1, sky, -o.z, o.cls];
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** The objects in the order they are painted (first = backmost). Stable for equal keys. */
export function codrawPaintOrder<O extends CodrawObject>(objects: readonly O[]): O[] {
  return objects
    .map((o, i) => ({ o, i, k: paintKey(o) }))
    .sort((a, b) => compareKeys(a.k, b.k) || a.i - b.i)
    .map((e) => e.o);
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 8 || size > 4096) throw new Error(`render size must be an integer in [8, 4096], got ${size}`);
}


/** Render a CoDraw scene (episode objects) at size x size. */
export function renderCodraw(objects: readonly CodrawObject[], size: number, opts?: CodrawRenderOptions): RgbImage {
  checkSize(size);
  const dir = clipartDirOf(opts);
  const canvas = createCanvas(size, size);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(loadClipart(dir, 'background.png'), 0, 0, size, size);
  const sx = size / CODRAW_CANVAS.width;
  const sy = size / CODRAW_CANVAS.height;
  for (const o of codrawPaintOrder(objects)) {
    const img = loadClipart(dir, codrawPng(o.cls, o.subtype ?? 0));
    const scale = CODRAW_DEPTH_SCALE[o.z];
    const w = img.width * scale;
    const h = img.height * scale;
    // Work in canvas units (500x400), centred on the object; mirror about its vertical axis when flipped.
    ctx.setTransform(sx * (o.flip ? -1 : 1), 0, 0, sy, o.x * size, o.y * size);
    ctx.drawImage(img, -w / 2, -h / 2, w, h);
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  return contextToImage(ctx, size);
}

/** The empty canvas (background.png alone): the first reference canvas of every CoDraw episode. */
export function codrawBackground(size: number, opts?: CodrawRenderOptions): RgbImage {
  return renderCodraw([], size, opts);
}
