/**
 * The autoencoder that gives CDD-ICM a latent space, its ImageCodec adapter, and its checkpoint folder:
 * `config.json` ({ format, version, config }) + `model.safetensors` (float32 or float16).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Autoencoder, AUTOENCODER_PRESETS, DEFAULT_LATENT_RANGE, type AutoencoderConfig } from './autoencoder.js';
import { readSafetensors, writeSafetensors, type NamedArray } from './safetensors.js';
import type { ImageCodec } from '../codec.js';

export { Autoencoder, AUTOENCODER_PRESETS, DEFAULT_LATENT_RANGE, LATENT_RANGE_QUANTILE, type AutoencoderConfig, type AutoencoderLosses } from './autoencoder.js';
export {
  encodeSafetensors,
  decodeSafetensors,
  readSafetensors,
  writeSafetensors,
  type NamedArray,
  type SafeDtype,
} from './safetensors.js';

/** A 64-bit content hash of one image's float values (two independent 32-bit FNV-1a streams over the bits). */
function imageKey(bits: Uint32Array, start: number, end: number): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ (end - start);
  for (let i = start; i < end; i++) {
    const x = bits[i]!;
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b ^ ((x >>> 16) | (x << 16)), 0x5bd1e995) ^ (b >>> 15);
  }
  return `${(a >>> 0).toString(36)}:${(b >>> 0).toString(36)}`;
}

/** The diffusion runs on these latents: encode = scaled posterior mean, decode = decoder(z / scale). */
export class AutoencoderCodec implements ImageCodec {
  readonly channels: number;
  readonly downFactor: number;
  private cache: Map<string, Float32Array> | null = null;
  private cacheLimit = 0;
  constructor(readonly autoencoder: Autoencoder) {
    this.channels = autoencoder.config.latentChannels;
    this.downFactor = autoencoder.config.downFactor;
  }

  get range(): number {
    return this.autoencoder.config.latentRange ?? DEFAULT_LATENT_RANGE;
  }

  /**
   * Remember latents by image content (training sees the same rendered canvases every epoch, and a turn's
   * reference is another turn's target), up to `maxEntries` images. The autoencoder is frozen, so a cached
   * latent is what encode would compute.
   */
  enableCache(maxEntries = 100_000): void {
    this.cache ??= new Map();
    this.cacheLimit = maxEntries;
  }

  /** Cache statistics (entries held). */
  cacheSize(): number {
    return this.cache?.size ?? 0;
  }

  encode(images: tf.Tensor4D): tf.Tensor4D {
    if (!this.cache) return this.autoencoder.encode(images);
    const cache = this.cache;
    const [n, h, w, c] = images.shape;
    const per = h * w * c;
    const bits = new Uint32Array(Float32Array.from(images.dataSync()).buffer);
    const keys = Array.from({ length: n }, (_, i) => imageKey(bits, i * per, (i + 1) * per));
    const missing = keys.map((k, i) => (cache.has(k) ? -1 : i)).filter((i) => i >= 0);
    if (missing.length > 0) {
      const fresh = tf.tidy(() => this.autoencoder.encode(missing.length === n ? images : tf.gather(images, missing)));
      const vals = Float32Array.from(fresh.dataSync());
      const zPer = vals.length / missing.length;
      missing.forEach((i, j) => {
        if (cache.size < this.cacheLimit) cache.set(keys[i]!, Float32Array.from(vals.subarray(j * zPer, (j + 1) * zPer)));
      });
      if (missing.length === n) return fresh;
      // Some images did not fit the cache: fall back to the fresh batch for them.
      const byIndex = new Map(missing.map((i, j) => [i, vals.subarray(j * zPer, (j + 1) * zPer)]));
      fresh.dispose();
      const [zh, zw, zc] = [h / this.downFactor, w / this.downFactor, this.channels];
      const out = new Float32Array(n * zh * zw * zc);
      keys.forEach((k, i) => out.set(byIndex.get(i) ?? cache.get(k)!, i * zh * zw * zc));
      return tf.tensor4d(out, [n, zh, zw, zc]);
    }
    const [zh, zw, zc] = [h / this.downFactor, w / this.downFactor, this.channels];
    const out = new Float32Array(n * zh * zw * zc);
    keys.forEach((k, i) => out.set(cache.get(k)!, i * zh * zw * zc));
    return tf.tensor4d(out, [n, zh, zw, zc]);
  }
  decode(z: tf.Tensor4D): tf.Tensor4D {
    return this.autoencoder.decode(z);
  }
}

