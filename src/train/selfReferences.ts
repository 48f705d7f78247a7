/**
 * Scheduled sampling for the iterative setting. In use, every turn after the first continues from the model's own
 * previous canvas, which teacher forcing (Sec. 2.6) never shows it: its small errors compound over the turns
 * (i-CLEVR val, fourth release: RSIM 57 iterative vs 77 teacher-forced). A rollout file holds a model's own canvases
 * on training episodes, generated turn by turn exactly as at inference (its sampling settings, the latent handed
 * on between turns); training then swaps a share of every batch for (own canvas, next instruction, ground-truth
 * next canvas) turns, so the model learns to continue from, and correct, what it drew itself.
 *
 * File: one safetensors file, `pixels` U8 [n, s, s, 3], `latents` F32 [n, h, w, c], `turns` I32 [n] (the training
 * turn whose reference each entry replaces, in TurnDataset order), and metadata: the settings, every entry's
 * instruction (so a file built for other episodes is refused) and how many episodes are done (the resume point).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { backgroundFor, type Episode } from '../data/index.js';
import { parseSafetensors, parseSafetensorsHeader, rollOutEpisodes, writeSafetensors, type CddIcm } from '../model/index.js';
import { TurnSampler, mixSeed, type TurnDataset } from './data.js';

/** How a rollout file was made; resuming with other settings is refused. */
export interface RolloutSettings {
  /** Episodes to roll out (a seeded choice among the training episodes). */
  count: number;
  steps: number;
  guidanceScale: number;
  icmGuidanceScale: number;
  seed: number;
  /** Total episodes of the training set the turn indices refer to. */
  trainEpisodes: number;
}

export interface SelfReferences {
  settings: RolloutSettings;
  /** Pixel size of the canvases. */
  size: number;
  /** Codec-space shape [h, w, c] of one latent. */
  latentShape: [number, number, number];
  /** Per entry, the training turn (TurnDataset order) whose reference it replaces. */
  turns: Int32Array;
  /** Per entry, that turn's instruction. */
  texts: string[];
  pixels: Uint8Array;
  latents: Float32Array;
  /** Episodes rolled out so far, in the rollout's episode order. */
  episodesDone: number;
}

/** The episodes a rollout visits, in order: a seeded permutation of the training set, first `count`. */
export function rolloutOrder(trainEpisodes: number, count: number, seed: number): number[] {
  // The training sampler's first epoch over the episodes (its own seeded permutation).
  return new TurnSampler(trainEpisodes, mixSeed(seed, 61)).indices(0, Math.min(count, trainEpisodes));
}

export async function writeSelfReferences(file: string, r: SelfReferences): Promise<void> {
  const n = r.turns.length;
  const [h, w, c] = r.latentShape;
  await writeSafetensors(
    file,
    {
      pixels: { shape: [n, r.size, r.size, 3], data: r.pixels, dtype: 'U8' },
      latents: { shape: [n, h, w, c], data: r.latents, dtype: 'F32' },
      turns: { shape: [n], data: r.turns, dtype: 'I32' },
    },
    { metadata: { kind: 'cdd-icm-rollouts', settings: JSON.stringify(r.settings), texts: JSON.stringify(r.texts), episodesDone: String(r.episodesDone) } },
  );
}

export async function readSelfReferences(file: string): Promise<SelfReferences> {
  if (!existsSync(file)) throw new Error(`rollout file not found: ${file}`);
  const buf = await readFile(file);
  const header = parseSafetensorsHeader(buf);
  if (header.metadata.kind !== 'cdd-icm-rollouts') throw new Error(`${file} is not a rollout file (npm run train -- --rollouts)`);
  const t = parseSafetensors(buf);
  const pixels = t.get('pixels')!;
  const latents = t.get('latents')!;
  const size = pixels.shape[1]!;
  const [, h, w, c] = latents.shape as [number, number, number, number];
  return {
    settings: JSON.parse(header.metadata.settings!) as RolloutSettings,
    size,
    latentShape: [h, w, c],
    turns: Int32Array.from(t.get('turns')!.data),
    texts: JSON.parse(header.metadata.texts!) as string[],
    pixels: Uint8Array.from(pixels.data),
    latents: latents.data,
    episodesDone: Number(header.metadata.episodesDone),
  };
}

/** Refuse a rollout file that does not belong to this training set or model (before any training step). */
export function checkSelfReferences(r: SelfReferences, ds: TurnDataset, latentShape: [number, number, number]): void {
  if (r.turns.length === 0) throw new Error('the rollout file has no canvases yet');
  if (r.settings.trainEpisodes !== ds.episodes) {
    throw new Error(`the rollout file was made for ${r.settings.trainEpisodes} training episodes, this run has ${ds.episodes} (use the same --train-episodes and --seed)`);
  }
  if (r.size !== ds.size) throw new Error(`the rollout file's canvases are ${r.size} px, the training set's ${ds.size} px`);
  if (r.latentShape.join('x') !== latentShape.join('x')) throw new Error(`the rollout file's latents are ${r.latentShape.join('x')}, the model's ${latentShape.join('x')}`);
  r.turns.forEach((turn, i) => {
    if (!(turn >= 0 && turn < ds.texts.length) || ds.texts[turn] !== r.texts[i]) {
      throw new Error(`the rollout file does not match the training episodes (entry ${i}: turn ${turn}); make it with the run's --dataset, --train-episodes and --seed`);
    }
  });
}

