/**
 * Loading a Hugging Face CLIP checkpoint from a local folder (config.json, model.safetensors or sharded
 * model-*.safetensors with model.safetensors.index.json, tokenizer.json or vocab.json + merges.txt) into our
 * encoders. Only the backbones load (`vision_model.*`, `text_model.*`); the projections to d stay freshly
 * initialised as the paper prescribes (HF's visual_projection/text_projection are ignored). No network access.
 */
import { readFile, access } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { partLogger } from '../../log/index.js';
import { readSafetensors, type SafetensorsTensor } from '../safetensors.js';
import { ClipBpeTokenizer } from '../tokenizer/index.js';
import { VisionEncoder, TextEncoder, type VisionConfig } from '../encoders/index.js';
import { clipConfigFromHf, type HfClipConfig } from './config.js';

const log = partLogger('model.clip');

export interface LoadClipOptions {
  /**
   * true (default): every backbone variable must load, else throw. false: variables whose shape cannot be
   * adapted (e.g. a patch embedding for latent channels) keep their fresh values and are listed in `skipped`.
   */
  strict?: boolean;
}

export interface LoadReport {
  /** Our variable names that received CLIP weights. */
  loaded: string[];
  /** Our variable names left as initialised, with the reason. */
  skipped: { name: string; reason: string }[];
}

export interface LoadClipResult extends LoadReport {
  /** The folder's CLIP tokenizer (framed to the text encoder's context), or null if it has no tokenizer files. */
  tokenizer: ClipBpeTokenizer | null;
}

const exists = (f: string) => access(f).then(() => true, () => false);

/** Read and parse config.json of a local CLIP folder. */
export async function readClipConfig(dir: string): Promise<HfClipConfig> {
  const file = path.join(dir, 'config.json');
  if (!(await exists(file))) throw new Error(`${dir}: no config.json (expected a Hugging Face CLIP folder)`);
  return clipConfigFromHf(JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>);
}

