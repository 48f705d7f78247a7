/**
 * Checks on an untrusted PNG before anything decodes it: the signature (PNG only: no SVG, JPEG or other formats
 * the image library would also read), the chunk structure (lengths, CRCs, IHDR first, IEND last), the size from
 * the header against a pixel budget, and that the image data inflates to exactly the size the header promises
 * (a truncated IDAT fails here). The inflate is bounded by that size, so a decompression bomb costs at most
 * `maxPixels` worth of memory and is refused before the decoder allocates a canvas for it.
 */
import zlib from 'node:zlib';

/** Why a buffer is not an acceptable PNG; the message says what is wrong, for the person who sent it. */
export class PngCheckError extends Error {
  override name = 'PngCheckError';
}

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Samples per pixel and allowed bit depths of each PNG colour type (PNG spec, 11.2.2). */
const COLOR_TYPES: Record<number, { channels: number; depths: number[] }> = {
  0: { channels: 1, depths: [1, 2, 4, 8, 16] },
  2: { channels: 3, depths: [8, 16] },
  3: { channels: 1, depths: [1, 2, 4, 8] },
  4: { channels: 2, depths: [8, 16] },
  6: { channels: 4, depths: [8, 16] },
};
/** Adam7 passes: x offset, y offset, x step, y step. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** Bytes of the filtered image data (one filter byte per row) a header promises. */
function rawSize(h: PngHeader): number {
  const bpp = h.bitDepth * COLOR_TYPES[h.colorType]!.channels;
  const rows = (w: number, n: number) => (w > 0 && n > 0 ? n * (1 + Math.ceil((w * bpp) / 8)) : 0);
  if (!h.interlaced) return rows(h.width, h.height);
  return ADAM7.reduce(
    (sum, [x0, y0, dx, dy]) => sum + rows(Math.ceil((h.width - x0) / dx), Math.ceil((h.height - y0) / dy)),
    0,
  );
}

/** Check that `buf` is one complete, well-formed PNG of at most `maxPixels` pixels; returns its header. */
export function checkPng(buf: Uint8Array, opts: { maxPixels: number }): PngHeader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < SIGNATURE.length || !b.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    throw new PngCheckError('it is not a PNG (the PNG signature is missing); only PNG images are accepted');
  }
  let header: PngHeader | null = null;
  let hasPalette = false;
  let ended = false;
  const idat: Buffer[] = [];
  for (let at = SIGNATURE.length; at < b.length; ) {
    if (ended) throw new PngCheckError('there are bytes after the IEND chunk');
    if (at + 12 > b.length) throw new PngCheckError('the file is truncated (a chunk header is cut off)');
    const length = b.readUInt32BE(at);
    const type = b.toString('latin1', at + 4, at + 8);
    if (length > 0x7fffffff || at + 12 + length > b.length) throw new PngCheckError(`the file is truncated (chunk ${type} is cut off)`);
    const data = b.subarray(at + 8, at + 8 + length);
    if (zlib.crc32(b.subarray(at + 4, at + 8 + length)) !== b.readUInt32BE(at + 8 + length)) {
      throw new PngCheckError(`chunk ${type} is corrupt (CRC mismatch)`);
    }
    if (!header && type !== 'IHDR') throw new PngCheckError('the first chunk is not IHDR');
    if (type === 'IHDR') {
      if (header) throw new PngCheckError('there are two IHDR chunks');
      if (length !== 13) throw new PngCheckError('the IHDR chunk has the wrong length');
      header = {
        width: data.readUInt32BE(0),
        height: data.readUInt32BE(4),
        bitDepth: data[8]!,
        colorType: data[9]!,
        interlaced: data[12] === 1,
      };
      const ct = COLOR_TYPES[header.colorType];
      if (!ct || !ct.depths.includes(header.bitDepth) || data[10] !== 0 || data[11] !== 0 || data[12]! > 1) {
        throw new PngCheckError('the IHDR chunk describes no valid PNG format');
      }
      if (header.width === 0 || header.height === 0) throw new PngCheckError('the image has no pixels');
      if (header.width * header.height > opts.maxPixels) {
        throw new PngCheckError(
          `it is ${header.width}x${header.height} pixels; the limit is ${opts.maxPixels} pixels (width x height)`,
        );
      }
    } else if (type === 'PLTE') hasPalette = true;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') ended = true;
    at += 12 + length;
  }
  if (!header) throw new PngCheckError('the file is truncated (no IHDR chunk)');
  if (!ended) throw new PngCheckError('the file is truncated (no IEND chunk)');
  if (header.colorType === 3 && !hasPalette) throw new PngCheckError('a palette image has no PLTE chunk');
  if (idat.length === 0) throw new PngCheckError('the file has no image data (IDAT)');
  const expected = rawSize(header);
  let raw: Buffer;
  try {
    raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: expected });
  } catch {
    throw new PngCheckError('its image data is truncated or corrupt (IDAT does not inflate to the size IHDR gives)');
  }
  if (raw.length !== expected) {
    throw new PngCheckError('its image data is truncated (IDAT inflates to less than the size IHDR gives)');
  }
  return header;
}
