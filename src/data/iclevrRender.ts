/**
 * CLEVR-like renderer for i-CLEVR-style scenes, drawn with @napi-rs/canvas: a grey floor with a soft gradient,
 * shaded solids in CLEVR's colours with soft shadows, nearer objects (larger y) larger and painted later.
 * Each object's centre is drawn at exactly (x * size, y * size). Deterministic: same objects and size, same bytes.
 */
import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas';
import type { IclevrColor, IclevrObject } from './episode.js';
import { contextToImage, type RgbImage } from './image.js';

type Rgb = readonly [number, number, number];

/** CLEVR's colour values (from CLEVR's properties.json). */
export const ICLEVR_COLOR_RGB: Readonly<Record<IclevrColor, Rgb>> = {
  gray: [87, 87, 87],
  red: [173, 35, 35],
  blue: [42, 75, 215],
  green: [29, 105, 20],
  brown: [129, 74, 25],
  purple: [129, 38, 192],
  cyan: [41, 208, 208],
  yellow: [255, 238, 51],
};

/** Floor colour at the far (top) and near (bottom) edge of the image. */
export const ICLEVR_FLOOR_RGB = { far: [150, 150, 146] as Rgb, near: [182, 182, 178] as Rgb };

/** Object size: radius (fraction of the image side) at the back of the floor (y = 0.25) and at the front (y = 0.9). */
const RADIUS_FAR = 0.06;
const RADIUS_NEAR = 0.09;

/** Radius of an object's footprint (fraction of the image side) at depth y: linear in y, larger toward the viewer. */
export function iclevrObjectRadius(y: number): number {
  const t = (y - 0.25) / 0.65;
  return RADIUS_FAR + (RADIUS_NEAR - RADIUS_FAR) * t;
}

const css = (c: Rgb, alpha = 1) =>
  alpha === 1 ? `rgb(${c[0]},${c[1]},${c[2]})` : `rgba(${c[0]},${c[1]},${c[2]},${alpha})`;

/** Multiply a colour's brightness (k < 1 darker), or mix toward white (k > 1). */
function shade(c: Rgb, k: number): Rgb {
  if (k <= 1) return [Math.round(c[0] * k), Math.round(c[1] * k), Math.round(c[2] * k)];
  const w = Math.min(1, k - 1);
  return [
    Math.round(c[0] + (255 - c[0]) * w),
    Math.round(c[1] + (255 - c[1]) * w),
    Math.round(c[2] + (255 - c[2]) * w),
  ];
}

function drawFloor(ctx: SKRSContext2D, size: number): void {
  const g = ctx.createLinearGradient(0, 0, 0, size);
  g.addColorStop(0, css(ICLEVR_FLOOR_RGB.far));
  g.addColorStop(1, css(ICLEVR_FLOOR_RGB.near));
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, size, size);
  // Subtle darkening toward the left and right edges, like CLEVR's area lights falling off.
  const v = ctx.createLinearGradient(0, 0, size, 0);
  v.addColorStop(0, 'rgba(0,0,0,0.06)');
  v.addColorStop(0.5, 'rgba(0,0,0,0)');
  v.addColorStop(1, 'rgba(0,0,0,0.06)');
  ctx.fillStyle = v;
  ctx.fillRect(0, 0, size, size);
}

function drawShadow(ctx: SKRSContext2D, cx: number, cy: number, r: number): void {
  // Light from the upper left: the shadow falls right and toward the viewer, fading out at its rim.
  const sx = cx + 0.45 * r;
  const sy = cy + 0.55 * r;
  ctx.save();
  ctx.translate(sx, sy);
  ctx.scale(1.35, 0.6);
  const g = ctx.createRadialGradient(0, 0, 0, 0, 0, r * 1.25);
  g.addColorStop(0, 'rgba(20,20,20,0.34)');
  g.addColorStop(0.6, 'rgba(20,20,20,0.2)');
  g.addColorStop(1, 'rgba(20,20,20,0)');
  ctx.fillStyle = g;
  ctx.beginPath();
  ctx.arc(0, 0, r * 1.25, 0, Math.PI * 2);
  ctx.fill();
  ctx.restore();
}

function drawSphere(ctx: SKRSContext2D, cx: number, cy: number, r: number, c: Rgb): void {
  // Radial shading: highlight up-left, base colour around the centre, darker toward the lower-right rim.
  const g = ctx.createRadialGradient(cx - 0.4 * r, cy - 0.4 * r, 0.05 * r, cx, cy, r * 1.05);
  g.addColorStop(0, css(shade(c, 1.45)));
  g.addColorStop(0.35, css(shade(c, 1.08)));
  g.addColorStop(0.6, css(c));
  g.addColorStop(1, css(shade(c, 0.5)));
  ctx.fillStyle = g;
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, Math.PI * 2);
  ctx.fill();
}

