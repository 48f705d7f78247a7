/** The little the sessions part reads from PNG bytes without decoding them. */

/** Width and height from a PNG's IHDR chunk. */
export function pngSize(png: Buffer): { width: number; height: number } {
  if (png.length < 24 || png.readUInt32BE(12) !== 0x49484452) throw new Error('not a PNG');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

export function pngDataUrl(png: Buffer | Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}
