/**
 * Fused normalisation and activation ops for the model. On `native-cpu` each is one native kernel forward and
 * one for its gradient (native/src/norm.cc); on any other backend (tensorflow, stock cpu) the same math is
 * composed of tfjs ops. Why: written with tfjs ops a GroupNorm + SiLU is ~12 kernels forward and ~30 backward,
 * and on a CPU such memory-bound passes plus per-kernel framework overhead cost more than the convolutions.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Kernel names (registered for native-cpu by kernels.ts). */
export const GROUP_NORM = 'NativeGroupNorm';
export const GROUP_NORM_GRAD = 'NativeGroupNormGrad';
export const ACTIVATION = 'NativeActivation';
export const ACTIVATION_GRAD = 'NativeActivationGrad';

/** Activations the fused kernels know (codes shared with native/src/norm.cc). */
export type FusedActivation = 'none' | 'silu' | 'gelu_tanh' | 'quick_gelu';
export const ACTIVATION_CODE: Record<FusedActivation, number> = { none: 0, silu: 1, gelu_tanh: 2, quick_gelu: 3 };

const hasKernel = (name: string): boolean => tf.getKernel(name, tf.getBackend()) !== undefined;

function composedActivation(x: tf.Tensor, act: FusedActivation): tf.Tensor {
  switch (act) {
    case 'none': return x;
    case 'silu': return tf.mul(x, tf.sigmoid(x));
    case 'quick_gelu': return tf.mul(x, tf.sigmoid(tf.mul(1.702, x)));
    case 'gelu_tanh': {
      const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
      return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    }
  }
}

/** act(x) elementwise. */
export function activation(x: tf.Tensor, act: FusedActivation): tf.Tensor {
  if (act === 'none') return x;
  if (x.dtype === 'float32' && hasKernel(ACTIVATION)) {
    return tf.engine().runKernel(ACTIVATION, { x }, { act: ACTIVATION_CODE[act] }) as tf.Tensor;
  }
  return tf.tidy(() => composedActivation(x, act));
}

/**
 * act(GroupNorm(x) * gamma + beta) over the last axis of x ([N, ...spatial, C]): statistics per sample and
 * per group of C / groups consecutive channels, over all spatial positions.
 */
export function groupNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number,
  act: FusedActivation = 'none'): T {
  const c = x.shape[x.shape.length - 1]!;
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels not divisible by ${groups} groups`);
  if (x.dtype === 'float32' && x.rank >= 2 && hasKernel(GROUP_NORM)) {
    return tf.engine().runKernel(GROUP_NORM, { x, gamma, beta }, { groups, eps, act: ACTIVATION_CODE[act], layer: false }) as T;
  }
  return tf.tidy(() => {
    const n = x.shape[0]!;
    const g = tf.reshape(x, [n, -1, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const xn = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps))), x.shape);
    return composedActivation(tf.add(tf.mul(xn, gamma), beta), act) as T;
  });
}

/** LayerNorm over the last axis (GroupNorm with one group per row). */
export function layerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number): T {
  if (x.dtype === 'float32' && x.rank >= 1 && hasKernel(GROUP_NORM)) {
    return tf.engine().runKernel(GROUP_NORM, { x, gamma, beta }, { groups: 1, eps, act: 0, layer: true }) as T;
  }
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), gamma), beta) as T;
  });
}

let gradientsRegistered = false;

/** Gradients of the fused kernels (each calls its native gradient kernel once for all inputs). */
export function registerFusedGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  tf.registerGradient({
    kernelName: GROUP_NORM,
    inputsToSave: ['x', 'gamma', 'beta'],
    gradFunc: (dy, saved, attrs) => {
      const [x, gamma, beta] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const [dx, dgamma, dbeta] = tf.engine().runKernel(GROUP_NORM_GRAD, { x, gamma, beta, dy: dy as tf.Tensor },
        attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
    },
  });
  tf.registerGradient({
    kernelName: ACTIVATION,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      return { x: () => tf.engine().runKernel(ACTIVATION_GRAD, { x, dy: dy as tf.Tensor }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor };
    },
  });
}
