/**
 * Results' latents shared by every generation worker (scale-out mode): the sessions service stores a finished
 * turn's latent under (model, SHA-256 of its PNG), and when a next turn starts from that image, hands it to the
 * engine as `referenceLatent`, so the lossy decode/encode round trip is skipped whichever worker renders the next
 * turn (docs/ARCHITECTURE.md, "Why latents travel between turns"). A single process needs none of this: its engine
 * keeps its own cache. A miss is harmless: the engine encodes the reference.
 */
import { Redis } from 'ioredis';
import { partLogger } from '../log/index.js';

const log = partLogger('sessions');
const PREFIX = 'codraw:latent:';

export interface LatentStore {
  get(model: string, pngSha256: string): Promise<Float32Array | null>;
  /** Never rejects (a failed write is only a future miss). */
  set(model: string, pngSha256: string, latent: Float32Array): Promise<void>;
  close(): void;
}

export class RedisLatentStore implements LatentStore {
  private readonly redis: Redis;

  /** `ttlMs`: how long a latent waits for its next turn (default a day). */
  constructor(url: string, private readonly ttlMs = 24 * 3600_000) {
    this.redis = new Redis(url);
    this.redis.on('error', (err: Error) => log.warn({ err: err.message }, 'latent store connection error'));
  }

  private key(model: string, sha: string): string {
    return `${PREFIX}${encodeURIComponent(model)}:${sha}`;
  }

  async get(model: string, pngSha256: string): Promise<Float32Array | null> {
    try {
      const b = await this.redis.getBuffer(this.key(model, pngSha256));
      if (!b || b.byteLength % 4 !== 0) return null;
      // Copy into an aligned buffer of its own (a Redis reply's buffer may be shared or unaligned).
      const out = new Float32Array(b.byteLength / 4);
      new Uint8Array(out.buffer).set(b);
      return out;
    } catch (err) {
      log.warn({ err }, 'latent store read failed; the reference is encoded instead');
      return null;
    }
  }

  async set(model: string, pngSha256: string, latent: Float32Array): Promise<void> {
    const b = Buffer.from(latent.buffer, latent.byteOffset, latent.byteLength);
    await this.redis.set(this.key(model, pngSha256), b, 'PX', this.ttlMs).catch((err: unknown) => log.warn({ err }, 'latent store write failed'));
  }

  close(): void {
    this.redis.quit().catch(() => this.redis.disconnect());
  }
}
