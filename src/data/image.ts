/**
 * The one in-memory image type shared by data, model, engine and eval: 8-bit RGB, row-major.
 * Conversions to tensors use the diffusion convention: float32 in [-1, 1], NHWC.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createCanvas, loadImage, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';

export interface RgbImage {
  width: number;
  height: number;
  /** width * height * 3 bytes, RGB, row-major. */
  data: Uint8Array;
}

export function blankImage(width: number, height: number, rgb: [number, number, number] = [0, 0, 0]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, data };
}

/** A canvas holding the image (opaque), for drawing on or encoding. */
export function imageToCanvas(img: RgbImage): Canvas {
  const canvas = createCanvas(img.width, img.height);
  const ctx = canvas.getContext('2d');
  const id = ctx.createImageData(img.width, img.height);
  for (let i = 0, j = 0; j < img.data.length; i += 4, j += 3) {
    id.data[i] = img.data[j]!;
    id.data[i + 1] = img.data[j + 1]!;
    id.data[i + 2] = img.data[j + 2]!;
    id.data[i + 3] = 255;
  }
  ctx.putImageData(id, 0, 0);
  return canvas;
}

/** The top-left width x height pixels of a 2D context as an RgbImage (alpha dropped). */
export function contextToImage(ctx: SKRSContext2D, width: number, height = width): RgbImage {
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i]!;
    data[j + 1] = rgba[i + 1]!;
    data[j + 2] = rgba[i + 2]!;
  }
  return { width, height, data };
}

/** Encode as PNG (RGB). */
export function encodePng(img: RgbImage): Buffer {
  return imageToCanvas(img).toBuffer('image/png');
}

/** Encode as PNG on libuv's thread pool, so the event loop never waits for the compression. */
export function encodePngAsync(img: RgbImage): Promise<Buffer> {
  return imageToCanvas(img).encode('png');
}

/** Decode a PNG (or any format the canvas library reads), dropping alpha over black. Optional resize to size x size. */
export async function decodePng(buf: Buffer | Uint8Array, size?: number): Promise<RgbImage> {
  const im = await loadImage(Buffer.from(buf));
  const w = size ?? im.width;
  const h = size ?? im.height;
  const canvas = createCanvas(w, h);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(im, 0, 0, w, h);
  return contextToImage(ctx, w, h);
}

/** Stack images (all the same size) into a float32 [N, H, W, 3] tensor in [-1, 1]. */
export function imagesToTensor(images: RgbImage[]): tf.Tensor4D {
  if (images.length === 0) throw new Error('imagesToTensor: no images');
  const { width, height } = images[0]!;
  const out = new Float32Array(images.length * width * height * 3);
  images.forEach((im, n) => {
    if (im.width !== width || im.height !== height) throw new Error('imagesToTensor: images differ in size');
    const off = n * width * height * 3;
    for (let i = 0; i < im.data.length; i++) out[off + i] = im.data[i]! / 127.5 - 1;
  });
  return tf.tensor4d(out, [images.length, height, width, 3]);
}

/** Inverse of imagesToTensor: clip to [-1, 1] and quantise. Does not dispose the input. */
export function tensorToImages(t: tf.Tensor4D): RgbImage[] {
  const [n, h, w, c] = t.shape;
  if (c !== 3) throw new Error(`tensorToImages: expected 3 channels, got ${c}`);
  const vals = t.dataSync();
  const images: RgbImage[] = [];
  for (let k = 0; k < n; k++) {
    const data = new Uint8Array(h * w * 3);
    const off = k * h * w * 3;
    for (let i = 0; i < data.length; i++) {
      const v = Math.min(1, Math.max(-1, vals[off + i]!));
      data[i] = Math.round((v + 1) * 127.5);
    }
    images.push({ width: w, height: h, data });
  }
  return images;
}

/** Smooth resize to size x size via the canvas library (previews, detector and contact-sheet inputs). */
export function resizeImage(img: RgbImage, size: number): RgbImage {
  if (img.width === size && img.height === size) return img;
  const dst = createCanvas(size, size);
  const dctx = dst.getContext('2d');
  dctx.imageSmoothingQuality = 'high';
  dctx.drawImage(imageToCanvas(img), 0, 0, size, size);
  return contextToImage(dctx, size);
}