/**
 * Why `a` cannot stand in for `b` as a model's codec, or null when it can: the same latent shape, scale and
 * range, and encoder weights equal up to float16 rounding (checkpoints ship in float16); the decoders may differ.
 */
export function latentSpaceMismatch(a: Autoencoder, b: Autoencoder): string | null {
  for (const k of ['latentChannels', 'downFactor', 'latentScale', 'latentRange'] as const) {
    const x = a.config[k], y = b.config[k];
    if (x !== y && !(x !== undefined && y !== undefined && Math.abs(x - y) <= 1e-6 * Math.max(1, Math.abs(y)))) return `${k} ${x} vs ${y}`;
  }
  const bw = b.namedParameters();
  for (const [name, v] of a.namedParameters()) {
    if (name.startsWith('decoder.')) continue;
    const w = bw.get(name);
    if (!w || w.shape.join(',') !== v.shape.join(',')) return `no encoder weight ${name} of shape [${v.shape}]`;
    // float16 keeps 11 significant bits: a relative error of 2^-11 per value, plus subnormal slack.
    const bad = tf.tidy(() => tf.any(tf.greater(tf.abs(tf.sub(v, w)), tf.add(tf.mul(tf.abs(w), 2 ** -10), 1e-7))).dataSync()[0]);
    if (bad) return `encoder weight ${name} differs`;
  }
  return null;
}

export const AUTOENCODER_FORMAT = 'cdd-icm-autoencoder';
export const AUTOENCODER_FORMAT_VERSION = 1;

/** Weights as named float32 arrays (for embedding the autoencoder in another checkpoint). */
export function autoencoderWeights(ae: Autoencoder, prefix = ''): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [name, v] of ae.namedParameters()) out.set(prefix + name, { shape: v.shape, data: v.dataSync() as Float32Array });
  return out;
}

/** Assign weights from named arrays (every parameter must be present with the right shape). */
export function setAutoencoderWeights(ae: Autoencoder, tensors: Map<string, NamedArray>, prefix = ''): void {
  for (const [name, v] of ae.namedParameters()) {
    const t = tensors.get(prefix + name);
    if (!t) throw new Error(`autoencoder checkpoint: missing weight ${prefix + name}`);
    if (t.shape.join(',') !== v.shape.join(',')) {
      throw new Error(`autoencoder checkpoint: ${prefix + name} has shape [${t.shape}], expected [${v.shape}]`);
    }
    v.assign(tf.tensor(t.data, v.shape, 'float32'));
  }
}

export async function saveAutoencoder(ae: Autoencoder, dir: string, opts: { dtype?: 'float32' | 'float16' } = {}): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(
    join(dir, 'config.json'),
    JSON.stringify({ format: AUTOENCODER_FORMAT, version: AUTOENCODER_FORMAT_VERSION, config: ae.config }, null, 2) + '\n',
  );
  await writeSafetensors(join(dir, 'model.safetensors'), autoencoderWeights(ae), {
    floatDtype: opts.dtype === 'float16' ? 'F16' : 'F32',
    metadata: { format: AUTOENCODER_FORMAT },
  });
}

export async function loadAutoencoder(dir: string): Promise<Autoencoder> {
  const raw = JSON.parse(await fs.readFile(join(dir, 'config.json'), 'utf8')) as {
    format?: string;
    version?: number;
    config?: AutoencoderConfig;
  };
  if (raw.format !== AUTOENCODER_FORMAT || !raw.config) throw new Error(`${dir}: not an autoencoder checkpoint`);
  if ((raw.version ?? 0) > AUTOENCODER_FORMAT_VERSION) throw new Error(`${dir}: autoencoder format version ${raw.version} is newer than this code`);
  const ae = new Autoencoder(raw.config);
  const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
  setAutoencoderWeights(ae, tensors);
  return ae;
}

/** An autoencoder from a preset name with optional overrides. */
export function createAutoencoder(preset: keyof typeof AUTOENCODER_PRESETS | string, overrides: Partial<AutoencoderConfig> = {}): Autoencoder {
  const base = AUTOENCODER_PRESETS[preset];
  if (!base) throw new Error(`unknown autoencoder preset ${preset} (have ${Object.keys(AUTOENCODER_PRESETS).join(', ')})`);
  return new Autoencoder({ ...base, ...overrides });
}
