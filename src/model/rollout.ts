/**
 * Multi-turn generation of a group of episodes side by side, the way a session generates: each episode's turns in
 * order, turn t of every episode sampled in one batch, each result handed on as that episode's next reference
 * (image and latent: the iterative setting) unless `nextReference` says otherwise (teacher forcing, re-encoding).
 * Evaluation and the training rollouts for scheduled sampling both generate through here.
 */
import type { RgbImage } from '../data/index.js';
import type { CddIcm } from './cddIcm.js';
import type { SolverName } from './config.js';
import { sampleBestOf, type BestOfResult, type SampleOptions, type SampleRequest } from './sampler.js';

/** What the next turn continues from: an image, and its latent when the codec's round trip should be skipped. */
export interface RolloutReference {
  image: RgbImage;
  latent?: Float32Array;
}

export interface RolloutOptions extends SampleOptions {
  /** Each episode's first reference (the empty canvas), one per episode. */
  backgrounds: readonly RgbImage[];
  steps: number;
  guidanceScale: number;
  icmGuidanceScale: number;
  /** ODE solver (SampleRequest.solver); default: the model's recommendation, else DDIM. */
  solver?: SolverName;
  /** Best-of-n early selection (SampleRequest.selectAt); default: the model's, else 1. */
  selectAt?: number;
  /** Best-of-n: ICM guidance before the early selection too (SampleRequest.icmBeforeSelection); default: the model's. */
  icmBeforeSelection?: boolean;
  /** Best-of-n per turn (default 1: plain sampling). */
  candidates?: number;
  /** The sampling seed of episode i's turn t. */
  seedOf(episode: number, turn: number): number;
  /** Episode i's reference after its turn t; default: the result with its latent. */
  nextReference?(episode: number, turn: number, out: BestOfResult): RolloutReference;
  /** After each batch of turns: how many turns it generated. */
  onTurns?(count: number): void;
}

/** Generate `instructions[i]` (episode i's turn texts) turn by turn; returns every episode's results in turn order. */
export async function rollOutEpisodes(model: CddIcm, instructions: readonly (readonly string[])[], o: RolloutOptions): Promise<BestOfResult[][]> {
  if (o.backgrounds.length !== instructions.length) {
    throw new Error(`rollOutEpisodes: ${instructions.length} episodes but ${o.backgrounds.length} backgrounds`);
  }
  const refs: RolloutReference[] = o.backgrounds.map((image) => ({ image }));
  const results: BestOfResult[][] = instructions.map(() => []);
  const maxTurns = Math.max(0, ...instructions.map((texts) => texts.length));
  for (let t = 0; t < maxTurns; t++) {
    const active = instructions.map((_, i) => i).filter((i) => t < instructions[i]!.length);
    const reqs: SampleRequest[] = active.map((i) => ({
      text: instructions[i]![t]!,
      reference: refs[i]!.image,
      ...(refs[i]!.latent ? { referenceLatent: refs[i]!.latent } : {}),
      steps: o.steps,
      guidanceScale: o.guidanceScale,
      icmGuidanceScale: o.icmGuidanceScale,
      seed: o.seedOf(i, t),
      ...(o.solver ? { solver: o.solver } : {}),
      ...(o.selectAt !== undefined ? { selectAt: o.selectAt } : {}),
      ...(o.icmBeforeSelection !== undefined ? { icmBeforeSelection: o.icmBeforeSelection } : {}),
    }));
    const out = await sampleBestOf(model, reqs, o.candidates ?? 1, {
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onStep ? { onStep: o.onStep } : {}),
    });
    active.forEach((i, k) => {
      const r = out[k]!;
      results[i]!.push(r);
      refs[i] = o.nextReference ? o.nextReference(i, t, r) : { image: r.image, latent: r.latent };
    });
    o.onTurns?.(active.length);
  }
  return results;
}
