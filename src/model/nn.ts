/**
 * Minimal module system over tfjs-core variables: every layer owns named variables, modules nest,
 * and `namedParameters()` gives the stable dotted names used by checkpoints and optimizers.
 * Nothing about diffusion lives here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activation, groupNorm, layerNorm, type FusedActivation } from '../backend/index.js';

/** Deterministic initialisers keep tests and checkpoints reproducible. */
export interface InitOptions {
  seed?: number;
}

let seedCounter = 1;
/** A fresh seed for an initialiser; callers may pass their own for reproducibility. */
export function nextSeed(): number {
  seedCounter = (seedCounter * 1103515245 + 12345) % 2147483647;
  return seedCounter;
}
/** Reset the global initialiser seed (tests and model construction call this for reproducible weights). */
export function resetSeed(seed: number): void {
  seedCounter = seed % 2147483647 || 1;
}

export abstract class Module {
  private readonly ownParams = new Map<string, tf.Variable>();
  private readonly children = new Map<string, Module>();

  /** Register a variable under a local name. */
  protected param(name: string, value: tf.Tensor, trainable = true): tf.Variable {
    if (this.ownParams.has(name)) throw new Error(`duplicate parameter ${name}`);
    const v = tf.variable(value, trainable);
    value.dispose();
    this.ownParams.set(name, v);
    return v;
  }

  /** Register a child module under a local name; returns it for assignment. */
  protected child<M extends Module>(name: string, m: M): M {
    if (this.children.has(name)) throw new Error(`duplicate child ${name}`);
    this.children.set(name, m);
    return m;
  }

  /** All variables of this module and its descendants, keyed by dotted path. */
  namedParameters(prefix = ''): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [n, v] of this.ownParams) out.set(prefix + n, v);
    for (const [n, c] of this.children) for (const [k, v] of c.namedParameters(`${prefix}${n}.`)) out.set(k, v);
    return out;
  }

  parameters(): tf.Variable[] {
    return [...this.namedParameters().values()];
  }

  parameterCount(): number {
    return this.parameters().reduce((s, v) => s + v.size, 0);
  }

  dispose(): void {
    for (const v of this.parameters()) v.dispose();
  }
}

function heUniform(shape: number[], fanIn: number): tf.Tensor {
  const limit = Math.sqrt(1 / fanIn);
  return tf.randomUniform(shape, -limit, limit, 'float32', nextSeed());
}

/** y = x W + b over the last axis; works on any rank >= 2. W is [in, out]. */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean; zeroInit?: boolean } = {}) {
    super();
    this.weight = this.param(
      'weight',
      opts.zeroInit ? tf.zeros([inFeatures, outFeatures]) : heUniform([inFeatures, outFeatures], inFeatures),
    );
    this.bias = opts.bias === false ? null : this.param('bias', tf.zeros([outFeatures]));
  }
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const shape = x.shape;
      const flat = x.reshape([-1, this.inFeatures]);
      // The bias rides in the matmul kernel (one oneDNN primitive on native-cpu).
      const y = tf.fused.matMul({ a: flat as tf.Tensor2D, b: this.weight as tf.Tensor2D, ...(this.bias ? { bias: this.bias } : {}) });
      return y.reshape([...shape.slice(0, -1), this.outFeatures]);
    });
  }
}

/** NHWC 2-D convolution with "same" padding by default. Filter is HWIO as tfjs expects. */
export class Conv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    readonly opts: {
      stride?: number;
      zeroInit?: boolean;
      padding?: 'same' | 'valid';
      /** Custom weight initialiser (shape HWIO, fan-in k*k*in); overrides the default, e.g. for a private seed stream. */
      init?: (shape: number[], fanIn: number) => tf.Tensor;
    } = {},
  ) {
    super();
    const shape = [kernel, kernel, inChannels, outChannels];
    const fanIn = kernel * kernel * inChannels;
    this.weight = this.param('weight', opts.zeroInit ? tf.zeros(shape) : opts.init ? opts.init(shape, fanIn) : heUniform(shape, fanIn));
    this.bias = this.param('bias', tf.zeros([outChannels]));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    const s = this.opts.stride ?? 1;
    return tf.tidy(() =>
      tf.fused.conv2d({ x, filter: this.weight as tf.Tensor4D, strides: [s, s], pad: this.opts.padding ?? 'same', bias: this.bias }),
    );
  }
}

/** LayerNorm over the last axis. */
export class LayerNorm extends Module {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  constructor(readonly features: number, readonly eps = 1e-5) {
    super();
    this.gamma = this.param('weight', tf.ones([features]));
    this.beta = this.param('bias', tf.zeros([features]));
  }
  apply(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.gamma, this.beta, this.eps);
  }
}

/** GroupNorm over NHWC feature maps (ADM uses 32 groups; small models fewer). */
export class GroupNorm extends Module {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  constructor(readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    super();
    if (channels % groups !== 0) throw new Error(`GroupNorm: ${channels} channels not divisible by ${groups} groups`);
    this.gamma = this.param('weight', tf.ones([channels]));
    this.beta = this.param('bias', tf.zeros([channels]));
  }
  /** GroupNorm, then `act` fused into the same pass (ADM's norm -> SiLU -> conv). */
  apply(x: tf.Tensor4D, act: FusedActivation = 'none'): tf.Tensor4D {
    return groupNorm(x, this.gamma, this.beta, this.groups, this.eps, act);
  }
}

/** Token embedding table [vocab, dim]. */
export class Embedding extends Module {
  readonly table: tf.Variable;
  constructor(readonly vocab: number, readonly dim: number) {
    super();
    this.table = this.param('weight', tf.randomNormal([vocab, dim], 0, 0.02, 'float32', nextSeed()));
  }
  apply(ids: tf.Tensor): tf.Tensor {
    return tf.gather(this.table, ids.toInt());
  }
}

/** SiLU (swish) as used by ADM. */
export function silu(x: tf.Tensor): tf.Tensor {
  return activation(x, 'silu');
}

/** GELU, tanh approximation (CLIP's "quick_gelu" is separate, see quickGelu). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return activation(x, 'gelu_tanh');
}

/** CLIP's quick_gelu: x * sigmoid(1.702 x). */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return activation(x, 'quick_gelu');
}
