import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  TextEncoder,
  VisionEncoder,
  bytesToUnicode,
  createModelFromClip,
  modelConfig,
  sample,
  writeSafetensors,
  type TensorToWrite,
} from '../../src/model/index.js';
import { makeTurns } from './fixtures.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Our backbone variables under Hugging Face names and layouts (Linear [in,out] -> [out,in], conv HWIO -> OIHW). */
function hfTensors(enc: VisionEncoder | TextEncoder, prefix: string): Map<string, TensorToWrite> {
  const out = new Map<string, TensorToWrite>();
  for (const [name, v] of enc.backbone.namedParameters()) {
    let t: tf.Tensor = v;
    if (/(q_proj|k_proj|v_proj|out_proj|fc1|fc2)\.weight$/.test(name)) t = tf.transpose(v);
    else if (name.endsWith('patch_embedding.weight')) t = tf.transpose(v, [3, 2, 0, 1]);
    out.set(prefix + name, { shape: t.shape, data: t.dataSync() });
    if (t !== v) t.dispose();
  }
  return out;
}

describe('createModelFromClip', () => {
  it('builds CDD-ICM on a local Hugging Face CLIP folder: backbones loaded, BPE tokenizer, fresh heads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tiny-clip-'));
    dirs.push(dir);
    // A byte-level vocabulary without merges: every byte char, its end-of-word form, and the two specials.
    const bytes = [...bytesToUnicode().values()];
    const vocab: Record<string, number> = {};
    [...bytes, ...bytes.map((b) => `${b}</w>`), '<|startoftext|>', '<|endoftext|>'].forEach((tkn, i) => (vocab[tkn] = i));
    const nVocab = Object.keys(vocab).length;
    const visionCfg = { imageSize: 16, patchSize: 4, width: 16, layers: 1, heads: 2, mlpDim: 32, hiddenAct: 'quick_gelu' as const };
    const textCfg = { vocabSize: nVocab, contextLength: 12, width: 16, layers: 1, heads: 2, mlpDim: 32, hiddenAct: 'quick_gelu' as const, eosTokenId: nVocab - 1 };
    const srcVision = new VisionEncoder(visionCfg, 8);
    const srcText = new TextEncoder(textCfg, 8);
    await writeFile(join(dir, 'config.json'), JSON.stringify({
      model_type: 'clip',
      projection_dim: 8,
      vision_config: { image_size: 16, patch_size: 4, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, hidden_act: 'quick_gelu' },
      text_config: { vocab_size: nVocab, max_position_embeddings: 12, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, hidden_act: 'quick_gelu', eos_token_id: nVocab - 1 },
    }));
    await writeFile(join(dir, 'vocab.json'), JSON.stringify(vocab));
    await writeFile(join(dir, 'merges.txt'), '#version: 0.2\n');
    await writeSafetensors(join(dir, 'model.safetensors'), new Map([...hfTensors(srcVision, 'vision_model.'), ...hfTensors(srcText, 'text_model.')]));

    const model = await createModelFromClip(dir, modelConfig('tiny', { projectionDim: 8, contextDim: 16 }));
    expect(model.tokenizer.kind).toBe('clip-bpe');
    expect(model.config.vision.width).toBe(16);
    const same = (a: Map<string, tf.Variable>, b: Map<string, tf.Variable>): void => {
      expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
      for (const [k, v] of a) expect(tf.tidy(() => tf.max(tf.abs(tf.sub(v, b.get(k)!))).dataSync()[0]), k).toBe(0);
    };
    same(model.imageEncoder.backbone.namedParameters(), srcVision.backbone.namedParameters());
    same(model.noisyImageEncoder.backbone.namedParameters(), srcVision.backbone.namedParameters());
    same(model.textEncoder.backbone.namedParameters(), srcText.backbone.namedParameters());
    // the projection on top is fresh (a different size than any checkpoint tensor would give)
    expect(model.imageEncoder.projection.weight.shape).toEqual([16, 8]);
    const t = makeTurns()[0]!;
    const [img] = await sample(model, [{ text: t.text, reference: t.reference, steps: 2, guidanceScale: 3, icmGuidanceScale: 2, seed: 1 }]);
    expect(img!.width).toBe(16);
    model.dispose();
    srcVision.dispose();
    srcText.dispose();
  });
});
