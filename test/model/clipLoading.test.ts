import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, writeFile, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { f16round } from '@petamoriken/float16';
import { writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.js';
import { loadClip, loadClipWeights, readClipConfig } from '../../src/model/clip/index.js';
import { VisionEncoder, TextEncoder } from '../../src/model/encoders/index.js';
import { resetSeed } from '../../src/model/nn.js';

// ---------- a tiny CLIP-shaped checkpoint in Hugging Face layout ----------

const VOCAB = [
  '!', '!</w>', 'a', 'a</w>', 'c', 'ca', 'cat</w>', 'f</w>', 'h', 'o', 'o</w>', 'of</w>', 'ot', 'p', 'ph', 't', 't</w>',
  'Ã', '©</w>', 'aa', '<|startoftext|>', '<|endoftext|>',
];
const MERGES = ['#version: 0.2', 'c a', 'ca t</w>', 'o f</w>', 'p h', 'o t', 'ph o', 'a a'].join('\n');
const VC = { hidden_size: 16, intermediate_size: 40, num_attention_heads: 2, num_hidden_layers: 2, image_size: 8, patch_size: 4, num_channels: 3, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5 };
const TC = { vocab_size: VOCAB.length, hidden_size: 12, intermediate_size: 24, num_attention_heads: 3, num_hidden_layers: 2, max_position_embeddings: 12, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, bos_token_id: 20, eos_token_id: 2, pad_token_id: 1 };
const CONFIG = { architectures: ['CLIPModel'], model_type: 'clip', projection_dim: 8, vision_config: VC, text_config: TC };
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

/** Seeded normal samples (mulberry32 + Box-Muller), independent of tfjs. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

interface Weight { shape: number[]; data: number[] }
type Weights = Map<string, Weight>;

function makeWeights(seed: number, round: (x: number) => number): Weights {
  const n = rng(seed);
  const w: Weights = new Map();
  const put = (name: string, shape: number[], scale: number, offset = 0) => {
    const count = shape.reduce((a, d) => a * d, 1);
    w.set(name, { shape, data: Array.from({ length: count }, () => round(offset + scale * n())) });
  };
  const layers = (prefix: string, width: number, mlp: number, count: number) => {
    for (let i = 0; i < count; i++) {
      const p = `${prefix}.encoder.layers.${i}`;
      for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
        put(`${p}.self_attn.${proj}.weight`, [width, width], 0.3);
        put(`${p}.self_attn.${proj}.bias`, [width], 0.1);
      }
      put(`${p}.layer_norm1.weight`, [width], 0.1, 1);
      put(`${p}.layer_norm1.bias`, [width], 0.1);
      put(`${p}.mlp.fc1.weight`, [mlp, width], 0.3);
      put(`${p}.mlp.fc1.bias`, [mlp], 0.1);
      put(`${p}.mlp.fc2.weight`, [width, mlp], 0.3);
      put(`${p}.mlp.fc2.bias`, [width], 0.1);
      put(`${p}.layer_norm2.weight`, [width], 0.1, 1);
      put(`${p}.layer_norm2.bias`, [width], 0.1);
    }
  };
  const vw = VC.hidden_size;
  const np = (VC.image_size / VC.patch_size) ** 2 + 1;
  put('vision_model.embeddings.class_embedding', [vw], 0.5);
  put('vision_model.embeddings.patch_embedding.weight', [vw, 3, VC.patch_size, VC.patch_size], 0.3);
  put('vision_model.embeddings.position_embedding.weight', [np, vw], 0.5);
  put('vision_model.pre_layrnorm.weight', [vw], 0.1, 1);
  put('vision_model.pre_layrnorm.bias', [vw], 0.1);
  layers('vision_model', vw, VC.intermediate_size, VC.num_hidden_layers);
  put('vision_model.post_layernorm.weight', [vw], 0.1, 1);
  put('vision_model.post_layernorm.bias', [vw], 0.1);
  const tw = TC.hidden_size;
  put('text_model.embeddings.token_embedding.weight', [TC.vocab_size, tw], 0.5);
  put('text_model.embeddings.position_embedding.weight', [TC.max_position_embeddings, tw], 0.5);
  layers('text_model', tw, TC.intermediate_size, TC.num_hidden_layers);
  put('text_model.final_layer_norm.weight', [tw], 0.1, 1);
  put('text_model.final_layer_norm.bias', [tw], 0.1);
  // Present in real checkpoints, unused by our encoders.
  put('visual_projection.weight', [8, vw], 0.3);
  put('text_projection.weight', [8, tw], 0.3);
  put('logit_scale', [], 0, 2.6592);
  return w;
}

async function writeCheckpoint(dir: string, w: Weights, dtype: 'F32' | 'F16'): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, TensorToWrite>([...w].map(([k, v]) => [k, { shape: v.shape, data: v.data }]));
  // Integer buffers as the HF conversion stores them.
  tensors.set('text_model.embeddings.position_ids', { shape: [1, TC.max_position_embeddings], data: [...Array(TC.max_position_embeddings).keys()], dtype: 'I64' });
  tensors.set('vision_model.embeddings.position_ids', { shape: [1, 5], data: [0, 1, 2, 3, 4], dtype: 'I64' });
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { dtype, metadata: { format: 'pt' } });
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(CONFIG));
  await writeFile(path.join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries(VOCAB.map((t, i) => [t, i]))));
  await writeFile(path.join(dir, 'merges.txt'), MERGES);
}

// ---------- independent float64 reference forward (Hugging Face CLIP semantics) ----------

type Vec = number[];
const get = (w: Weights, name: string) => w.get(name)!.data;

function linear(x: Vec[], w: Weights, name: string): Vec[] {
  const { shape, data } = w.get(`${name}.weight`)!;
  const [out, inn] = shape as [number, number];
  const b = get(w, `${name}.bias`);
  return x.map((row) => Array.from({ length: out }, (_, o) => {
    let s = b[o]!;
    for (let i = 0; i < inn; i++) s += data[o * inn + i]! * row[i]!;
    return s;
  }));
}

function layerNorm(x: Vec[], w: Weights, name: string, eps = 1e-5): Vec[] {
  const g = get(w, `${name}.weight`);
  const b = get(w, `${name}.bias`);
  return x.map((row) => {
    const m = row.reduce((a, v) => a + v, 0) / row.length;
    const v = row.reduce((a, x) => a + (x - m) ** 2, 0) / row.length;
    return row.map((x, i) => ((x - m) / Math.sqrt(v + eps)) * g[i]! + b[i]!);
  });
}

function attention(x: Vec[], w: Weights, p: string, heads: number, causal: boolean): Vec[] {
  const q = linear(x, w, `${p}.q_proj`);
  const k = linear(x, w, `${p}.k_proj`);
  const v = linear(x, w, `${p}.v_proj`);
  const width = x[0]!.length;
  const dh = width / heads;
  const out = x.map(() => new Array<number>(width).fill(0));
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < x.length; i++) {
      const scores = x.map((_, j) => {
        if (causal && j > i) return -Infinity;
        let s = 0;
        for (let d = 0; d < dh; d++) s += q[i]![h * dh + d]! * k[j]![h * dh + d]!;
        return s / Math.sqrt(dh);
      });
      const mx = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - mx));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < x.length; j++) for (let d = 0; d < dh; d++) out[i]![h * dh + d]! += (e[j]! / z) * v[j]![h * dh + d]!;
    }
  }
  return linear(out, w, `${p}.out_proj`);
}

const quickGelu = (v: number) => v / (1 + Math.exp(-1.702 * v));
const add = (a: Vec[], b: Vec[]) => a.map((r, i) => r.map((v, j) => v + b[i]![j]!));

function encoder(x: Vec[], w: Weights, prefix: string, layers: number, heads: number, causal: boolean): Vec[] {
  let h = x;
  for (let l = 0; l < layers; l++) {
    const p = `${prefix}.encoder.layers.${l}`;
    h = add(h, attention(layerNorm(h, w, `${p}.layer_norm1`), w, `${p}.self_attn`, heads, causal));
    const m = linear(linear(layerNorm(h, w, `${p}.layer_norm2`), w, `${p}.mlp.fc1`).map((r) => r.map(quickGelu)), w, `${p}.mlp.fc2`);
    h = add(h, m);
  }
  return h;
}

/** HF CLIPVisionTransformer on one image given as [H][W][3] in [-1, 1] at the native size. */
function refVision(img: number[][][], w: Weights): { last: Vec[]; pooled: Vec } {
  const p = VC.patch_size;
  const g = VC.image_size / p;
  const width = VC.hidden_size;
  const pw = get(w, 'vision_model.embeddings.patch_embedding.weight'); // [out, in, kh, kw]
  const px = (y: number, x: number, c: number) => ((img[y]![x]![c]! + 1) / 2 - MEAN[c]!) / STD[c]!;
  const tokens: Vec[] = [get(w, 'vision_model.embeddings.class_embedding').slice()];
  for (let gy = 0; gy < g; gy++) {
    for (let gx = 0; gx < g; gx++) {
      tokens.push(Array.from({ length: width }, (_, o) => {
        let s = 0;
        for (let c = 0; c < 3; c++) for (let ky = 0; ky < p; ky++) for (let kx = 0; kx < p; kx++) {
          s += pw[((o * 3 + c) * p + ky) * p + kx]! * px(gy * p + ky, gx * p + kx, c);
        }
        return s;
      }));
    }
  }
  const pos = get(w, 'vision_model.embeddings.position_embedding.weight');
  const emb = tokens.map((t, i) => t.map((v, j) => v + pos[i * width + j]!));
  const last = encoder(layerNorm(emb, w, 'vision_model.pre_layrnorm'), w, 'vision_model', VC.num_hidden_layers, VC.num_attention_heads, false);
  return { last, pooled: layerNorm([last[0]!], w, 'vision_model.post_layernorm')[0]! };
}

/** HF CLIPTextTransformer on one row of ids (pooled at the argmax id, eos_token_id = 2 legacy). */
function refText(ids: number[], w: Weights): { last: Vec[]; pooled: Vec } {
  const width = TC.hidden_size;
  const tok = get(w, 'text_model.embeddings.token_embedding.weight');
  const pos = get(w, 'text_model.embeddings.position_embedding.weight');
  const emb = ids.map((id, i) => Array.from({ length: width }, (_, j) => tok[id * width + j]! + pos[i * width + j]!));
  const h = encoder(emb, w, 'text_model', TC.num_hidden_layers, TC.num_attention_heads, true);
  const last = layerNorm(h, w, 'text_model.final_layer_norm');
  const end = ids.indexOf(Math.max(...ids));
  return { last, pooled: last[end]! };
}

function maxDiff(actual: tf.Tensor, expected: number[]): number {
  const a = actual.dataSync();
  expect(a.length).toBe(expected.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - expected[i]!));
  return m;
}

