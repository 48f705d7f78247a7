import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { generateIclevrEpisodes, imagesToTensor, renderScene } from '../../src/data/index.js';
import {
  AutoencoderCodec,
  createAutoencoder,
  createModel,
  loadAutoencoder,
  loadCheckpoint,
  modelConfig,
  saveAutoencoder,
  saveCheckpoint,
  type Autoencoder,
  type CddIcm,
} from '../../src/model/index.js';
import { DEFAULT_OPTIONS, trainAutoencoder } from '../../src/train/index.js';
import { perturb, tinyTokenizer } from '../model/fixtures.js';

function trainCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/train/cli.ts', ...args], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'silent' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Largest absolute difference between same-named variables of two maps (names of `a` only). */
function maxDiff(a: Map<string, tf.Variable>, b: Map<string, tf.Variable>): number {
  let m = 0;
  for (const [n, v] of a) m = Math.max(m, tf.tidy(() => tf.max(tf.abs(tf.sub(v, b.get(n)!))).dataSync()[0]!));
  return m;
}

const encoderOf = (ae: Autoencoder) => new Map([...ae.namedParameters()].filter(([n]) => !n.startsWith('decoder.')));

/** Mean reconstruction loss (L1 + MSE, fixed posterior noise) on i-CLEVR scenes the training never saw. */
function reconstruction(ae: Autoencoder): number {
  const scenes = generateIclevrEpisodes({ count: 4, seed: 901, split: 'val' }).flatMap((e) => e.turns.map((t) => renderScene('iclevr', t.objects, 16)));
  return tf.tidy(() => {
    const l = ae.losses(imagesToTensor(scenes), 5);
    return l.l1.dataSync()[0]! + l.mse.dataSync()[0]!;
  });
}

describe('train --stage ae --decoder-only, and --export --autoencoder', () => {
  let root = '';
  const at = (...p: string[]): string => join(root, ...p);
  let source: CddIcm;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'decoder-only-'));
    // A tiny latent model (16x16 pixels, 4x4x4 latents) whose autoencoder is untrained: plenty for the decoder to learn.
    const cfg = modelConfig('tiny', {
      latent: { channels: 4, downFactor: 4 },
      noisyVision: { imageSize: 4, patchSize: 2, width: 32, layers: 1, heads: 2, inChannels: 4, timeConditioned: true, clipNormalize: false },
      unet: { modelChannels: 8, channelMult: [1, 2], numResBlocks: 1, attentionResolutions: [2], headChannels: 8, groups: 4 },
    });
    const ae = createAutoencoder('tiny', { latentRange: 2.5 });
    source = createModel(cfg, { tokenizer: tinyTokenizer(), codec: new AutoencoderCodec(ae) });
    perturb(source, 0.05);
    await saveCheckpoint(source, at('model'));
    const base = { ...DEFAULT_OPTIONS, dataset: 'iclevr' as const, config: 'tiny', stage: 'ae' as const, batch: 8, lr: 3e-3, valEvery: 1000, valBatches: 1, trainEpisodes: 40, valEpisodes: 4, imageSize: 16, checkpointMinutes: 1000, progress: false };
    await trainAutoencoder({ ...base, init: at('model'), decoderOnly: true, steps: 60, out: at('dec') });
  }, 180_000);
  afterAll(() => {
    source.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it('trains the decoder alone: encoder, latent scale and range unchanged, reconstruction better', async () => {
    const before = (source.codec as AutoencoderCodec).autoencoder;
    const after = await loadAutoencoder(at('dec', 'autoencoder'));
    expect(maxDiff(encoderOf(after), encoderOf(before))).toBe(0);
    expect(after.config.latentScale).toBe(before.config.latentScale);
    expect(after.config.latentRange).toBe(2.5);
    expect(maxDiff(after.decoderParameters(), before.decoderParameters())).toBeGreaterThan(1e-3);
    const [r0, r1] = [reconstruction(before), reconstruction(after)];
    expect(r1).toBeLessThan(0.8 * r0);
    after.dispose();
  }, 60_000);

  it('--export --autoencoder gives the model the new decoder and changes nothing else', async () => {
    const r = trainCli(['--export', at('model'), '--out', at('swapped'), '--dtype', 'float32', '--autoencoder', at('dec', 'autoencoder')]);
    expect(r.status, r.stderr).toBe(0);
    const swapped = await loadCheckpoint(at('swapped'));
    const dec = await loadAutoencoder(at('dec', 'autoencoder'));
    const ae = (swapped.codec as AutoencoderCodec).autoencoder;
    expect(maxDiff(ae.decoderParameters(), dec.decoderParameters())).toBe(0);
    expect(maxDiff(encoderOf(ae), encoderOf((source.codec as AutoencoderCodec).autoencoder))).toBe(0);
    expect(maxDiff(swapped.namedParameters(), source.namedParameters())).toBe(0);
    // The swap is what a sample decodes through: the same latent gives other pixels.
    const z = tf.randomNormal([1, 4, 4, 4], 0, 1, 'float32', 3) as tf.Tensor4D;
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(swapped.codec.decode(z), source.codec.decode(z)))).dataSync()[0]!);
    expect(d).toBeGreaterThan(1e-3);
    tf.dispose(z);
    swapped.dispose();
    dec.dispose();
  }, 60_000);

  it('refuses an autoencoder of another latent space, and --decoder-only without --stage ae --init, writing nothing', async () => {
    const foreign = createAutoencoder('tiny', { seed: 99, latentRange: 2.5 });
    await saveAutoencoder(foreign, at('foreign'));
    foreign.dispose();
    const r = trainCli(['--export', at('model'), '--out', at('never'), '--autoencoder', at('foreign')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("is not this model's latent space (encoder weight");
    expect(existsSync(at('never'))).toBe(false);

    const noInit = trainCli(['--dataset', 'iclevr', '--stage', 'ae', '--decoder-only', '--out', at('never')]);
    expect(noInit.status).toBe(1);
    expect(noInit.stderr).toContain('--decoder-only fine-tunes an existing autoencoder');
    const stage2 = trainCli(['--dataset', 'iclevr', '--stage', '2', '--init', at('model'), '--decoder-only', '--out', at('never')]);
    expect(stage2.status).toBe(1);
    expect(stage2.stderr).toContain('--decoder-only fine-tunes an existing autoencoder');
    expect(existsSync(at('never'))).toBe(false);
  }, 60_000);
});