export interface RolloutOptions extends RolloutSettings {
  /** Where the file is written (after every group of episodes; an existing file with the same settings is continued). */
  file: string;
  /** Episodes generated together. */
  batch: number;
  onProgress?(episodesDone: number, total: number, entries: number): void;
  shouldStop?(): boolean;
}

/**
 * Roll the model out over training episodes and record every turn's canvas (but the last) as the next turn's
 * reference. `episodes` is the whole training set in its TurnDataset order.
 */
export async function rolloutSelfReferences(model: CddIcm, episodes: readonly Episode[], o: RolloutOptions): Promise<SelfReferences> {
  if (o.trainEpisodes !== episodes.length) throw new Error(`rollout: trainEpisodes ${o.trainEpisodes} but ${episodes.length} episodes given`);
  const settings: RolloutSettings = { count: o.count, steps: o.steps, guidanceScale: o.guidanceScale, icmGuidanceScale: o.icmGuidanceScale, seed: o.seed, trainEpisodes: o.trainEpisodes };
  const size = model.config.imageSize;
  const latentShape: [number, number, number] = [model.latentSize, model.latentSize, model.latentChannels];
  const order = rolloutOrder(episodes.length, o.count, o.seed);
  // First training-turn index of every episode (the TurnDataset enumerates turns episode by episode).
  const base = new Int32Array(episodes.length);
  for (let e = 1; e < episodes.length; e++) base[e] = base[e - 1]! + episodes[e - 1]!.turns.length;

  let done = 0;
  const turns: number[] = [];
  const texts: string[] = [];
  const pixels: Uint8Array[] = [];
  const latents: Float32Array[] = [];
  if (existsSync(o.file)) {
    const prev = await readSelfReferences(o.file);
    if (JSON.stringify(prev.settings) !== JSON.stringify(settings)) {
      throw new Error(`${o.file} was made with other settings (${JSON.stringify(prev.settings)}): choose another file or the same settings`);
    }
    done = prev.episodesDone;
    const px = size * size * 3;
    const lat = latentShape[0] * latentShape[1] * latentShape[2];
    prev.turns.forEach((t, i) => {
      turns.push(t);
      texts.push(prev.texts[i]!);
      pixels.push(prev.pixels.subarray(i * px, (i + 1) * px));
      latents.push(prev.latents.subarray(i * lat, (i + 1) * lat));
    });
  }
  const snapshot = (): SelfReferences => ({
    settings,
    size,
    latentShape,
    turns: Int32Array.from(turns),
    texts: [...texts],
    pixels: concat(pixels, Uint8Array),
    latents: concat(latents, Float32Array),
    episodesDone: done,
  });
  o.onProgress?.(done, order.length, turns.length);
  while (done < order.length && !o.shouldStop?.()) {
    const group = order.slice(done, done + o.batch);
    // The last turn's canvas is nobody's reference: generate turns 0 .. n-2.
    const outs = await rollOutEpisodes(
      model,
      group.map((e) => episodes[e]!.turns.slice(0, -1).map((t) => t.text)),
      {
        backgrounds: group.map((e) => backgroundFor(episodes[e]!.dataset, size)),
        steps: o.steps,
        guidanceScale: o.guidanceScale,
        icmGuidanceScale: o.icmGuidanceScale,
        seedOf: (i, t) => mixSeed(o.seed, 67, group[i]!, t) % 2147483647,
      },
    );
    // Entries in generation order (turn by turn across the group), as files made before were written.
    for (let t = 0; t < Math.max(...outs.map((x) => x.length)); t++) {
      group.forEach((e, i) => {
        const out = outs[i]![t];
        if (!out) return;
        turns.push(base[e]! + t + 1);
        texts.push(episodes[e]!.turns[t + 1]!.text);
        pixels.push(out.image.data);
        latents.push(out.latent);
      });
    }
    done += group.length;
    await writeSelfReferences(o.file, snapshot());
    o.onProgress?.(done, order.length, turns.length);
  }
  return snapshot();
}

function concat<A extends Uint8Array | Float32Array>(parts: A[], Ctor: { new (n: number): A }): A {
  const out = new Ctor(parts.reduce((s, p) => s + p.length, 0));
  let k = 0;
  for (const p of parts) {
    out.set(p as never, k);
    k += p.length;
  }
  return out;
}

