/**
 * Crash-safe checkpoint folders for training: a folder is written next to its final name and swapped in with
 * renames, so an interrupted write leaves the previous checkpoint intact (`last.old` is used if the swap itself
 * was interrupted).
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, writeSafetensors } from '../model/index.js';
import type { NamedArray } from './adamw.js';

/** Write a folder through `write(tmpDir)`, then atomically replace `dir` with it. */
export async function writeFolderAtomically(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await write(tmp);
  await fs.rm(old, { recursive: true, force: true });
  if (existsSync(dir)) await fs.rename(dir, old);
  await fs.rename(tmp, dir);
  await fs.rm(old, { recursive: true, force: true });
}

/** The folder to resume from: `dir`, or `dir.old` if a swap was cut short; null if neither is complete. */
export function resolveFolder(dir: string, marker = 'trainer.json'): string | null {
  if (existsSync(join(dir, marker))) return dir;
  if (existsSync(join(`${dir}.old`, marker))) return `${dir}.old`;
  return null;
}

/** optimizer.safetensors + trainer.json (the layout of the model part's checkpoint documentation). */
export async function writeTrainerState(dir: string, optimizer: Map<string, NamedArray>, state: unknown): Promise<void> {
  await writeSafetensors(join(dir, 'optimizer.safetensors'), optimizer, { dtype: 'F32' });
  await fs.writeFile(join(dir, 'trainer.json'), JSON.stringify(state, null, 2) + '\n');
}

export async function readTrainerState<S>(dir: string): Promise<{ optimizer: Map<string, NamedArray>; state: S }> {
  const tensors = new Map<string, NamedArray>();
  for (const [k, t] of await readSafetensors(join(dir, 'optimizer.safetensors'))) tensors.set(k, { shape: t.shape, data: t.data });
  const state = JSON.parse(await fs.readFile(join(dir, 'trainer.json'), 'utf8')) as S;
  return { optimizer: tensors, state };
}

/** raw.safetensors: the optimised weights of a run whose model files hold their moving average. */
export async function writeRawWeights(dir: string, weights: Map<string, NamedArray>): Promise<void> {
  await writeSafetensors(join(dir, 'raw.safetensors'), weights, { dtype: 'F32' });
}

/** The raw weights of a checkpoint folder, or null if it has none (a run without a weight average). */
export async function readRawWeights(dir: string): Promise<Map<string, NamedArray> | null> {
  const file = join(dir, 'raw.safetensors');
  if (!existsSync(file)) return null;
  const out = new Map<string, NamedArray>();
  for (const [k, t] of await readSafetensors(file)) out.set(k, { shape: t.shape, data: t.data });
  return out;
}

/** Assign arrays to the variables of the same name (missing names are left as they are). */
export function assignNamed(vars: Map<string, tf.Variable>, arrays: Map<string, NamedArray>): void {
  for (const [k, v] of vars) {
    const a = arrays.get(k);
    if (!a) continue;
    if (a.shape.join('x') !== v.shape.join('x')) throw new Error(`${k}: saved shape [${a.shape.join(', ')}], the model's [${v.shape.join(', ')}]`);
    tf.tidy(() => v.assign(tf.tensor(a.data, v.shape)));
  }
}
