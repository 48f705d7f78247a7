import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { learnByteBpe, loadCheckpoint, retokenizeModel, saveCheckpoint, type CddIcm } from '../../src/model/index.js';
import { makeTurns, tinyModel, tinyTokenizer } from './fixtures.js';

const texts = makeTurns().map((t) => t.text);
const bpe = learnByteBpe([...texts, ...texts.map((t) => t.replace('square', 'box')), 'put a red box on the left', 'put a blue box on the top'], { contextLength: 10 });

function pooled(m: CddIcm, ts: string[]): Float32Array {
  return tf.tidy(() => m.textEncoder.encode(m.tokenize(ts)).pooled.dataSync() as Float32Array);
}
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('retokenizeModel', () => {
  const old = tinyModel();
  const { model, report } = retokenizeModel(old, bpe, tinyTokenizer().vocab, new Map([['box', 'square'], ['put', 'add']]));

  it('keeps every weight and encodes the old texts exactly as before', () => {
    expect(model.tokenizer.kind).toBe('clip-bpe');
    expect(report.split).toEqual([]);
    expect(report.copied).toBe(tinyTokenizer().vocab.length - 4);
    expect(maxDiff(pooled(model, texts), pooled(old, texts))).toBeLessThan(1e-6);
    // The U-Net and everything but the token table are the old tensors' values.
    const a = old.namedParameters();
    for (const [name, v] of model.namedParameters()) {
      if (name.includes('token_embedding')) continue;
      expect(maxDiff(v.dataSync() as Float32Array, a.get(name)!.dataSync() as Float32Array), name).toBe(0);
    }
  });

  it('starts a synonym from the word it stands for, and a new word elsewhere', () => {
    expect(report.fromSynonyms).toBe(2);
    expect(maxDiff(pooled(model, ['put a red box on the left']), pooled(model, ['add a red square on the left']))).toBeLessThan(1e-6);
    // A word the old model could not read (it was [UNK]) now has its own pieces and its own encoding.
    const o = pooled(old, ['add a red triangle on the left', 'add a red circle on the left']);
    expect(maxDiff(o.subarray(0, o.length / 2), o.subarray(o.length / 2))).toBe(0);
    const n = pooled(model, ['add a red triangle on the left', 'add a red circle on the left']);
    expect(maxDiff(n.subarray(0, n.length / 2), n.subarray(n.length / 2))).toBeGreaterThan(1e-4);
  });

  it('saves and loads with its BPE', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'retok-'));
    try {
      await saveCheckpoint(model, dir);
      const back = await loadCheckpoint(dir);
      expect(back.tokenizer.kind).toBe('clip-bpe');
      expect(back.tokenizer.vocabSize).toBe(bpe.vocabSize);
      expect(maxDiff(pooled(back, texts), pooled(model, texts))).toBeLessThan(1e-6);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
