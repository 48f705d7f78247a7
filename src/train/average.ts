/**
 * An exponential moving average of the weights a stage trains (Polyak averaging, as guided-diffusion and LDM
 * sample from). Consecutive checkpoints of a diffusion model sample quite differently although their losses are
 * close; the average smooths that step-to-step wander out of the weights that are validated and shipped.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AverageSnapshot {
  weights: Map<string, tf.Tensor>;
  updates: number;
}

export class WeightAverage {
  private readonly average = new Map<string, tf.Variable>();
  private count: number;

  /**
   * @param vars    the trained variables by name; the average starts from their current values
   * @param decay   the target decay; the first updates use min(decay, (1 + n) / (10 + n)) so that an average
   *                started from an early model forgets it in tens of steps, not in 1 / (1 - decay)
   * @param updates updates already folded in (a resumed run continues its warm-up)
   */
  constructor(
    private readonly vars: Map<string, tf.Variable>,
    readonly decay: number,
    updates = 0,
  ) {
    if (!(decay > 0 && decay < 1)) throw new Error(`weight-average decay must be in (0, 1), got ${decay}`);
    for (const [k, v] of vars) this.average.set(k, tf.variable(v, false));
    this.count = updates;
  }

  /** Number of updates folded in so far (saved with checkpoints so a resume continues the warm-up). */
  get updates(): number {
    return this.count;
  }

  /** The decay the next update uses. */
  currentDecay(): number {
    return Math.min(this.decay, (1 + this.count) / (10 + this.count));
  }

  /** Fold the variables' current values in (after each optimizer step). */
  update(): void {
    const d = this.currentDecay();
    tf.tidy(() => {
      for (const [k, v] of this.vars) {
        const a = this.average.get(k)!;
        a.assign(tf.add(tf.mul(a, d), tf.mul(v, 1 - d)));
      }
    });
    this.count++;
  }

  /** Copies of the averaged weights (the caller owns them). */
  snapshot(): AverageSnapshot {
    const weights = new Map<string, tf.Tensor>();
    for (const [k, a] of this.average) weights.set(k, tf.clone(a));
    return { weights, updates: this.count };
  }

  /** Set the average back to a snapshot (the caller keeps ownership of it). */
  load(s: AverageSnapshot): void {
    for (const [k, a] of this.average) {
      const t = s.weights.get(k);
      if (t) a.assign(t);
    }
    this.count = s.updates;
  }

  /** Overwrite the trained variables with the average (a stage ends on its averaged weights). */
  applyToVariables(): void {
    for (const [k, v] of this.vars) v.assign(this.average.get(k)!);
  }

  /**
   * Run `fn` with the averaged weights in the variables, then put the trained weights back, so validation and
   * saving see the average while the optimizer keeps stepping the raw weights.
   */
  async withAverage<T>(fn: () => T | Promise<T>): Promise<T> {
    const raw = new Map<string, tf.Tensor>();
    for (const [k, v] of this.vars) raw.set(k, tf.clone(v));
    try {
      this.applyToVariables();
      return await fn();
    } finally {
      for (const [k, v] of this.vars) v.assign(raw.get(k)!);
      tf.dispose([...raw.values()]);
    }
  }

  dispose(): void {
    for (const a of this.average.values()) a.dispose();
    this.average.clear();
  }
}

export function disposeAverageSnapshot(s: AverageSnapshot | null | undefined): void {
  if (s) tf.dispose([...s.weights.values()]);
}
