/** Hand-built PNGs for tests: valid ones, and the malformed kinds a hostile client sends. */
import zlib from 'node:zlib';

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One PNG chunk: length, type, data, CRC (of type + data). */
export function pngChunk(type: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(typed));
  return Buffer.concat([len, typed, crc]);
}

export function ihdr(width: number, height: number, opts: { bitDepth?: number; colorType?: number; interlace?: number } = {}): Buffer {
  const d = Buffer.alloc(13);
  d.writeUInt32BE(width, 0);
  d.writeUInt32BE(height, 4);
  d[8] = opts.bitDepth ?? 8;
  d[9] = opts.colorType ?? 2;
  d[12] = opts.interlace ?? 0;
  return pngChunk('IHDR', d);
}

/** A complete RGB PNG of one colour, built from chunks (filter byte 0 per row). */
export function solidPng(width: number, height: number, rgb: [number, number, number] = [200, 30, 30]): Buffer {
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set(rgb, 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([PNG_SIGNATURE, ihdr(width, height), pngChunk('IDAT', zlib.deflateSync(raw)), pngChunk('IEND')]);
}

/** A tiny file whose header claims width x height but whose data is a few bytes: a decompression bomb's header. */
export function bombPng(width: number, height: number): Buffer {
  return Buffer.concat([PNG_SIGNATURE, ihdr(width, height), pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(1000))), pngChunk('IEND')]);
}

/** A valid PNG whose IDAT holds only the first half of the compressed image data (CRCs correct). */
export function truncatedIdatPng(width: number, height: number): Buffer {
  const full = zlib.deflateSync(Buffer.alloc(height * (1 + width * 3), 7));
  return Buffer.concat([PNG_SIGNATURE, ihdr(width, height), pngChunk('IDAT', full.subarray(0, full.length >> 1)), pngChunk('IEND')]);
}

export const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/></svg>');
/** A 1x1 baseline JPEG. */
export const JPEG = Buffer.from(
  '/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=',
  'base64',
);

export const pngDataUrl = (b: Buffer, mime = 'image/png'): string => `data:${mime};base64,${b.toString('base64')}`;
