/**
 * The codec-space latents of the images this engine generated, keyed by their exact pixels. A session's next turn
 * has the previous result as its reference; when its pixels match an entry, the sampler reads that latent instead
 * of re-encoding the 8-bit image. A latent autoencoder's decode/encode round trip is lossy and the loss compounds
 * over the turns of a session (measured: detector F1 on the i-CLEVR val final scenes falls 0.94 / 0.83 / 0.71 /
 * 0.58 over 1-4 round trips). Content addressing keeps it correct whatever the sessions service does (undo,
 * restarts, edited canvases): a miss only means the reference is encoded as before.
 */
import { createHash } from 'node:crypto';
import type { RgbImage } from '../data/index.js';

export class LatentCache {
  private readonly entries = new Map<string, Float32Array>();
  hits = 0;
  misses = 0;
  constructor(private readonly maxEntries: number) {}

  private static key(img: RgbImage): string {
    return createHash('sha1').update(`${img.width}x${img.height}:`).update(img.data).digest('hex');
  }

  set(img: RgbImage, latent: Float32Array): void {
    if (this.maxEntries <= 0) return;
    const k = LatentCache.key(img);
    this.entries.delete(k);
    this.entries.set(k, latent);
    // Map iteration order is insertion order: the first key is the least recently used.
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  get(img: RgbImage): Float32Array | undefined {
    const k = LatentCache.key(img);
    const v = this.entries.get(k);
    if (v === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(k);
    this.entries.set(k, v);
    return v;
  }
}
