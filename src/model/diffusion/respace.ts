/**
 * Respacing (improved-diffusion's respace.py): sampling on a subset of the T steps is the same diffusion with the
 * betas that reproduce the kept steps' alphabar, plus a map from the new indices to the original timesteps
 * (which the network was trained on).
 */
import { GaussianDiffusion, type DiffusionOptions } from './gaussianDiffusion.js';

/** `count` timesteps spread uniformly over [0, T - 1], both ends included (the paper: 250 of 1000). */
export function spacedTimesteps(T: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1 || count > T) throw new Error(`cannot take ${count} of ${T} timesteps`);
  if (count === 1) return [T - 1];
  const stride = (T - 1) / (count - 1);
  const out = new Set<number>();
  for (let i = 0; i < count; i++) out.add(Math.round(i * stride));
  return [...out].sort((a, b) => a - b);
}

export class SpacedDiffusion extends GaussianDiffusion {
  /** timestepMap[i] is the original timestep of the respaced index i (what the model is given). */
  readonly timestepMap: number[];

  constructor(base: GaussianDiffusion | Float64Array, useTimesteps: number[], opts: DiffusionOptions = {}) {
    const alphasCumprod = base instanceof GaussianDiffusion ? base.alphasCumprod : cumprod(base);
    const kept = [...new Set(useTimesteps)].sort((a, b) => a - b);
    const betas = new Float64Array(kept.length);
    let last = 1;
    kept.forEach((t, i) => {
      const ac = alphasCumprod[t];
      if (ac === undefined) throw new Error(`timestep ${t} out of range`);
      betas[i] = 1 - ac / last;
      last = ac;
    });
    super(betas, base instanceof GaussianDiffusion ? { dataKind: base.dataKind, x0Range: base.x0Range, ...opts } : opts);
    this.timestepMap = kept;
  }
}

function cumprod(betas: Float64Array): Float64Array {
  const out = new Float64Array(betas.length);
  let p = 1;
  betas.forEach((b, i) => (out[i] = p *= 1 - b));
  return out;
}
