/**
 * The checkpoint folder (format "cdd-icm", version 1):
 *   config.json        { format, version, config: ModelConfig, tokenizer: <tokenizer JSON>, codec }
 *                      codec is null (pixels) or { kind: 'autoencoder', config: AutoencoderConfig }
 *   tokenizer.json     the tokenizer alone (same JSON as in config.json), for tools that want only it
 *   model.safetensors  every weight by its dotted name (F32 or F16); a latent model's autoencoder under "codec."
 *   optimizer.safetensors + trainer.json   (training only) optimizer slots and trainer state, for resuming
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  Autoencoder,
  AutoencoderCodec,
  autoencoderWeights,
  setAutoencoderWeights,
  type AutoencoderConfig,
} from './autoencoder/index.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from './safetensors.js';
import { tokenizerFromJSON } from './tokenizer/index.js';
import { CddIcm } from './cddIcm.js';
import type { ImageCodec } from './codec.js';
import { validateModelConfig, type ModelConfig } from './config.js';

export const CHECKPOINT_FORMAT = 'cdd-icm';
export const CHECKPOINT_VERSION = 1;

interface ConfigFile {
  format: string;
  version: number;
  config: ModelConfig;
  tokenizer: unknown;
  codec: null | { kind: 'autoencoder'; config: AutoencoderConfig };
}

/** Every model weight as a named float32 array (names are `namedParameters()` keys). */
export function modelWeights(model: CddIcm): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, v] of model.namedParameters()) out.set(name, { shape: v.shape, data: v.dataSync() as Float32Array });
  return out;
}

/** Assign named arrays to the model's variables; every variable must be present with its shape. */
export function setModelWeights(model: CddIcm, tensors: Map<string, { shape: number[]; data: ArrayLike<number> }>): void {
  for (const [name, v] of model.namedParameters()) {
    const t = tensors.get(name);
    if (!t) throw new Error(`checkpoint: missing weight ${name}`);
    if (t.shape.join(',') !== v.shape.join(',')) throw new Error(`checkpoint: ${name} has shape [${t.shape}], model has [${v.shape}]`);
    tf.tidy(() => v.assign(tf.tensor(Float32Array.from(t.data), v.shape, 'float32')));
  }
}

export async function saveCheckpoint(model: CddIcm, dir: string, opts: { dtype?: 'float32' | 'float16' } = {}): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const weights: Map<string, TensorToWrite> = modelWeights(model);
  let codec: ConfigFile['codec'] = null;
  if (model.config.latent) {
    if (!(model.codec instanceof AutoencoderCodec)) throw new Error('saveCheckpoint: a latent model needs an AutoencoderCodec to be saved');
    codec = { kind: 'autoencoder', config: model.codec.autoencoder.config };
    for (const [k, v] of autoencoderWeights(model.codec.autoencoder, 'codec.')) weights.set(k, { shape: v.shape, data: v.data });
  }
  const tokenizer = model.tokenizer.toJSON();
  const file: ConfigFile = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, config: model.config, tokenizer, codec };
  await fs.writeFile(join(dir, 'config.json'), JSON.stringify(file, null, 2) + '\n');
  await fs.writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer) + '\n');
  await writeSafetensors(join(dir, 'model.safetensors'), weights, {
    dtype: opts.dtype === 'float16' ? 'F16' : 'F32',
    metadata: { format: CHECKPOINT_FORMAT },
  });
}