function randomImages(b: number, size: number, seed: number): number[][][][] {
  const n = rng(seed);
  return Array.from({ length: b }, () => Array.from({ length: size }, () => Array.from({ length: size }, () => [0, 1, 2].map(() => Math.tanh(n())))));
}

// ---------- tests ----------

describe('loading a Hugging Face CLIP checkpoint', () => {
  let root: string;
  const w32 = makeWeights(42, Math.fround);
  const w16 = makeWeights(43, f16round);

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'clip-'));
    await writeCheckpoint(path.join(root, 'f32'), w32, 'F32');
    await writeCheckpoint(path.join(root, 'f16'), w16, 'F16');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  for (const [label, weights] of [['F32', w32], ['F16', w16]] as const) {
    it(`reproduces the reference forward of both encoders (${label} weights)`, async () => {
      resetSeed(3);
      const clip = await loadClip(path.join(root, label.toLowerCase()));
      expect(clip.report.skipped).toEqual([]);
      expect(clip.vision.projectionDim).toBe(8);

      const imgs = randomImages(2, VC.image_size, 7);
      const x = tf.tensor4d(imgs.flat(3), [2, VC.image_size, VC.image_size, 3]);
      const feats = clip.vision.features(x);
      const refs = imgs.map((im) => refVision(im, weights));
      expect(maxDiff(feats.lastHiddenState, refs.flatMap((r) => r.last.flat()))).toBeLessThan(1e-4);
      expect(maxDiff(feats.pooledOutput, refs.flatMap((r) => r.pooled))).toBeLessThan(1e-4);
      const out = clip.vision.encode(x);
      const seqRef = refs.flatMap((r) => layerNorm(r.last.slice(1), weights, 'vision_model.post_layernorm').flat());
      expect(maxDiff(out.sequence, seqRef)).toBeLessThan(1e-4);

      const enc = clip.tokenizer.encode(['A photo of a cat', 'cat!!']);
      expect(enc.contextLength).toBe(TC.max_position_embeddings);
      expect([...enc.ids[1]!].slice(0, 5)).toEqual([20, 6, 0, 1, 21]);
      const ids = tf.tensor2d(enc.ids.flatMap((r) => [...r]), [2, enc.contextLength], 'int32');
      const tf_ = clip.text.features(ids);
      const trefs = enc.ids.map((r) => refText([...r], weights));
      expect(maxDiff(tf_.lastHiddenState, trefs.flatMap((r) => r.last.flat()))).toBeLessThan(1e-4);
      expect(maxDiff(tf_.pooledOutput, trefs.flatMap((r) => r.pooled))).toBeLessThan(1e-4);
      // The tokenizer's recorded end index agrees with HF's argmax pooling.
      const explicit = clip.text.features(ids, enc.endIndex);
      expect(maxDiff(explicit.pooledOutput, trefs.flatMap((r) => r.pooled))).toBeLessThan(1e-4);

      tf.dispose([x, feats, out, ids, tf_, explicit]);
      clip.vision.dispose();
      clip.text.dispose();
    });
  }

  it('keeps the projections fresh and ignores HF projection weights', async () => {
    resetSeed(4);
    const cfg = await readClipConfig(path.join(root, 'f32'));
    const vision = new VisionEncoder(cfg.vision!, 8);
    const text = new TextEncoder(cfg.text!, 8);
    const before = [...vision.headParameters(), ...text.headParameters()].map((v) => [...v.dataSync()]);
    const backboneBefore = vision.backbone.embeddings.class_embedding.dataSync().slice();
    const report = await loadClipWeights(path.join(root, 'f32'), { vision, text });
    expect(report.tokenizer?.contextLength).toBe(TC.max_position_embeddings);
    expect(report.tokenizer?.tokenize('a cat')).toEqual([3, 6]);
    expect(report.loaded.length).toBe(vision.backboneParameters().length + text.backboneParameters().length);
    const after = [...vision.headParameters(), ...text.headParameters()].map((v) => [...v.dataSync()]);
    expect(after).toEqual(before);
    expect([...vision.backbone.embeddings.class_embedding.dataSync()]).not.toEqual([...backboneBefore]);
    expect([...vision.backbone.embeddings.class_embedding.dataSync()]).toEqual(get(w32, 'vision_model.embeddings.class_embedding'));
    // A Linear weight arrives transposed: ours[i][o] = HF[o][i].
    const q = vision.backbone.encoder.layers.items[1]!.self_attn.q_proj.weight.arraySync() as number[][];
    const hf = get(w32, 'vision_model.encoder.layers.1.self_attn.q_proj.weight');
    expect(q[3]![5]).toBe(hf[5 * 16 + 3]);
    vision.dispose();
    text.dispose();
  });

  it('loads a noisy image encoder: strict mode refuses other channels; lenient mode adapts what it can', async () => {
    resetSeed(5);
    const dir = path.join(root, 'f32');
    const cfg = await readClipConfig(dir);
    const noisy = new VisionEncoder({ ...cfg.vision!, imageSize: 16, inChannels: 4, timeConditioned: true }, 8);
    await expect(loadClipWeights(dir, { vision: noisy })).rejects.toThrow(/patch_embedding/);
    const patchBefore = [...noisy.backbone.embeddings.patch_embedding.weight.dataSync()];
    const report = await loadClipWeights(dir, { vision: noisy }, { strict: false });
    expect(report.skipped.map((s) => s.name)).toEqual(['vision.backbone.embeddings.patch_embedding.weight']);
    expect([...noisy.backbone.embeddings.patch_embedding.weight.dataSync()]).toEqual(patchBefore);
    // 2x2 position grid resized to 4x4; the class row is kept as is.
    const pos = noisy.backbone.embeddings.position_embedding.table.arraySync() as number[][];
    expect(pos).toHaveLength(17);
    const hfPos = get(w32, 'vision_model.embeddings.position_embedding.weight');
    pos[0]!.forEach((v, j) => expect(v).toBeCloseTo(hfPos[j]!, 6));
    // The corner of the upsampled grid equals the corner of the original (half-pixel bilinear, clamped edge).
    pos[1]!.forEach((v, j) => expect(v).toBeCloseTo(hfPos[16 + j]!, 5));
    const x = tf.randomUniform([1, 16, 16, 4], -1, 1, 'float32', 1) as tf.Tensor4D;
    const out = noisy.encode(x, tf.tensor1d([10]));
    expect(out.pooled.shape).toEqual([1, 8]);
    tf.dispose([x, out]);
    noisy.dispose();
  });

  it('cuts the text position table to a shorter context, reads sharded checkpoints, and names missing tensors', async () => {
    resetSeed(6);
    const cfg = await readClipConfig(path.join(root, 'f32'));
    const text = new TextEncoder({ ...cfg.text!, contextLength: 8 }, 8);
    await loadClipWeights(path.join(root, 'f32'), { text });
    expect([...text.backbone.embeddings.position_embedding.table.dataSync()]).toEqual(
      get(w32, 'text_model.embeddings.position_embedding.weight').slice(0, 8 * TC.hidden_size),
    );

    const sharded = path.join(root, 'sharded');
    await mkdir(sharded, { recursive: true });
    const names = [...w32.keys()];
    const half = Math.floor(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    for (const [i, list] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(path.join(sharded, file), new Map(list.map((n) => [n, { shape: w32.get(n)!.shape, data: w32.get(n)!.data }])));
      for (const n of list) weightMap[n] = file;
    }
    await writeFile(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await writeFile(path.join(sharded, 'config.json'), JSON.stringify(CONFIG));
    const v2 = new VisionEncoder(cfg.vision!, 8);
    const r = await loadClipWeights(sharded, { vision: v2 });
    expect(r.loaded.length).toBe(v2.backboneParameters().length);
    expect(r.tokenizer).toBeNull(); // no tokenizer files in that folder
    expect([...v2.backbone.post_layernorm.beta.dataSync()]).toEqual(get(w32, 'vision_model.post_layernorm.bias'));

    const partial = path.join(root, 'partial');
    await mkdir(partial, { recursive: true });
    const keep = new Map([...w32].filter(([n]) => n !== 'text_model.final_layer_norm.bias').map(([n, t]) => [n, { shape: t.shape, data: t.data }]));
    await writeSafetensors(path.join(partial, 'model.safetensors'), keep);
    await expect(loadClipWeights(partial, { text })).rejects.toThrow(/text_model\.final_layer_norm\.bias/);
    await expect(loadClipWeights(path.join(root, 'nowhere'), { text })).rejects.toThrow(/model\.safetensors/);
    text.dispose();
    v2.dispose();
  });
});
