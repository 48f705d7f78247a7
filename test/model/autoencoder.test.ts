import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  AutoencoderCodec,
  createAutoencoder,
  decodeSafetensors,
  encodeSafetensors,
  loadAutoencoder,
  saveAutoencoder,
} from '../../src/model/autoencoder/index.js';
import { AdamW } from '../../src/train/adamw.js';

/** Simple scenes: a grey floor with one coloured square at a position chosen by k. */
function scenes(n: number, size: number, offset = 0): tf.Tensor4D {
  const data = new Float32Array(n * size * size * 3);
  for (let k = 0; k < n; k++) {
    const colour = [[0.9, -0.6, -0.6], [-0.6, 0.8, -0.5], [-0.5, -0.5, 0.9], [0.8, 0.8, -0.7]][(k + offset) % 4]!;
    const side = Math.max(4, Math.floor(size / 3));
    const x0 = ((k + offset) * 7) % (size - side);
    const y0 = ((k + offset) * 11) % (size - side);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inside = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
        for (let c = 0; c < 3; c++) data[((k * size + y) * size + x) * 3 + c] = inside ? colour[c]! : -0.2;
      }
    }
  }
  return tf.tensor4d(data, [n, size, size, 3]);
}

describe('autoencoder', () => {
  it('maps 32x32x3 images to 8x8x4 latents and back (downFactor 4)', () => {
    const ae = createAutoencoder('tiny');
    const codec = new AutoencoderCodec(ae);
    expect(codec.channels).toBe(4);
    expect(codec.downFactor).toBe(4);
    const x = scenes(2, 32);
    const z = codec.encode(x);
    expect(z.shape).toEqual([2, 8, 8, 4]);
    const y = codec.decode(z);
    expect(y.shape).toEqual([2, 32, 32, 3]);
    tf.dispose([x, z, y]);
    ae.dispose();
  });

  it('reconstruction loss falls with training, and calibration makes latents unit-variance', () => {
    const ae = createAutoencoder('tiny');
    const opt = new AdamW([{ name: 'ae', params: ae.namedParameters(), lrScale: 1 }], { lr: 3e-3, weightDecay: 0 });
    const val = scenes(4, 16, 100);
    const valLoss = () => tf.tidy(() => ae.losses(val, 1).l1.dataSync()[0]!);
    const before = valLoss();
    for (let step = 0; step < 30; step++) {
      const x = scenes(4, 16, step * 4);
      const { grads, value } = tf.variableGrads(() => ae.losses(x, 1000 + step).total, opt.trainableVariables());
      opt.step(grads);
      tf.dispose([x, value, ...Object.values(grads)]);
    }
    const after = valLoss();
    expect(after).toBeLessThan(before * 0.6);
    ae.calibrateScale(val);
    const std = tf.tidy(() => tf.sqrt(tf.moments(ae.encode(val)).variance).dataSync()[0]!);
    expect(std).toBeCloseTo(1, 3);
    // The measured range bounds 99% of the scaled latents (the sampler clips x0 estimates to it).
    const range = ae.config.latentRange!;
    const inside = tf.tidy(() => tf.mean(tf.cast(tf.lessEqual(tf.abs(ae.encode(val)), range), 'float32')).dataSync()[0]!);
    expect(range).toBeGreaterThan(1);
    expect(inside).toBeGreaterThanOrEqual(0.99);
    expect(inside).toBeLessThan(1);
    expect(new AutoencoderCodec(ae).range).toBe(range);
    val.dispose();
    opt.dispose();
    ae.dispose();
  });

  it('saves and loads (float32 exactly, float16 closely) including the latent scale', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ae-'));
    try {
      const ae = createAutoencoder('tiny');
      ae.config.latentScale = 0.37;
      const x = scenes(2, 32);
      const z0 = ae.encode(x);
      await saveAutoencoder(ae, join(dir, 'f32'));
      await saveAutoencoder(ae, join(dir, 'f16'), { dtype: 'float16' });
      const a = await loadAutoencoder(join(dir, 'f32'));
      const b = await loadAutoencoder(join(dir, 'f16'));
      expect(a.config.latentScale).toBe(0.37);
      const za = a.encode(x);
      const zb = b.encode(x);
      expect(Array.from(za.dataSync())).toEqual(Array.from(z0.dataSync()));
      expect(tf.max(tf.abs(tf.sub(zb, z0))).dataSync()[0]).toBeLessThan(0.05);
      tf.dispose([x, z0, za, zb]);
      [ae, a, b].forEach((m) => m.dispose());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('safetensors round-trips float32, float16 and int32 arrays with metadata', () => {
    const m = new Map([
      ['a', { shape: [2, 2], data: new Float32Array([1, -2.5, 3.25, 1e-3]) }],
      ['b', { shape: [3], data: new Int32Array([7, -8, 9]) }],
    ]);
    const f32 = decodeSafetensors(encodeSafetensors(m, { metadata: { k: 'v' } }));
    expect(Array.from(f32.tensors.get('a')!.data)).toEqual(Array.from(m.get('a')!.data));
    expect(Array.from(f32.tensors.get('b')!.data)).toEqual([7, -8, 9]);
    expect(f32.metadata).toEqual({ k: 'v' });
    const f16 = decodeSafetensors(encodeSafetensors(m, { floatDtype: 'F16' }));
    expect(f16.tensors.get('a')!.data[1]).toBe(-2.5);
    expect(f16.tensors.get('a')!.data[3]).toBeCloseTo(1e-3, 5);
    expect(f16.tensors.get('b')!.data).toBeInstanceOf(Int32Array);
  });
});

describe('AutoencoderCodec latent cache', () => {
  it('returns the same latents with the cache on, for new, repeated and mixed batches', () => {
    const ae = createAutoencoder('tiny');
    const plain = new AutoencoderCodec(ae);
    const cached = new AutoencoderCodec(ae);
    cached.enableCache(5);
    const a = scenes(3, 16, 0);
    const b = scenes(4, 16, 2); // overlaps a's last image, adds three new ones (one will not fit the cache)
    for (const x of [a, a, b, b]) {
      const want = plain.encode(x);
      const got = cached.encode(x);
      expect(got.shape).toEqual(want.shape);
      expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).toBeLessThan(1e-5);
      tf.dispose([want, got]);
    }
    expect(cached.cacheSize()).toBe(5);
    tf.dispose([a, b]);
    ae.dispose();
  });
});