/** Read the tensors whose names pass `filter` from model.safetensors or its shards. */
export async function readClipTensors(dir: string, filter: (name: string) => boolean): Promise<Map<string, SafetensorsTensor>> {
  const single = path.join(dir, 'model.safetensors');
  if (await exists(single)) return readSafetensors(single, { filter });
  const index = path.join(dir, 'model.safetensors.index.json');
  if (await exists(index)) {
    const map = (JSON.parse(await readFile(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
    const shards = new Set(Object.entries(map).filter(([n]) => filter(n)).map(([, f]) => f));
    const out = new Map<string, SafetensorsTensor>();
    for (const shard of shards) for (const [n, t] of await readSafetensors(path.join(dir, shard), { filter })) out.set(n, t);
    return out;
  }
  if (await exists(path.join(dir, 'pytorch_model.bin'))) {
    throw new Error(`${dir}: only pytorch_model.bin found; convert it to model.safetensors (safetensors' convert script) first`);
  }
  throw new Error(`${dir}: no model.safetensors`);
}

const LINEAR_WEIGHT = /(q_proj|k_proj|v_proj|out_proj|fc1|fc2)\.weight$/;

/**
 * HF tensor -> our variable's layout: Linear [out, in] -> [in, out]; conv patch [out, in, kh, kw] -> HWIO.
 * Position embeddings adapt: the vision grid is resized bilinearly (other image/patch sizes), the text table is
 * cut to a shorter context. Returns a reason instead when the shapes cannot be reconciled.
 */
function adapt(localName: string, hf: SafetensorsTensor, target: tf.Variable, isVision: boolean): { value: tf.Tensor } | { reason: string } {
  return tf.tidy(() => {
    let t: tf.Tensor = tf.tensor(hf.data, hf.shape, 'float32');
    if (LINEAR_WEIGHT.test(localName) && t.rank === 2) t = tf.transpose(t);
    else if (localName.endsWith('patch_embedding.weight') && t.rank === 4) t = tf.transpose(t, [2, 3, 1, 0]);
    const want = target.shape;
    if (t.shape.length === want.length && t.shape.every((d, i) => d === want[i])) return { value: t };
    if (localName.endsWith('embeddings.position_embedding.weight') && t.rank === 2 && t.shape[1] === want[1]) {
      const [nFrom, w] = t.shape as [number, number];
      const nTo = want[0]!;
      if (isVision) {
        // [1 + g*g, w] -> the class row + the g x g grid resized to the target grid.
        const gFrom = Math.round(Math.sqrt(nFrom - 1));
        const gTo = Math.round(Math.sqrt(nTo - 1));
        if (gFrom * gFrom + 1 === nFrom && gTo * gTo + 1 === nTo) {
          const cls = tf.slice(t, [0, 0], [1, w]);
          const grid = tf.reshape(tf.slice(t, [1, 0], [nFrom - 1, w]), [1, gFrom, gFrom, w]) as tf.Tensor4D;
          const resized = tf.reshape(tf.image.resizeBilinear(grid, [gTo, gTo], false, true), [nTo - 1, w]);
          return { value: tf.concat([cls, resized], 0) };
        }
      } else if (nTo < nFrom) {
        return { value: tf.slice(t, [0, 0], [nTo, w]) };
      }
    }
    return { reason: `shape ${JSON.stringify(hf.shape)} (${hf.dtype}) does not fit ${JSON.stringify(want)}` };
  });
}

/** Assign `prefix` tensors (HF names) to the backbone of one encoder. */
function loadInto(
  encoder: VisionEncoder | TextEncoder,
  prefix: string,
  tensors: Map<string, SafetensorsTensor>,
  strict: boolean,
  report: LoadReport,
  label: string,
): void {
  const isVision = encoder instanceof VisionEncoder;
  for (const [name, variable] of encoder.backbone.namedParameters()) {
    const localName = `backbone.${name}`;
    const hfName = prefix + name;
    const hf = tensors.get(hfName);
    if (!hf) {
      if (strict) throw new Error(`CLIP checkpoint lacks ${hfName} (for ${label}.${localName})`);
      report.skipped.push({ name: `${label}.${localName}`, reason: `${hfName} missing` });
      continue;
    }
    const r = adapt(localName, hf, variable, isVision);
    if ('reason' in r) {
      if (strict) throw new Error(`CLIP ${hfName}: ${r.reason} (${label}.${localName})`);
      report.skipped.push({ name: `${label}.${localName}`, reason: r.reason });
      continue;
    }
    variable.assign(r.value);
    r.value.dispose();
    report.loaded.push(`${label}.${localName}`);
  }
}

/**
 * Load CLIP backbone weights from a local Hugging Face folder into existing encoders (built from our configs,
 * typically `configFromClip`). Each of `vision` (image encoder, and the noisy image encoder if given) receives
 * `vision_model.*`; `text` receives `text_model.*`. Projections and the timestep MLP stay fresh.
 * Also reads the folder's tokenizer (tokenizer.json or vocab.json + merges.txt) when present.
 */
export async function loadClipWeights(
  dir: string,
  targets: { vision?: VisionEncoder | VisionEncoder[]; text?: TextEncoder },
  opts: LoadClipOptions = {},
): Promise<LoadClipResult> {
  const strict = opts.strict ?? true;
  const visions = targets.vision === undefined ? [] : Array.isArray(targets.vision) ? targets.vision : [targets.vision];
  const wantVision = visions.length > 0;
  const wantText = targets.text !== undefined;
  // CLIPModel stores vision_model.* / text_model.*; CLIPVisionModel / CLIPTextModel use the same prefixes.
  const tensors = await readClipTensors(dir, (n) => (wantVision && n.startsWith('vision_model.')) || (wantText && n.startsWith('text_model.')));
  const report: LoadReport = { loaded: [], skipped: [] };
  visions.forEach((v, i) => loadInto(v, 'vision_model.', tensors, strict, report, visions.length > 1 ? `vision${i}` : 'vision'));
  if (targets.text) loadInto(targets.text, 'text_model.', tensors, strict, report, 'text');
  log.info({ dir, loaded: report.loaded.length, skipped: report.skipped.length }, 'loaded CLIP weights');
  for (const s of report.skipped) log.warn(s, 'CLIP weight not loaded');
  const hasTokenizer = (await exists(path.join(dir, 'tokenizer.json'))) ||
    ((await exists(path.join(dir, 'vocab.json'))) && (await exists(path.join(dir, 'merges.txt'))));
  const tokenizer = hasTokenizer ? await loadClipTokenizer(dir, targets.text?.config.contextLength) : null;
  if (tokenizer && targets.text && tokenizer.vocabSize > targets.text.config.vocabSize) {
    throw new Error(`tokenizer has ${tokenizer.vocabSize} ids but the text encoder only ${targets.text.config.vocabSize}`);
  }
  return { ...report, tokenizer };
}

/** CLIP's tokenizer from the folder, framed to the text encoder's context length. */
export async function loadClipTokenizer(dir: string, contextLength?: number): Promise<ClipBpeTokenizer> {
  return ClipBpeTokenizer.fromDir(dir, contextLength === undefined ? {} : { contextLength });
}

export interface LoadedClip {
  config: HfClipConfig;
  vision: VisionEncoder;
  text: TextEncoder;
  tokenizer: ClipBpeTokenizer;
  report: LoadReport;
}

/**
 * Build a fresh image encoder and text encoder sized as the checkpoint, load the backbones, and read the
 * tokenizer. `projectionDim` defaults to the checkpoint's projection_dim (512 for ViT-B/32, the paper's d).
 */
export async function loadClip(dir: string, opts: { projectionDim?: number; vision?: Partial<VisionConfig> } & LoadClipOptions = {}): Promise<LoadedClip> {
  const config = await readClipConfig(dir);
  if (!config.vision || !config.text) throw new Error(`${dir}: not a full CLIPModel (needs vision and text configs)`);
  const d = opts.projectionDim ?? config.projectionDim;
  const vision = new VisionEncoder({ ...config.vision, ...opts.vision }, d);
  const text = new TextEncoder(config.text, d);
  const { tokenizer, ...report } = await loadClipWeights(dir, { vision, text }, opts);
  if (!tokenizer) throw new Error(`${dir}: no tokenizer.json and no vocab.json + merges.txt`);
  return { config, vision, text, tokenizer, report };
}
