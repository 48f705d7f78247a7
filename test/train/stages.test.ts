import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { WordTokenizer, createModel, modelConfig, type CddIcm } from '../../src/model/index.js';
import { buildTurnDataset, loadEpisodeSource, modelStageTask, stageOptimizer, validationBatches, DEFAULT_OPTIONS } from '../../src/train/index.js';

async function tinySetup(): Promise<{ model: CddIcm; ds: Awaited<ReturnType<typeof buildTurnDataset>> }> {
  const eps = await loadEpisodeSource({ dataset: 'iclevr', split: 'train', count: 4, seed: 3 });
  const ds = buildTurnDataset('iclevr', eps, 16);
  const cfg = modelConfig('tiny');
  const model = createModel(cfg, { tokenizer: WordTokenizer.fromCorpus(ds.texts, { contextLength: cfg.text.contextLength }) });
  return { model, ds };
}

function weights(model: CddIcm): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const [n, v] of model.namedParameters()) m.set(n, Float32Array.from(v.dataSync()));
  return m;
}

const opts = { ...DEFAULT_OPTIONS, batch: 4, lr: 1e-2 };

describe('stage selection (Sec. 2.6)', () => {
  it('each stage updates exactly its own components', async () => {
    const { model, ds } = await tinySetup();
    const val = validationBatches(ds, 4, 1, 1);
    const prefixes: Record<1 | 2 | 3, string[]> = {
      1: ['image_encoder.', 'text_encoder.', 'fusion.', 'icm.'],
      2: ['image_encoder.', 'text_encoder.', 'fusion.', 'context.', 'unet.', 'icm.'],
      3: ['noisy_image_encoder.', 'nicm.'],
    };
    for (const stage of [1, 2, 3] as const) {
      const before = weights(model);
      const optimizer = stageOptimizer(model, stage, opts, 1);
      const task = modelStageTask(model, stage, optimizer, ds, val, opts);
      const { value, grads } = tf.variableGrads(() => task.loss(0, 0).total, optimizer.trainableVariables());
      optimizer.step(grads);
      tf.dispose([value, ...Object.values(grads)]);
      const after = weights(model);
      const changed = [...before.keys()].filter((n) => before.get(n)!.some((x, i) => x !== after.get(n)![i]));
      const inStage = (n: string) => prefixes[stage].some((p) => n.startsWith(p));
      // Nothing outside the stage moves (stage 3: encoders, fusion and U-Net stay frozen).
      expect(changed.filter((n) => !inStage(n))).toEqual([]);
      // The stage's own components do move.
      for (const p of prefixes[stage].filter((x) => x !== 'context.')) expect(changed.some((n) => n.startsWith(p))).toBe(true);
      if (stage === 2) expect(changed.filter((n) => n.startsWith('unet.')).length).toBeGreaterThan(10);
      optimizer.dispose();
    }
    model.dispose();
  });

  it('--icm-hard-negatives adds each turn\'s mirrored instruction as a negative, in training and validation', async () => {
    const { model, ds } = await tinySetup();
    const val = validationBatches(ds, 4, 1, 1);
    for (const stage of [1, 3] as const) {
      const optimizer = stageOptimizer(model, stage, opts, 1);
      const plain = modelStageTask(model, stage, optimizer, ds, val, opts);
      const hard = modelStageTask(model, stage, optimizer, ds, val, { ...opts, icmHardNegatives: true });
      const total = (t: typeof plain) => tf.tidy(() => t.loss(0, 0).total.dataSync()[0]!);
      expect(total(hard)).toBeGreaterThan(total(plain));
      expect(hard.validate()).toBeGreaterThan(plain.validate());
      // --icm-hard-negative-axes: the one-axis mirrors of diagonal relations are more negatives.
      const axes = modelStageTask(model, stage, optimizer, ds, val, { ...opts, icmHardNegatives: true, icmHardNegativeAxes: true });
      const epoch = (t: typeof plain) => tf.tidy(() => [0, 4, 8, 12, 16].reduce((sum, c) => sum + t.loss(c, 0).total.dataSync()[0]!, 0));
      expect(epoch(axes)).toBeGreaterThan(epoch(hard));
      // --icm-hard-negative-colors: every turn (first turns too) gets its recoloured instruction as a negative.
      const colors = modelStageTask(model, stage, optimizer, ds, val, { ...opts, icmHardNegativeColors: true });
      expect(epoch(colors)).toBeGreaterThan(epoch(plain));
      const both = modelStageTask(model, stage, optimizer, ds, val, { ...opts, icmHardNegatives: true, icmHardNegativeColors: true });
      expect(epoch(both)).toBeGreaterThan(epoch(hard));
      if (stage === 3) {
        // The mirrored conditions are constants to stage 3: the frozen encoders get no gradient through them.
        const before = weights(model);
        const { value, grads } = tf.variableGrads(() => hard.loss(0, 0).total, optimizer.trainableVariables());
        optimizer.step(grads);
        tf.dispose([value, ...Object.values(grads)]);
        const after = weights(model);
        const changed = [...before.keys()].filter((n) => before.get(n)!.some((x, i) => x !== after.get(n)![i]));
        expect(changed.length).toBeGreaterThan(0);
        expect(changed.filter((n) => !n.startsWith('noisy_image_encoder.') && !n.startsWith('nicm.'))).toEqual([]);
      }
      optimizer.dispose();
    }
    model.dispose();
  });

  it('puts pretrained backbones in their own group at lr x eta', async () => {
    const { model } = await tinySetup();
    const opt = stageOptimizer(model, 2, opts, 0.001);
    const groups = opt.describe();
    const bb = groups.filter((g) => g.name.endsWith('.backbone'));
    expect(bb.map((g) => g.name).sort()).toEqual(['imageEncoder.backbone', 'textEncoder.backbone']);
    for (const g of bb) expect(g.lrScale).toBe(0.001);
    for (const g of groups.filter((x) => !x.name.endsWith('.backbone'))) expect(g.lrScale).toBe(1);
    opt.dispose();
    model.dispose();
  });
});
