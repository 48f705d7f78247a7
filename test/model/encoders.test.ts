import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { resetSeed } from '../../src/model/nn.js';
import { VisionEncoder, TextEncoder, encoderPresets, timestepEmbedding, type TextConfig, type VisionConfig } from '../../src/model/encoders/index.js';

const visionCfg: VisionConfig = { imageSize: 16, patchSize: 4, width: 16, layers: 2, heads: 2 };
const textCfg: TextConfig = { vocabSize: 30, contextLength: 10, width: 16, layers: 2, heads: 2, eosTokenId: 2 };

function randImages(b: number, size: number, c = 3, seed = 1): tf.Tensor4D {
  return tf.randomUniform([b, size, size, c], -1, 1, 'float32', seed) as tf.Tensor4D;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** A scalar that depends on every output element through fixed random weights (a plain sum of LN'd outputs would not). */
function probeLoss(out: { pooled: tf.Tensor; sequence: tf.Tensor }): tf.Scalar {
  const wp = tf.randomNormal(out.pooled.shape, 0, 1, 'float32', 7);
  const ws = tf.randomNormal(out.sequence.shape, 0, 1, 'float32', 8);
  return tf.add(tf.sum(tf.mul(out.pooled, wp)), tf.sum(tf.mul(out.sequence, ws))) as tf.Scalar;
}

function expectGradsEverywhere(vars: tf.Variable[], f: () => tf.Scalar): void {
  const { value, grads } = tf.variableGrads(f, vars);
  value.dispose();
  for (const v of vars) {
    const g = grads[v.name];
    expect(g, `no gradient for ${v.name}`).toBeDefined();
    expect(tf.tidy(() => tf.max(tf.abs(g!)).dataSync()[0]!), `zero gradient for ${v.name}`).toBeGreaterThan(0);
  }
  tf.dispose(grads);
}

describe('VisionEncoder', () => {
  resetSeed(11);
  const enc = new VisionEncoder(visionCfg, 8);

  it('gives pooled [B, d] and patch sequence [B, N, width] for several batch and input sizes', () => {
    for (const [b, size] of [[1, 16], [3, 16], [2, 32], [2, 24], [1, 8]] as const) {
      const out = tf.tidy(() => enc.encode(randImages(b, size)));
      expect(out.pooled.shape).toEqual([b, 8]);
      expect(out.sequence.shape).toEqual([b, 16, 16]);
      expect(enc.sequenceLength).toBe(16);
      tf.dispose(out);
    }
  });

  it('resizes inputs to its own size: a 2x upsampled image encodes like the original', () => {
    const small = randImages(2, 16);
    const big = tf.image.resizeNearestNeighbor(small, [32, 32]) as tf.Tensor4D;
    const a = enc.encode(small);
    const b = enc.encode(big);
    expect(maxAbsDiff(a.pooled, b.pooled)).toBeLessThan(1e-5);
    expect(maxAbsDiff(a.sequence, b.sequence)).toBeLessThan(1e-5);
    tf.dispose([small, big, a, b]);
  });

  it('normalises with CLIP mean/std after mapping [-1, 1] to [0, 1]', () => {
    const x = tf.fill([1, 16, 16, 3], 1) as tf.Tensor4D; // white = 1.0 in [0, 1]
    const p = enc.preprocess(x);
    const px = p.slice([0, 0, 0, 0], [1, 1, 1, 3]).dataSync();
    expect(px[0]).toBeCloseTo((1 - 0.48145466) / 0.26862954, 4);
    expect(px[2]).toBeCloseTo((1 - 0.40821073) / 0.27577711, 4);
    tf.dispose([x, p]);
  });

  it('keeps items of a batch independent and leaks no tensors', () => {
    const x = randImages(3, 16);
    const x1 = x.slice([1, 0, 0, 0], [1, 16, 16, 3]);
    const before = tf.memory().numTensors;
    const all = enc.encode(x);
    const one = enc.encode(x1);
    expect(tf.memory().numTensors).toBe(before + 4);
    expect(tf.tidy(() => maxAbsDiff(all.pooled.slice([1, 0], [1, 8]), one.pooled))).toBeLessThan(1e-5);
    tf.dispose([all, one]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, x1]);
  });

  it('sends gradients to every variable', () => {
    const x = randImages(2, 16);
    expectGradsEverywhere(enc.parameters(), () => probeLoss(enc.encode(x)));
    x.dispose();
  });

  it('rejects wrong channel counts and unexpected timesteps', () => {
    const x = randImages(1, 16, 4);
    expect(() => enc.encode(x)).toThrow(/channels/);
    const y = randImages(1, 16);
    expect(() => enc.encode(y, tf.tensor1d([3]))).toThrow(/time/);
    tf.dispose([x, y]);
  });

  it('splits parameters into the CLIP backbone and the fresh head', () => {
    const names = [...enc.namedParameters().keys()];
    expect(names).toContain('backbone.embeddings.patch_embedding.weight');
    expect(names).toContain('backbone.encoder.layers.1.self_attn.q_proj.weight');
    expect(names).toContain('backbone.pre_layrnorm.weight');
    expect(enc.backboneParameters().length + enc.headParameters().length).toBe(names.length);
    expect(enc.headParameters()).toContain(enc.projection.weight);
  });
});

describe('noisy image encoder', () => {
  resetSeed(12);
  const cfg: VisionConfig = { imageSize: 8, patchSize: 2, width: 16, layers: 1, heads: 2, inChannels: 4, timeConditioned: true };
  const enc = new VisionEncoder(cfg, 8);

  it('accepts latent-shaped inputs and its timestep changes the output', () => {
    const x = randImages(2, 8, 4);
    const a = enc.encode(x, tf.tensor1d([10, 10]));
    const b = enc.encode(x, tf.tensor1d([500, 10]));
    const a2 = enc.encode(x, tf.tensor1d([10, 10]));
    expect(a.pooled.shape).toEqual([2, 8]);
    expect(a.sequence.shape).toEqual([2, 16, 16]);
    expect(maxAbsDiff(a.pooled.slice([0, 0], [1, 8]), b.pooled.slice([0, 0], [1, 8]))).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(a.pooled.slice([1, 0], [1, 8]), b.pooled.slice([1, 0], [1, 8]))).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.pooled, a2.pooled)).toBe(0);
    expect(() => enc.encode(x)).toThrow(/timesteps/);
    tf.dispose([x, a, b, a2]);
  });

  it('counts a latent-channel patch embedding as a fresh (head) variable', () => {
    const patch = enc.backbone.embeddings.patch_embedding.weight;
    expect(enc.headParameters()).toContain(patch);
    expect(enc.backboneParameters()).not.toContain(patch);
    expect(enc.backboneParameters().length + enc.headParameters().length).toBe(enc.parameters().length);
  });

  it('sends gradients to every variable (timestep MLP included) and to its input', () => {
    const x = randImages(2, 8, 4);
    const t = tf.tensor1d([3, 700]);
    expectGradsEverywhere(enc.parameters(), () => probeLoss(enc.encode(x, t)));
    const gx = tf.grad((xi: tf.Tensor) => tf.sum(enc.encode(xi as tf.Tensor4D, t).pooled))(x);
    expect(tf.max(tf.abs(gx)).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([x, t, gx]);
  });

  it('uses the sinusoidal embedding cos(t f) | sin(t f)', () => {
    const e = timestepEmbedding(tf.tensor1d([0, 2]), 6).arraySync();
    expect(e[0]).toEqual([1, 1, 1, 0, 0, 0]);
    const f = [1, Math.exp(-Math.log(10000) / 3), Math.exp((-2 * Math.log(10000)) / 3)];
    f.forEach((fi, i) => {
      expect(e[1]![i]).toBeCloseTo(Math.cos(2 * fi), 5);
      expect(e[1]![3 + i]).toBeCloseTo(Math.sin(2 * fi), 5);
    });
  });
});

