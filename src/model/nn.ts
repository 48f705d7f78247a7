/**
 * Minimal module system over tfjs-core variables: every layer owns named variables, modules nest,
 * and `namedParameters()` gives the stable dotted names used by checkpoints and optimizers.
 * Nothing about diffusion lives here.
 */
import * as tf from '@tensorflow/tfjs-core';

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
      let y = tf.matMul(flat, this.weight);
      if (this.bias) y = tf.add(y, this.bias);
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
      tf.add(tf.conv2d(x, this.weight as tf.Tensor4D, [s, s], this.opts.padding ?? 'same'), this.bias) as tf.Tensor4D,
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
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const xn = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(xn, this.gamma), this.beta);
    });
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
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const g = x.reshape([n, h * w, this.groups, c / this.groups]);
      const { mean, variance } = tf.moments(g, [1, 3], true);
      const xn = tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, this.eps))).reshape([n, h, w, c]);
      return tf.add(tf.mul(xn, this.gamma), this.beta) as tf.Tensor4D;
    });
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
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** GELU, tanh approximation (CLIP's "quick_gelu" is separate, see quickGelu). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const c = Math.sqrt(2 / Math.PI);
    const inner = tf.mul(c, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
}

/** CLIP's quick_gelu: x * sigmoid(1.702 x). */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(1.702, x))));
}

/**
 * tf.conv2d (NHWC input, HWIO filter, dilation 1) whose filter gradient is one im2col matrix product: the stock
 * cpu backend's Conv2DBackpropFilter kernel is an element-wise loop that dominates training time. Same values and
 * gradients as tf.conv2d.
 */
export function conv2dFastGrad(x: tf.Tensor4D, filter: tf.Tensor4D, stride: number, pad: 'same' | 'valid'): tf.Tensor4D {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xi = args[0] as tf.Tensor4D;
    const wi = args[1] as tf.Tensor4D;
    const save = args[2] as tf.GradSaveFunc;
    save([xi, wi]);
    const value = tf.conv2d(xi, wi, stride, pad);
    const gradFunc = (dy: tf.Tensor4D, saved: tf.Tensor[]): tf.Tensor[] => {
      const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
      const [kh, kw, cin, cout] = ws.shape;
      const dx = tf.conv2dTranspose(dy, ws, xs.shape, stride, pad);
      const dw = filterGrad(xs, dy, kh, kw, stride, pad);
      return [dx, dw];
    };
    return { value, gradFunc };
  });
  return f(x, filter) as tf.Tensor4D;
}

/**
 * dW[i, j, c, o] = sum over n, y, x of xpad[n, y*s + i, x*s + j, c] dy[n, y, x, o]: a stride-1 convolution of the
 * padded input with batch and channels swapped, by dy as the filter dilated by the stride (as TensorFlow does it).
 */
function filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, kh: number, kw: number, s: number, pad: 'same' | 'valid'): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const [, outH, outW] = dy.shape;
    const needH = (outH - 1) * s + kh;
    const needW = (outW - 1) * s + kw;
    let top = 0, left = 0;
    if (pad === 'same') {
      top = Math.floor(Math.max(needH - h, 0) / 2);
      left = Math.floor(Math.max(needW - w, 0) / 2);
    }
    let xp = x;
    if (top > 0 || left > 0 || needH > h + top || needW > w + left) {
      xp = tf.pad(x, [[0, 0], [top, Math.max(needH - h - top, 0)], [left, Math.max(needW - w - left, 0)], [0, 0]]);
    }
    // Rows/columns past the last window are never used (valid padding with a remainder).
    if (xp.shape[1] > needH || xp.shape[2] > needW) xp = tf.slice(xp, [0, 0, 0, 0], [-1, needH, needW, -1]);
    const xt = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D;
    const f = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
    const dw = tf.conv2d(xt, f, 1, 'valid', 'NHWC', [s, s]);
    return tf.transpose(dw, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}

/**
 * Split the last axis into `parts` equal pieces. Same result as tf.split(x, parts, -1), but done as products with
 * 0/1 selection matrices (exact): the stock cpu backend slices non-leading axes element by element, which made
 * these splits a large share of a training step.
 */
export function splitLastAxis(x: tf.Tensor, parts: number): tf.Tensor[] {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1]!;
    if (d % parts !== 0) throw new Error(`splitLastAxis: ${d} not divisible by ${parts}`);
    const w = d / parts;
    const lead = x.shape.slice(0, -1);
    const flat = x.reshape([-1, d]);
    const out: tf.Tensor[] = [];
    for (let p = 0; p < parts; p++) {
      const sel = new Float32Array(d * w);
      for (let j = 0; j < w; j++) sel[(p * w + j) * w + j] = 1;
      out.push(tf.matMul(flat, tf.tensor2d(sel, [d, w])).reshape([...lead, w]));
    }
    return out;
  });
}
