import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AutoencoderCodec,
  createAutoencoder,
  createModel,
  isCheckpoint,
  loadCheckpoint,
  loadOptimizerState,
  modelConfig,
  sample,
  saveCheckpoint,
  saveOptimizerState,
  type CddIcm,
} from '../../src/model/index.js';
import { makeTurns, perturb, tinyModel, tinyTokenizer } from './fixtures.js';

let dir: string;
let model: CddIcm;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cddicm-ckpt-'));
  model = tinyModel();
  perturb(model, 0.05);
});
afterAll(async () => {
  model.dispose();
  await rm(dir, { recursive: true, force: true });
});

const weightsEqual = (a: CddIcm, b: CddIcm, tol: number): number => {
  const bw = b.namedParameters();
  let worst = 0;
  for (const [k, v] of a.namedParameters()) {
    const w = bw.get(k);
    expect(w, k).toBeDefined();
    worst = Math.max(worst, tf.tidy(() => tf.max(tf.abs(tf.sub(v, w!))).dataSync()[0]!));
  }
  expect(worst).toBeLessThanOrEqual(tol);
  return worst;
};

describe('checkpoints', () => {
  it('round-trips every weight, the config and the tokenizer in float32 (same samples after loading)', async () => {
    const d = join(dir, 'f32');
    await saveCheckpoint(model, d);
    expect(await isCheckpoint(d)).toBe(true);
    const cfg = JSON.parse(await readFile(join(d, 'config.json'), 'utf8')) as { format: string; version: number; config: { name: string } };
    expect(cfg.format).toBe('cdd-icm');
    expect(cfg.version).toBe(1);
    expect(cfg.config.name).toBe('tiny');
    const tok = JSON.parse(await readFile(join(d, 'tokenizer.json'), 'utf8')) as { kind: string };
    expect(tok.kind).toBe('word');
    const loaded = await loadCheckpoint(d);
    expect(weightsEqual(model, loaded, 0)).toBe(0);
    expect(loaded.tokenizer.encode(['add a red square']).ids[0]).toEqual(model.tokenizer.encode(['add a red square']).ids[0]);
    const t = makeTurns()[0]!;
    const r = { text: t.text, reference: t.reference, steps: 3, guidanceScale: 3, icmGuidanceScale: 2, seed: 5 };
    const [a] = await sample(model, [r]);
    const [b] = await sample(loaded, [r]);
    expect(Buffer.from(a!.data).equals(Buffer.from(b!.data))).toBe(true);
    loaded.dispose();
  });

  it('stores float16 at half the size, within float16 precision', async () => {
    const d = join(dir, 'f16');
    await saveCheckpoint(model, d, { dtype: 'float16' });
    await saveCheckpoint(model, join(dir, 'f32b'));
    const s16 = (await readFile(join(d, 'model.safetensors'))).length;
    const s32 = (await readFile(join(dir, 'f32b', 'model.safetensors'))).length;
    expect(s16).toBeLessThan(0.55 * s32);
    const loaded = await loadCheckpoint(d);
    expect(weightsEqual(model, loaded, 2e-3)).toBeGreaterThan(0);
    loaded.dispose();
  });

  it('rejects a checkpoint whose weights do not fit the config', async () => {
    const d = join(dir, 'bad');
    await saveCheckpoint(model, d);
    const cfgPath = join(d, 'config.json');
    const f = JSON.parse(await readFile(cfgPath, 'utf8')) as { config: { projectionDim: number } };
    f.config.projectionDim = 48;
    await (await import('node:fs/promises')).writeFile(cfgPath, JSON.stringify(f));
    await expect(loadCheckpoint(d)).rejects.toThrow(/shape/);
  });

  it('saves a latent model with its autoencoder codec', async () => {
    const ae = createAutoencoder('tiny');
    const cfg = modelConfig('tiny', {
      latent: { channels: 4, downFactor: 4 },
      noisyVision: { imageSize: 4, patchSize: 2, width: 32, layers: 1, heads: 2, inChannels: 4, timeConditioned: true, clipNormalize: false },
      unet: { modelChannels: 8, channelMult: [1, 2], numResBlocks: 1, attentionResolutions: [2], headChannels: 8, groups: 4 },
    });
    const m = createModel(cfg, { tokenizer: tinyTokenizer(), codec: new AutoencoderCodec(ae) });
    expect(m.diffusion.dataKind).toBe('continuous');
    const d = join(dir, 'latent');
    await saveCheckpoint(m, d);
    const loaded = await loadCheckpoint(d);
    expect(loaded.codec).toBeInstanceOf(AutoencoderCodec);
    expect(loaded.latentSize).toBe(4);
    weightsEqual(m, loaded, 0);
    const aeW = ae.namedParameters();
    for (const [k, v] of (loaded.codec as AutoencoderCodec).autoencoder.namedParameters()) {
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(v, aeW.get(k)!))).dataSync()[0])).toBe(0);
    }
    const t = makeTurns()[0]!;
    const [img] = await sample(loaded, [{ text: t.text, reference: t.reference, steps: 2, guidanceScale: 3, icmGuidanceScale: 2, seed: 1 }]);
    expect([img!.width, img!.height]).toEqual([16, 16]);
    m.dispose();
    loaded.dispose();
    ae.dispose();
  });

  it('round-trips optimizer state (named tensors + trainer JSON)', async () => {
    const d = join(dir, 'opt');
    const tensors = new Map<string, tf.Tensor>([
      ['m.unet.out_conv.weight', tf.tensor2d([[1.5, -2], [3, 4.25]])],
      ['step', tf.scalar(17, 'int32')],
    ]);
    await saveOptimizerState(d, tensors, { stage: 2, step: 17, lr: 1e-4 });
    const back = await loadOptimizerState(d);
    expect(back.state).toEqual({ stage: 2, step: 17, lr: 1e-4 });
    expect(back.tensors.get('m.unet.out_conv.weight')!.arraySync()).toEqual([[1.5, -2], [3, 4.25]]);
    expect(back.tensors.get('step')!.dtype).toBe('int32');
    expect(back.tensors.get('step')!.arraySync()).toBe(17);
    tf.dispose([...tensors.values(), ...back.tensors.values()]);
  });
});