describe('TextEncoder', () => {
  resetSeed(13);
  const enc = new TextEncoder(textCfg, 8);
  const ids = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0]!.length], 'int32');

  it('gives pooled [B, d] and token sequence [B, L, width] for several batch sizes and lengths', () => {
    for (const [b, l] of [[1, 10], [3, 10], [2, 5]] as const) {
      const x = tf.tidy(() => tf.concat([tf.fill([b, 1], 1, 'int32'), tf.fill([b, l - 1], 2, 'int32')], 1)) as tf.Tensor2D;
      const out = enc.encode(x);
      expect(out.pooled.shape).toEqual([b, 8]);
      expect(out.sequence.shape).toEqual([b, l, 16]);
      tf.dispose([x, out]);
    }
  });

  it('is causal: changing a later token leaves earlier positions unchanged', () => {
    const a = enc.encode(ids([[1, 5, 6, 7, 8, 9, 2, 0, 0, 0]]));
    const b = enc.encode(ids([[1, 5, 6, 7, 20, 9, 2, 0, 0, 0]]));
    expect(maxAbsDiff(a.sequence.slice([0, 0, 0], [1, 4, 16]), b.sequence.slice([0, 0, 0], [1, 4, 16]))).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.sequence.slice([0, 4, 0], [1, 1, 16]), b.sequence.slice([0, 4, 0], [1, 1, 16]))).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(a.pooled, b.pooled)).toBeGreaterThan(1e-4);
    tf.dispose([a, b]);
  });

  it('pools at the end token: padding after it does not matter, the text before it does', () => {
    const a = enc.encode(ids([[1, 5, 6, 2, 0, 0, 0, 0, 0, 0]]));
    const b = enc.encode(ids([[1, 5, 6, 2, 9, 17, 3, 4, 0, 11]]));
    const c = enc.encode(ids([[1, 5, 7, 2, 0, 0, 0, 0, 0, 0]]));
    expect(maxAbsDiff(a.pooled, b.pooled)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.pooled, c.pooled)).toBeGreaterThan(1e-4);
    // pooled = projection(sequence at the end token)
    const row = a.sequence.slice([0, 3, 0], [1, 1, 16]).reshape([1, 16]);
    const proj = enc.projection.apply(row);
    expect(maxAbsDiff(proj, a.pooled)).toBeLessThan(1e-5);
    tf.dispose([a, b, c, row, proj]);
  });

  it('finds the end at the argmax id without eosTokenId (Hugging Face CLIP) or takes explicit indices', () => {
    resetSeed(14);
    const clipLike = new TextEncoder({ ...textCfg, eosTokenId: undefined }, 8);
    const x = ids([[28, 5, 6, 29, 29, 29, 29, 29, 29, 29], [28, 7, 29, 29, 29, 29, 29, 29, 29, 29]]);
    expect([...clipLike.endIndices(x)]).toEqual([3, 2]);
    const implicit = clipLike.encode(x);
    const explicit = clipLike.encode(x, [3, 2]);
    const other = clipLike.encode(x, [4, 2]);
    expect(maxAbsDiff(implicit.pooled, explicit.pooled)).toBe(0);
    expect(maxAbsDiff(implicit.pooled.slice([0, 0], [1, 8]), other.pooled.slice([0, 0], [1, 8]))).toBeGreaterThan(1e-4);
    expect([...enc.endIndices(ids([[1, 5, 2, 0, 0, 0, 0, 0, 0, 2]]))]).toEqual([2]);
    tf.dispose([x, implicit, explicit, other]);
    clipLike.dispose();
  });

  it('sends gradients to every variable', () => {
    // Every vocabulary id appears so every embedding row is used; full context length uses every position.
    const rows = [Array.from({ length: 10 }, (_, i) => i), Array.from({ length: 10 }, (_, i) => 10 + i), Array.from({ length: 10 }, (_, i) => 20 + i)];
    const x = ids(rows);
    expectGradsEverywhere(enc.parameters(), () => probeLoss(enc.encode(x, [9, 9, 9])));
    x.dispose();
  });

  it('leaks no tensors', () => {
    const x = ids([[1, 5, 6, 2, 0, 0, 0, 0, 0, 0], [1, 7, 2, 0, 0, 0, 0, 0, 0, 0]]);
    const before = tf.memory().numTensors;
    const out = enc.encode(x);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose(out);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('rejects texts longer than the context', () => {
    const x = tf.fill([1, 11], 2, 'int32') as tf.Tensor2D;
    expect(() => enc.encode(x)).toThrow(/context length/);
    x.dispose();
  });
});