function drawCube(ctx: SKRSContext2D, cx: number, cy: number, r: number, c: Rgb): void {
  // Three visible faces in a light perspective seen from above-front-left: front (base colour), top (lit),
  // right side (in shade). The bounding box of the three faces is centred on (cx, cy).
  const a = 1.5 * r; // front face side
  const dx = 0.38 * a; // receding edge, horizontal part
  const dy = 0.32 * a; // receding edge, vertical part
  const x0 = cx - (a + dx) / 2;
  const y0 = cy - (a - dy) / 2; // top of the front face
  // Front face, with a slight vertical gradient.
  const gf = ctx.createLinearGradient(x0, y0, x0, y0 + a);
  gf.addColorStop(0, css(shade(c, 1.06)));
  gf.addColorStop(1, css(shade(c, 0.86)));
  ctx.fillStyle = gf;
  ctx.fillRect(x0, y0, a, a);
  // Top face.
  ctx.fillStyle = css(shade(c, 1.3));
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x0 + dx, y0 - dy);
  ctx.lineTo(x0 + a + dx, y0 - dy);
  ctx.lineTo(x0 + a, y0);
  ctx.closePath();
  ctx.fill();
  // Right face.
  const gs = ctx.createLinearGradient(x0 + a, 0, x0 + a + dx, 0);
  gs.addColorStop(0, css(shade(c, 0.66)));
  gs.addColorStop(1, css(shade(c, 0.52)));
  ctx.fillStyle = gs;
  ctx.beginPath();
  ctx.moveTo(x0 + a, y0);
  ctx.lineTo(x0 + a + dx, y0 - dy);
  ctx.lineTo(x0 + a + dx, y0 + a - dy);
  ctx.lineTo(x0 + a, y0 + a);
  ctx.closePath();
  ctx.fill();
}

function drawCylinder(ctx: SKRSContext2D, cx: number, cy: number, r: number, c: Rgb): void {
  // Upright cylinder: elliptic top (lit), body shaded across its width, elliptic bottom edge.
  const w = 0.88 * r; // half width
  const e = 0.34 * w; // half height of the top and bottom ellipses
  const h = 1.45 * r; // body height between the ellipse centres
  const top = cy - h / 2 + e / 2; // centre of the top ellipse; the whole silhouette is centred on cy
  const bottom = top + h;
  const gb = ctx.createLinearGradient(cx - w, 0, cx + w, 0);
  gb.addColorStop(0, css(shade(c, 0.62)));
  gb.addColorStop(0.3, css(shade(c, 1.12)));
  gb.addColorStop(0.55, css(c));
  gb.addColorStop(1, css(shade(c, 0.5)));
  ctx.fillStyle = gb;
  ctx.beginPath();
  ctx.moveTo(cx - w, top);
  ctx.lineTo(cx - w, bottom);
  ctx.ellipse(cx, bottom, w, e, 0, Math.PI, 0, true);
  ctx.lineTo(cx + w, top);
  ctx.closePath();
  ctx.fill();
  ctx.fillStyle = css(shade(c, 1.28));
  ctx.beginPath();
  ctx.ellipse(cx, top, w, e, 0, 0, Math.PI * 2);
  ctx.fill();
}


function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 8 || size > 4096) throw new Error(`render size must be an integer in [8, 4096], got ${size}`);
}

/** The empty floor: the first reference canvas of every i-CLEVR episode. */
export function iclevrBackground(size: number): RgbImage {
  checkSize(size);
  const canvas = createCanvas(size, size);
  const ctx = canvas.getContext('2d');
  drawFloor(ctx, size);
  return contextToImage(ctx, size);
}

/**
 * Render a scene at size x size. Shadows go down first, then objects from far (small y) to near (large y),
 * so a nearer object covers a farther one; ties keep the episode's order (later turn on top).
 */
export function renderIclevr(objects: readonly IclevrObject[], size: number): RgbImage {
  checkSize(size);
  const canvas = createCanvas(size, size);
  const ctx = canvas.getContext('2d');
  drawFloor(ctx, size);
  const order = objects.map((o, i) => ({ o, i })).sort((a, b) => a.o.y - b.o.y || a.i - b.i);
  for (const { o } of order) drawShadow(ctx, o.x * size, o.y * size, iclevrObjectRadius(o.y) * size);
  for (const { o } of order) {
    const cx = o.x * size;
    const cy = o.y * size;
    const r = iclevrObjectRadius(o.y) * size;
    const c = ICLEVR_COLOR_RGB[o.color];
    if (o.shape === 'sphere') drawSphere(ctx, cx, cy, r, c);
    else if (o.shape === 'cube') drawCube(ctx, cx, cy, r, c);
    else drawCylinder(ctx, cx, cy, r, c);
  }
  return contextToImage(ctx, size);
}
