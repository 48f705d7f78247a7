/** checkPng: what an uploaded image must be before anything decodes it. */
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkPng, decodePng, encodePng, blankImage, PngCheckError } from '../../src/data/index.js';
import { JPEG, PNG_SIGNATURE, SVG, bombPng, ihdr, pngChunk, solidPng, truncatedIdatPng } from '../utils/png.js';

const budget = { maxPixels: 256 * 256 };
const reason = (b: Buffer): string => {
  try {
    checkPng(b, budget);
  } catch (e) {
    expect(e).toBeInstanceOf(PngCheckError);
    return (e as Error).message;
  }
  return 'accepted';
};

describe('checkPng', () => {
  it('accepts complete PNGs, ours and hand-built, interlaced too, and returns their header', async () => {
    expect(checkPng(encodePng(blankImage(20, 10)), budget)).toMatchObject({ width: 20, height: 10 });
    expect(checkPng(solidPng(7, 3), budget)).toEqual({ width: 7, height: 3, bitDepth: 8, colorType: 2, interlaced: false });
    // Adam7: the raw size is the sum of the seven passes' rows; for 3x3 the passes are 1x1, 0x0, 1x0, 1x1, 2x1, 1x2, 3x1.
    const passes = [
      [1, 1],
      [0, 0],
      [1, 0],
      [1, 1],
      [2, 1],
      [1, 2],
      [3, 1],
    ].map(([w, h]) => (w! > 0 && h! > 0 ? h! * (1 + w! * 3) : 0));
    const interlaced = Buffer.concat([
      PNG_SIGNATURE,
      ihdr(3, 3, { interlace: 1 }),
      pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(passes.reduce((a, b) => a + b, 0)))),
      pngChunk('IEND'),
    ]);
    expect(checkPng(interlaced, budget).interlaced).toBe(true);
    expect((await decodePng(solidPng(4, 4, [10, 20, 30]))).data.slice(0, 3)).toEqual(new Uint8Array([10, 20, 30]));
  });

  it('refuses other formats by their signature: SVG, JPEG, text', () => {
    for (const b of [SVG, JPEG, Buffer.from('hello'), Buffer.alloc(0)]) expect(reason(b)).toMatch(/not a PNG/);
  });

  it('refuses a header over the pixel budget before inflating anything', () => {
    expect(reason(bombPng(20_000, 20_000))).toMatch(/20000x20000 pixels; the limit is 65536/);
    expect(reason(bombPng(257, 256))).toMatch(/pixels/);
    expect(reason(bombPng(0, 5))).toMatch(/no pixels/);
  });

  it('refuses truncated or corrupt files: cut chunks, bad CRC, short or long image data, missing IEND', () => {
    const good = solidPng(16, 16);
    expect(reason(good.subarray(0, 40))).toMatch(/truncated/);
    expect(reason(good.subarray(0, good.length - 12))).toMatch(/no IEND/);
    expect(reason(truncatedIdatPng(16, 16))).toMatch(/truncated or corrupt/);
    const flipped = Buffer.from(good);
    flipped[40] = flipped[40]! ^ 0xff;
    expect(reason(flipped)).toMatch(/CRC mismatch/);
    // Image data that inflates to more than the header allows is refused too (the inflate is bounded).
    const long = Buffer.concat([PNG_SIGNATURE, ihdr(2, 2), pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(10_000))), pngChunk('IEND')]);
    expect(reason(long)).toMatch(/IDAT/);
    expect(reason(Buffer.concat([good, Buffer.from('trailing')]))).toMatch(/after the IEND/);
    expect(reason(Buffer.concat([PNG_SIGNATURE, pngChunk('IEND')]))).toMatch(/first chunk is not IHDR/);
    expect(reason(Buffer.concat([PNG_SIGNATURE, ihdr(2, 2, { colorType: 5 }), pngChunk('IEND')]))).toMatch(/no valid PNG format/);
    expect(reason(Buffer.concat([PNG_SIGNATURE, ihdr(2, 2, { colorType: 3 }), pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(6))), pngChunk('IEND')]))).toMatch(/PLTE/);
  });
});