describe('presets', () => {
  it('has CLIP ViT-B/32 with d = 512 and consistent small presets', () => {
    const p = encoderPresets['clip-vit-b32'];
    expect(p.projectionDim).toBe(512);
    expect(p.vision).toMatchObject({ imageSize: 224, patchSize: 32, width: 768, layers: 12, heads: 12 });
    expect(p.text).toMatchObject({ vocabSize: 49408, contextLength: 77, width: 512, layers: 12, heads: 8 });
    resetSeed(15);
    const v = new VisionEncoder(encoderPresets.tiny.vision, encoderPresets.tiny.projectionDim);
    const x = randImages(1, 64);
    const out = v.encode(x);
    expect(out.pooled.shape).toEqual([1, encoderPresets.tiny.projectionDim]);
    tf.dispose([x, out]);
    v.dispose();
  });
});

describe('patch embedding', () => {
  it('equals a stride-p valid convolution with the HWIO filter', () => {
    resetSeed(16);
    const enc = new VisionEncoder({ imageSize: 12, patchSize: 4, width: 5, layers: 1, heads: 1, inChannels: 2, clipNormalize: false }, 3);
    const x = tf.randomNormal([2, 12, 12, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
    const pe = enc.backbone.embeddings.patch_embedding;
    const ours = pe.apply(x);
    const conv = tf.reshape(tf.conv2d(x, pe.weight as tf.Tensor4D, 4, 'valid'), [2, 9, 5]);
    expect(maxAbsDiff(ours, conv)).toBeLessThan(1e-5);
    tf.dispose([x, ours, conv]);
    enc.dispose();
  });
});
