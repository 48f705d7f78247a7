/**
 * The few layers the detector needs, over tfjs-core functional ops only. Kept inside the eval part so the
 * detector (and its CLIs) load without the diffusion model's import graph; the shape of the API follows
 * src/model/nn.ts (named parameters in a tree, dotted names for checkpoints).
 */
import * as tf from '@tensorflow/tfjs-core';

/** A deterministic stream of initialiser seeds (LCG), so a config's seed fixes the initial weights. */
export class SeedStream {
  constructor(private state: number) {
    this.state = state % 2147483647 || 1;
  }
  next(): number {
    this.state = (this.state * 1103515245 + 12345) % 2147483647;
    return this.state;
  }
}

export abstract class Layer {
  private readonly ownParams = new Map<string, tf.Variable>();
  private readonly children = new Map<string, Layer>();

  protected param(name: string, value: tf.Tensor): tf.Variable {
    if (this.ownParams.has(name)) throw new Error(`duplicate parameter ${name}`);
    const v = tf.variable(value, true);
    value.dispose();
    this.ownParams.set(name, v);
    return v;
  }

  protected child<L extends Layer>(name: string, l: L): L {
    if (this.children.has(name)) throw new Error(`duplicate child ${name}`);
    this.children.set(name, l);
    return l;
  }

  /** All variables of this layer and its descendants, keyed by dotted path (stable across runs). */
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

/** NHWC convolution, "same" padding, He-uniform initialisation. */
export class Conv extends Layer {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(inC: number, outC: number, kernel: number, seeds: SeedStream, private readonly stride = 1) {
    super();
    const limit = Math.sqrt(6 / (kernel * kernel * inC));
    this.weight = this.param('weight', tf.randomUniform([kernel, kernel, inC, outC], -limit, limit, 'float32', seeds.next()));
    this.bias = this.param('bias', tf.zeros([outC]));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.add(tf.conv2d(x, this.weight as tf.Tensor4D, this.stride, 'same'), this.bias) as tf.Tensor4D);
  }
}

/** GroupNorm over NHWC maps. */
export class GroupNorm extends Layer {
  private readonly gamma: tf.Variable;
  private readonly beta: tf.Variable;
  constructor(private readonly groups: number, channels: number, private readonly eps = 1e-5) {
    super();
    if (channels % groups !== 0) throw new Error(`GroupNorm: ${channels} channels not divisible by ${groups} groups`);
    this.gamma = this.param('weight', tf.ones([channels]));
    this.beta = this.param('bias', tf.zeros([channels]));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const g = tf.reshape(x, [n, h * w, this.groups, c / this.groups]);
      const { mean, variance } = tf.moments(g, [1, 3], true);
      const xn = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, this.eps))), [n, h, w, c]);
      return tf.add(tf.mul(xn, this.gamma), this.beta) as tf.Tensor4D;
    });
  }
}