/** Read a checkpoint folder. A latent model gets its stored autoencoder unless a codec is passed. */
export async function loadCheckpoint(dir: string, opts: { codec?: ImageCodec } = {}): Promise<CddIcm> {
  const file = JSON.parse(await fs.readFile(join(dir, 'config.json'), 'utf8')) as Partial<ConfigFile>;
  if (file.format !== CHECKPOINT_FORMAT || !file.config) throw new Error(`${dir}: not a ${CHECKPOINT_FORMAT} checkpoint`);
  if ((file.version ?? 0) > CHECKPOINT_VERSION) throw new Error(`${dir}: checkpoint version ${file.version} is newer than this code (${CHECKPOINT_VERSION})`);
  const tokenizer = tokenizerFromJSON(file.tokenizer);
  const tensors = await readSafetensors(join(dir, 'model.safetensors'));
  let codec = opts.codec;
  if (!codec && file.codec?.kind === 'autoencoder') {
    const ae = new Autoencoder(file.codec.config);
    setAutoencoderWeights(ae, tensors, 'codec.');
    codec = new AutoencoderCodec(ae);
  }
  const model = new CddIcm(file.config, { tokenizer, ...(codec ? { codec } : {}) });
  setModelWeights(model, tensors);
  return model;
}

/** A latent model checkpoint's embedded autoencoder alone (e.g. to fine-tune its decoder). */
export async function loadCheckpointAutoencoder(dir: string): Promise<Autoencoder> {
  const file = JSON.parse(await fs.readFile(join(dir, 'config.json'), 'utf8')) as Partial<ConfigFile>;
  if (file.format !== CHECKPOINT_FORMAT) throw new Error(`${dir}: not a ${CHECKPOINT_FORMAT} checkpoint`);
  if (file.codec?.kind !== 'autoencoder') throw new Error(`${dir}: a pixel-space model, it has no autoencoder`);
  const ae = new Autoencoder(file.codec.config);
  setAutoencoderWeights(ae, await readSafetensors(join(dir, 'model.safetensors')), 'codec.');
  return ae;
}

/** Optimizer slots (named tensors) and trainer state (JSON) for resuming: optimizer.safetensors + trainer.json. */
export async function saveOptimizerState(dir: string, tensors: Map<string, tf.Tensor>, state: unknown): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const arrays = new Map<string, TensorToWrite>();
  for (const [k, t] of tensors) arrays.set(k, { shape: t.shape, data: t.dataSync(), dtype: t.dtype === 'int32' ? 'I32' : 'F32' });
  await writeSafetensors(join(dir, 'optimizer.safetensors'), arrays, { dtype: 'F32' });
  await fs.writeFile(join(dir, 'trainer.json'), JSON.stringify(state, null, 2) + '\n');
}

/** Inverse of saveOptimizerState; the caller owns (and disposes) the returned tensors. */
export async function loadOptimizerState(dir: string): Promise<{ tensors: Map<string, tf.Tensor>; state: unknown }> {
  const arrays = await readSafetensors(join(dir, 'optimizer.safetensors'));
  const tensors = new Map<string, tf.Tensor>();
  for (const [k, a] of arrays) {
    tensors.set(k, a.dtype === 'I32' ? tf.tensor(Int32Array.from(a.data), a.shape, 'int32') : tf.tensor(a.data, a.shape, 'float32'));
  }
  const state = JSON.parse(await fs.readFile(join(dir, 'trainer.json'), 'utf8')) as unknown;
  return { tensors, state };
}

/** Whether a folder holds a model checkpoint. */
export async function isCheckpoint(dir: string): Promise<boolean> {
  try {
    const f = JSON.parse(await fs.readFile(join(dir, 'config.json'), 'utf8')) as { format?: string };
    return f.format === CHECKPOINT_FORMAT;
  } catch {
    return false;
  }
}

/**
 * A checkpoint's model configuration alone, without its weights: what a server needs to know about a model it
 * loads lazily in another thread (canvas size, name, recommended sampling). Throws on a folder that is not one.
 */
export async function readCheckpointConfig(dir: string): Promise<ModelConfig> {
  const file = JSON.parse(await fs.readFile(join(dir, 'config.json'), 'utf8')) as Partial<ConfigFile>;
  if (file.format !== CHECKPOINT_FORMAT || !file.config) throw new Error(`${dir}: not a ${CHECKPOINT_FORMAT} checkpoint`);
  if ((file.version ?? 0) > CHECKPOINT_VERSION) throw new Error(`${dir}: checkpoint version ${file.version} is newer than this code (${CHECKPOINT_VERSION})`);
  validateModelConfig(file.config);
  return file.config;
}
