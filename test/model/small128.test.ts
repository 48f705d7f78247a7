/**
 * The `small-128` preset (CoDraw at GeNeVA's 128x128 in a 32x32x4 latent): it validates, its parts take the sizes
 * it says (encoders at 128x128 pixels and 64 tokens, the noisy encoder and the U-Net at 32x32x4), every stage-2
 * variable gets a gradient, and the sampler turns a 128x128 canvas into a 128x128 result.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blankImage } from '../../src/data/index.js';
import { AutoencoderCodec, Sampler, WordTokenizer, createAutoencoder, createModel, diffusionShape, modelConfig, validateModelConfig, type CddIcm } from '../../src/model/index.js';
import { perturb, seededRng } from './fixtures.js';

const texts = ['<teller> a big tree on the left <drawer> ok', '<teller> the sun top right <drawer> done'];
let model: CddIcm;

beforeAll(() => {
  const cfg = modelConfig('small-128');
  validateModelConfig(cfg);
  model = createModel(cfg, {
    tokenizer: WordTokenizer.fromCorpus(texts, { contextLength: 64 }),
    codec: new AutoencoderCodec(createAutoencoder('small')),
  });
  perturb(model, 0.02);
}, 60_000);

afterAll(() => model?.dispose());

describe('small-128 preset', () => {
  it('diffuses in a 32x32x4 latent with encoders at 64 tokens, as the small model does at 64x64', () => {
    const cfg = model.config;
    expect(cfg.imageSize).toBe(128);
    expect(diffusionShape(cfg)).toEqual({ size: 32, channels: 4 });
    expect((cfg.vision.imageSize / cfg.vision.patchSize) ** 2).toBe(64);
    expect((cfg.noisyVision.imageSize / cfg.noisyVision.patchSize) ** 2).toBe(64);
    const small = modelConfig('small');
    expect((small.vision.imageSize / small.vision.patchSize) ** 2).toBe(64);
    // Attention at the same 8x8 and 4x4 grids as the small model's 16x16 latent.
    const grids = (c: typeof cfg) => c.unet.attentionResolutions.map((r) => diffusionShape(c).size / r);
    expect(grids(cfg)).toEqual(grids(small));
  });

  it('gives every stage-2 variable a gradient from a batch of 128x128 turns', () => {
    const rng = seededRng(3);
    const img = () => tf.tidy(() => tf.clipByValue(tf.randomNormal([2, 128, 128, 3], 0, 0.5, 'float32', Math.floor(rng() * 1e6)), -1, 1) as tf.Tensor4D);
    const batch = { reference: img(), target: img(), texts };
    const mine = new Set(model.stageGroups(2).flatMap((g) => model.parameterGroups()[g].vars));
    const vars = model.parameters().filter((v) => mine.has(v));
    const { value, grads } = tf.variableGrads(() => model.losses(batch, { stage: 2, gamma: 1.5, delta: 0.1, conditionDropout: 0, rng }).total, vars);
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    const names = new Map([...model.namedParameters()].map(([k, v]) => [v, k]));
    const dead = vars.filter((v) => !(tf.max(tf.abs(grads[v.name]!)).dataSync()[0]! > 0)).map((v) => names.get(v));
    expect(dead).toEqual([]);
    tf.dispose([value, batch.reference, batch.target, ...Object.values(grads)]);
  }, 120_000);

  it('samples a 128x128 result from a 128x128 canvas, item by item deterministic', () => {
    const sampler = new Sampler(model);
    const run = (seed: number) => {
      const state = sampler.prepare({ text: texts[0]!, reference: blankImage(128, 128), steps: 2, guidanceScale: 3, icmGuidanceScale: 1, seed });
      while (!state.done) sampler.step([state]);
      const out = state.result();
      state.dispose();
      return out;
    };
    const a = run(1);
    expect([a.width, a.height]).toEqual([128, 128]);
    expect(run(1).data).toEqual(a.data);
    expect(run(2).data).not.toEqual(a.data);
  }, 120_000);
});
