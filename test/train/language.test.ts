import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WordTokenizer, createModel, loadCheckpoint, modelConfig, saveCheckpoint } from '../../src/model/index.js';
import { generateIclevrEpisodes, mirrorRelationText, parseIclevrInstruction } from '../../src/data/index.js';
import {
  DEFAULT_OPTIONS,
  buildTurnDataset,
  loadEpisodeSource,
  modelStageTask,
  rewordBatch,
  stageOptimizer,
  trainModel,
  validationBatches,
  type TrainOptions,
} from '../../src/train/index.js';

const texts = generateIclevrEpisodes({ count: 40, seed: 5 }).flatMap((e) => e.turns.map((t) => t.text));

describe('rewordBatch', () => {
  it('rewords the asked share, the same way for the same key, differently for another', () => {
    expect(rewordBatch(texts, undefined, 0, 1, 2, 3).texts).toEqual(texts);
    const all = rewordBatch(texts, undefined, 1, 1, 2, 3).texts;
    expect(all.filter((t, i) => t !== texts[i]).length).toBeGreaterThan(texts.length * 0.95);
    const half = rewordBatch(texts, undefined, 0.5, 1, 2, 3).texts;
    const share = half.filter((t, i) => t !== texts[i]).length / texts.length;
    expect(share).toBeGreaterThan(0.35);
    expect(share).toBeLessThan(0.65);
    expect(rewordBatch(texts, undefined, 0.5, 1, 2, 3).texts).toEqual(half);
    expect(rewordBatch(texts, undefined, 0.5, 1, 2, 4).texts).not.toEqual(half);
  });

  it('rewords a hard negative with its positive\'s draws: they still differ only in the relation', () => {
    const side = texts.filter((t) => / to the (left|right) of /.test(t) && !/ and /.test(t));
    const negatives = side.map((t) => [mirrorRelationText(t)!]);
    const r = rewordBatch(side, negatives, 1, 7, 1);
    const swap = (s: string) => s.replace(/left|right/g, (m) => (m === 'left' ? 'right' : 'left'));
    const same = r.texts.filter((t, i) => swap(t) === r.negatives![i]![0]).length;
    // Only a typo landing on the side word itself can break the pairing.
    expect(same).toBeGreaterThan(side.length * 0.9);
    for (const t of r.texts) expect(parseIclevrInstruction(t)).toBeNull();
  });
});

describe('training with reworded instructions and a BPE', () => {
  it('a stage task with --reword-rate trains on other texts than without, reproducibly', async () => {
    const eps = await loadEpisodeSource({ dataset: 'iclevr', split: 'train', count: 4, seed: 3 });
    const ds = buildTurnDataset('iclevr', eps, 16);
    const cfg = modelConfig('tiny');
    const model = createModel(cfg, { tokenizer: WordTokenizer.fromCorpus(ds.texts, { contextLength: cfg.text.contextLength }) });
    const opts = { ...DEFAULT_OPTIONS, batch: 4 };
    const val = validationBatches(ds, 4, 1, 1);
    const optimizer = stageOptimizer(model, 1, opts, 1);
    const loss = (rate: number) => tf.tidy(() => modelStageTask(model, 1, optimizer, ds, val, { ...opts, rewordRate: rate }).loss(0, 0).total.dataSync()[0]!);
    expect(loss(1)).toBe(loss(1));
    expect(loss(1)).not.toBe(loss(0));
    optimizer.dispose();
    model.dispose();
  });

  it('--tokenizer bpe with --init converts a word-level model; the run trains, saves and resumes with the BPE', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lang-train-'));
    try {
      const eps = generateIclevrEpisodes({ count: 6, seed: 0 });
      const cfg = modelConfig('tiny');
      const word = createModel(cfg, { tokenizer: WordTokenizer.fromCorpus(eps.flatMap((e) => e.turns.map((t) => t.text)), { contextLength: cfg.text.contextLength }) });
      await saveCheckpoint(word, join(root, 'word'));
      const o: TrainOptions = {
        ...DEFAULT_OPTIONS, dataset: 'iclevr', config: 'tiny', stage: 2, out: join(root, 'run'), steps: 3, batch: 4, lr: 1e-3,
        valEvery: 2, valBatches: 1, trainEpisodes: 6, valEpisodes: 2, imageSize: 16, checkpointMinutes: 1000, progress: false,
        init: join(root, 'word'), tokenizer: 'bpe', rewordRate: 0.5,
      };
      let polls = 0;
      const first = await trainModel(o, { shouldStop: () => ++polls > 1 });
      expect(first.interrupted).toBe(true);
      const r = await trainModel({ ...o, resume: true });
      expect(r.interrupted).toBe(false);
      const m = await loadCheckpoint(join(root, 'run', 'model'));
      expect(m.tokenizer.kind).toBe('clip-bpe');
      expect(m.tokenizer.tokenize('put a grey ball in the middle')).not.toContain(m.tokenizer.endId);
      expect(m.tokenizer.vocabSize).toBeGreaterThan(500);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
