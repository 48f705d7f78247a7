/**
 * AdamW (Loshchilov & Hutter, "Decoupled weight decay regularization"), written against tfjs-core so it runs on
 * every backend. Parameters come in groups, each with a learning-rate multiplier: the paper's backbone learning
 * rate is the global rate times the backbone activity ratio eta (section 2.6), so a CLIP backbone group has
 * lrScale = eta and everything else 1. Weight decay is decoupled: p <- p - lr * wd * p, applied before the Adam step,
 * exactly as PyTorch's AdamW does.
 */
import * as tf from '@tensorflow/tfjs-core';

/** A named array of optimizer state (float32, row-major). */
export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

export interface ParamGroup {
  /** For logs only. */
  name: string;
  /** Stable name (as in checkpoints) -> variable. */
  params: Map<string, tf.Variable>;
  /** Multiplier on the global learning rate (eta for backbones). 0 freezes the group. */
  lrScale: number;
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Clip the global gradient norm to this value before the update (0 or undefined: no clipping). */
  clipNorm?: number;
}

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly clipNorm: number;
  /** Number of updates applied so far (Adam's t). */
  stepCount = 0;
  private readonly groups: ParamGroup[];
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  /** tfjs variable name -> stable name, to read gradients from tf.variableGrads. */
  private readonly byTfName = new Map<string, string>();
  private readonly scaleOf = new Map<string, number>();
  private readonly varOf = new Map<string, tf.Variable>();

  constructor(groups: ParamGroup[], opts: AdamWOptions) {
    this.groups = groups;
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.clipNorm = opts.clipNorm ?? 0;
    for (const g of groups) {
      for (const [name, v] of g.params) {
        if (this.varOf.has(name)) throw new Error(`AdamW: parameter ${name} is in two groups`);
        this.varOf.set(name, v);
        this.scaleOf.set(name, g.lrScale);
        this.byTfName.set(v.name, name);
        this.m.set(name, tf.variable(tf.zerosLike(v), false));
        this.v.set(name, tf.variable(tf.zerosLike(v), false));
      }
    }
  }

  /** Variables that receive updates (lrScale > 0): the list to pass to tf.variableGrads. */
  trainableVariables(): tf.Variable[] {
    return [...this.varOf.entries()].filter(([n]) => this.scaleOf.get(n)! > 0).map(([, v]) => v);
  }

  /** Number of scalar parameters that receive updates. */
  trainableCount(): number {
    return this.trainableVariables().reduce((s, v) => s + v.size, 0);
  }

  /**
   * Apply one update from gradients keyed by tfjs variable name (the output of tf.variableGrads).
   * Returns the global gradient norm before clipping. Does not dispose the gradients.
   */
  step(grads: tf.NamedTensorMap): number {
    const entries: [string, tf.Tensor][] = [];
    for (const [tfName, g] of Object.entries(grads)) {
      const name = this.byTfName.get(tfName);
      if (name === undefined) continue; // a gradient for a variable this optimizer does not own
      if (this.scaleOf.get(name)! <= 0) continue;
      entries.push([name, g]);
    }
    const norm = tf.tidy(() => {
      if (entries.length === 0) return 0;
      const sq = entries.map(([, g]) => tf.sum(tf.square(g)));
      return Math.sqrt(tf.addN(sq).dataSync()[0]!);
    });
    const clip = this.clipNorm > 0 && norm > this.clipNorm ? this.clipNorm / norm : 1;
    this.stepCount++;
    const t = this.stepCount;
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    for (const [name, g] of entries) {
      const p = this.varOf.get(name)!;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const lr = this.lr * this.scaleOf.get(name)!;
      tf.tidy(() => {
        const gc = clip === 1 ? g : tf.mul(g, clip);
        const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(gc, 1 - this.beta1));
        const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(gc), 1 - this.beta2));
        m.assign(mNew);
        v.assign(vNew);
        // Decoupled decay first (PyTorch order), then the bias-corrected Adam step.
        const decayed = this.weightDecay > 0 ? tf.mul(p, 1 - lr * this.weightDecay) : p;
        const update = tf.div(tf.div(mNew, bc1), tf.add(tf.sqrt(tf.div(vNew, bc2)), this.eps));
        p.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    }
    return norm;
  }

  /** The moments as named arrays (`m.<param>`, `v.<param>`), for optimizer.safetensors. */
  stateArrays(): Map<string, NamedArray> {
    const out = new Map<string, NamedArray>();
    for (const [name, m] of this.m) out.set(`m.${name}`, { shape: m.shape, data: Float32Array.from(m.dataSync()) });
    for (const [name, v] of this.v) out.set(`v.${name}`, { shape: v.shape, data: Float32Array.from(v.dataSync()) });
    return out;
  }

  /** Restore moments saved by stateArrays (missing entries stay zero, e.g. for a group added later). */
  loadStateArrays(arrays: Map<string, NamedArray>, stepCount: number): void {
    for (const [prefix, store] of [['m', this.m], ['v', this.v]] as const) {
      for (const [name, variable] of store) {
        const a = arrays.get(`${prefix}.${name}`);
        if (!a) continue;
        if (a.shape.join(',') !== variable.shape.join(',')) throw new Error(`optimizer state ${prefix}.${name}: shape mismatch`);
        variable.assign(tf.tensor(a.data, variable.shape, 'float32'));
      }
    }
    this.stepCount = stepCount;
  }

  /** Group summary for logs. */
  describe(): { name: string; params: number; lrScale: number }[] {
    return this.groups.map((g) => ({ name: g.name, params: [...g.params.values()].reduce((s, v) => s + v.size, 0), lrScale: g.lrScale }));
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
  }
}
